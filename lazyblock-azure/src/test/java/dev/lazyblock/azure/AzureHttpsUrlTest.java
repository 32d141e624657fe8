package dev.lazyblock.azure;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.azure.core.util.BinaryData;
import dev.lazyblock.testing.Seeds;
import dev.lazyblock.testing.UpstreamReads;
import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.UpstreamException;
import dev.lazyblock.upstream.Upstreams;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@code https://ACCOUNT.blob.core.windows.net/container/blob}, exactly as users write it, read
 * through the Azure SDK against a real server: Azurite on port 443 with a TLS certificate for
 * {@code devstoreaccount1.blob.core.windows.net}, a name this JVM resolves to 127.0.0.1 (its
 * {@code jdk.net.hosts.file}) and trusts (its {@code javax.net.ssl.trustStore}). No endpoint is
 * configured: the URL's host is the endpoint, and its first label the account (Azurite reads
 * production-style host names the same way).
 *
 * <p>Runs in a JVM of its own (the {@code https-url} execution in this module's pom), which sets
 * those two properties; this class writes the files they name before anything resolves a name
 * or opens a TLS connection.
 */
class AzureHttpsUrlTest {
    private static final String HOST = Azurite.ACCOUNT + AzureLocation.BLOB_HOST_SUFFIX;
    private static final String STORE_PASSWORD = "lazyblock-test";
    private static final int SIZE = (2 << 20) + 777;

    private static Azurite server;
    private static String container;
    private static byte[] object;

    @BeforeAll
    static void start() throws Exception {
        String hosts = System.getProperty("jdk.net.hosts.file");
        String trust = System.getProperty("javax.net.ssl.trustStore");
        Assumptions.assumeTrue(hosts != null && trust != null,
                "run by the https-url execution, which names a hosts file and a trust store");
        try (ServerSocket probe = new ServerSocket(443, 1, InetAddress.getByAddress(new byte[] {127, 0, 0, 1}))) {
            assertTrue(probe.isBound());
        } catch (IOException e) {
            Assumptions.abort("cannot listen on 127.0.0.1:443 (not root, or the port is taken): " + e);
        }
        Files.createDirectories(Path.of(hosts).getParent());
        Files.writeString(Path.of(hosts), "127.0.0.1 " + HOST + "\n");
        Path tls = Files.createDirectories(Path.of(trust).getParent());
        Path pfx = tls.resolve("azurite.pfx");
        Path cer = tls.resolve("azurite.cer");
        Files.deleteIfExists(pfx);
        Files.deleteIfExists(Path.of(trust));
        keytool("-genkeypair", "-alias", "azurite", "-keyalg", "RSA", "-keysize", "2048", "-validity", "2",
                "-dname", "CN=" + HOST, "-ext", "SAN=dns:" + HOST, "-keystore", pfx.toString(), "-storetype",
                "PKCS12", "-storepass", STORE_PASSWORD);
        keytool("-exportcert", "-alias", "azurite", "-keystore", pfx.toString(), "-storepass", STORE_PASSWORD,
                "-file", cer.toString());
        keytool("-importcert", "-noprompt", "-alias", "azurite", "-file", cer.toString(), "-keystore", trust,
                "-storetype", "PKCS12", "-storepass", STORE_PASSWORD);

        server = new Azurite(443, List.of("--cert", pfx.toString(), "--pwd", STORE_PASSWORD));
        server.start();
        container = "https-" + Long.toHexString(System.nanoTime());
        object = UpstreamReads.randomBytes(41, SIZE);
        // The account key from the configuration, the endpoint from the URL: nothing else.
        AzureConfig config = AzureConfig.builder().key(Azurite.KEY).build();
        AzureLocation at = AzureLocation.parse("https://" + HOST + "/" + container + "/images/a.img");
        AzureConfig.Clients clients = config.clients(at);
        clients.sync().create();
        clients.sync().getBlobClient(at.blob()).upload(BinaryData.fromBytes(object));
        System.setProperty("lazyblock.azure.key", Azurite.KEY);
    }

    @AfterAll
    static void stop() throws Exception {
        System.clearProperty("lazyblock.azure.key");
        if (server != null) {
            server.stop();
        }
    }

    private static void keytool(String... args) throws IOException, InterruptedException {
        List<String> command = new java.util.ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "keytool").toString());
        command.addAll(List.of(args));
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0, "keytool " + args[0] + ": " + out);
    }

    @Test
    void aBlobNamedByItsHttpsUrlIsReadThroughTheSdkNotAsPlainHttp() throws Exception {
        String url = "https://" + HOST + "/" + container + "/images/a.img";
        for (long seed : Seeds.seeds(2).toArray()) {
            Seeds.replayable(seed, () -> {
                try (Upstream up = Upstreams.open(url)) {
                    assertInstanceOf(AzureBlobUpstream.class, up, "claimed by the Azure provider");
                    assertEquals(url, up.name());
                    UpstreamReads.assertRandomRangesMatch(up, object, seed, 30);
                    assertNotNull(up.version(), "the blob's ETag");
                }
            });
        }
    }

    @Test
    void aWrongKeyIsRefusedByTheServerAndNotShown() throws Exception {
        String wrong = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3Jvbmc9PQ==";
        AzureConfig config = AzureConfig.builder().key(wrong).maxAttempts(1).build();
        AzureLocation at = AzureLocation.parse("https://" + HOST + "/" + container + "/images/a.img");
        try (Upstream up = AzureBlobUpstream.open(config, at)) {
            UpstreamException e = assertThrows(UpstreamException.class, () -> up.readFully(0, ByteBuffer.allocate(10)));
            assertTrue(e.getMessage().contains("403"), e.getMessage());
            assertFalse(e.getMessage().contains(wrong), e.getMessage());
        }
    }
}
