package dev.lazyblock.daemon;

import static dev.lazyblock.daemon.DaemonFixture.error;
import static dev.lazyblock.daemon.DaemonFixture.ok;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lazyblock.content.ContentCipher;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.testing.Tools;
import dev.lazyblock.upstream.DirectoryStore;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A daemon serving a tenant's convergently encrypted template: the tenant's sandbox reads it
 * through nbdcopy; a sandbox without a tenant, or with another tenant's, is refused at create
 * (nothing left behind) even while the owner has the build open; no secret reaches the state
 * directory, and a restart brings the sandbox back only with the tenant's secret given again.
 */
class TenantSandboxTest {
    static final int CHUNK = 64 << 10;
    static final int CHUNKS = 8;
    static final String SECRET_A = "acme's secret, at least 16 bytes";
    static final String SECRET_B = "other's secret, also long enough";

    @TempDir
    Path tmp;

    @Test
    void aTenantsSandboxReadsItsEncryptedTemplateAndNoOtherSandboxOpensIt() throws Exception {
        byte[] image = new byte[CHUNKS * CHUNK];
        new SplittableRandom(5).nextBytes(image);
        Path secrets = tmp.resolve("tenants");
        Files.writeString(secrets, "# tenant secret\nacme " + SECRET_A + "\n\nother   " + SECRET_B + "\n");
        Files.setPosixFilePermissions(secrets, PosixFilePermissions.fromString("rw-------"));
        Map<String, ContentCipher> tenants = TenantSecrets.read(secrets);
        assertEquals(List.of("acme", "other"), List.copyOf(tenants.keySet()));
        try (DaemonFixture f = new DaemonFixture(tmp, 1 << 20, c -> c.withTenants(tenants))) {
            String header;
            try (DirectoryStore ds = new DirectoryStore(tmp.resolve("store"))) {
                Path raw = Files.write(tmp.resolve("secret.raw"), image);
                header = LayerExporter.publishBase(raw, 4096, ds, "enc", n -> { }, LayerExporter.Compression.NONE,
                        LayerExporter.ContentAddressing.of(CHUNK).encrypted(tenants.get("acme"))).headerKey();
            }
            String url = f.http.uri("/" + header).toString();

            JsonNode a = ok(201, f.client.post("/v1/sandboxes", body("a", url, "acme")));
            assertEquals("acme", a.get("tenant").asText());
            Tools.run("nbdcopy", a.get("nbdUri").asText(), tmp.resolve("a.out").toString()).ok();
            assertArrayEquals(image, Files.readAllBytes(tmp.resolve("a.out")));

            // With acme's build open and cached in plain: no tenant, another tenant, or an unknown one.
            JsonNode none = error(400, "bad_image", f.client.post("/v1/sandboxes", body("none", url, null)));
            assertTrue(none.path("error").path("message").asText().contains("is encrypted"), none.toString());
            JsonNode other = error(400, "bad_image", f.client.post("/v1/sandboxes", body("other", url, "other")));
            assertTrue(other.path("error").path("message").asText().contains("not encrypted with this tenant's secret"),
                    other.toString());
            JsonNode unknown = error(400, "bad_request", f.client.post("/v1/sandboxes", body("u", url, "nobody")));
            assertTrue(unknown.path("error").path("message").asText().contains("unknown tenant 'nobody'"),
                    unknown.toString());
            assertEquals(List.of("a"), f.daemon.list().stream().map(Daemon.SandboxInfo::id).toList());
            for (String refused : List.of("none", "other", "u")) {
                assertFalse(Files.exists(tmp.resolve("state/sandboxes").resolve(refused)), refused + " left behind");
            }
            assertEquals(1, f.daemon.builds().stream().filter(b -> b.identity().startsWith("tenant acme: ")).count(),
                    "acme's build is acme's own: " + f.daemon.builds());

            f.api.close();
            f.daemon.close();
            for (String secret : List.of(SECRET_A, SECRET_B)) {
                assertFalse(anyFileHolds(tmp.resolve("state"), secret.getBytes(StandardCharsets.UTF_8)),
                        "a secret in the state directory");
            }
            Path state = tmp.resolve("state");
            try (Daemon again = new Daemon(DaemonConfig.defaults(state).withTenants(tenants), null)) {
                Tools.run("nbdcopy", again.get("a").nbdUri(), tmp.resolve("a2.out").toString()).ok();
                assertArrayEquals(image, Files.readAllBytes(tmp.resolve("a2.out")));
            }
            try (Daemon without = new Daemon(DaemonConfig.defaults(state), null)) {
                DaemonException e = assertThrows(DaemonException.class, () -> without.get("a"));
                assertEquals("not_restored", e.code());
                assertTrue(e.getMessage().contains("unknown tenant 'acme'"), e.getMessage());
            }
        }
    }

    @Test
    void aSecretsFileOpenToOthersOrMalformedIsRefusedWithoutQuotingASecret() throws Exception {
        Path f = tmp.resolve("tenants");
        Files.writeString(f, "acme " + SECRET_A + "\n");
        Files.setPosixFilePermissions(f, PosixFilePermissions.fromString("rw-r--r--"));
        IllegalArgumentException open = assertThrows(IllegalArgumentException.class, () -> TenantSecrets.read(f));
        assertTrue(open.getMessage().contains("chmod 600"), open.getMessage());
        Files.setPosixFilePermissions(f, PosixFilePermissions.fromString("rw-------"));
        for (String bad : List.of("acme", "acme short-secret", "../x " + SECRET_A, "acme " + SECRET_A + "\nacme "
                + SECRET_B)) {
            Files.writeString(f, bad + "\n");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TenantSecrets.read(f));
            assertTrue(e.getMessage().startsWith(f + " line "), e.getMessage());
            for (String secret : List.of(SECRET_A, SECRET_B, "short-secret")) {
                assertFalse(e.getMessage().contains(secret), "the message quotes a secret: " + e.getMessage());
            }
        }
    }

    private static String body(String id, String image, String tenant) {
        return "{\"id\":\"" + id + "\",\"image\":\"" + image + "\"" + (tenant == null ? "" : ",\"tenant\":\"" + tenant
                + "\"") + "}";
    }

    private static boolean anyFileHolds(Path dir, byte[] needle) throws Exception {
        // ISO-8859-1 maps each byte to one char: a byte search as a string search.
        String n = new String(needle, StandardCharsets.ISO_8859_1);
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.filter(Files::isRegularFile).toList()) {
                if (new String(Files.readAllBytes(p), StandardCharsets.ISO_8859_1).contains(n)) {
                    return true;
                }
            }
        }
        return false;
    }
}
