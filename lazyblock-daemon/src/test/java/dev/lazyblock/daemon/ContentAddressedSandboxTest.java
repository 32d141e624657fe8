package dev.lazyblock.daemon;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.testing.Tools;
import dev.lazyblock.upstream.DirectoryStore;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Two templates published content-addressed, the second derived from the first, served by one
 * daemon to nbdcopy: the store sees each distinct chunk fetched once, the daemon's content cache
 * holds each once (files by hash in the state directory), and a restarted daemon maps them again
 * without a fetch.
 */
class ContentAddressedSandboxTest {
    static final int CHUNK = 64 << 10;
    static final int CHUNKS = 24;

    @TempDir
    Path tmp;

    @Test
    void twoTemplatesThatShareChunksFetchAndHoldThemOnceAndARestartFetchesNothing() throws Exception {
        byte[] a = new byte[CHUNKS * CHUNK];
        new SplittableRandom(11).nextBytes(a);
        byte[] b = a.clone();
        for (int c : new int[] {3, 9, 17}) { // three chunks differ
            b[c * CHUNK + 7] ^= 1;
        }
        try (DaemonFixture f = new DaemonFixture(tmp, 1 << 20, c -> c)) {
            String ha;
            String hb;
            try (DirectoryStore ds = new DirectoryStore(tmp.resolve("store"))) {
                ha = publish(ds, tmp.resolve("a.raw"), a);
                hb = publish(ds, tmp.resolve("b.raw"), b);
            }
            JsonNode sa = f.create("a", f.http.uri("/" + ha).toString());
            int before = f.http.gets();
            Tools.run("nbdcopy", sa.get("nbdUri").asText(), tmp.resolve("a.out").toString()).ok();
            assertArrayEquals(a, Files.readAllBytes(tmp.resolve("a.out")));
            assertEquals(CHUNKS, f.http.gets() - before, "a's 24 chunks, one GET each");

            JsonNode sb = f.create("b", f.http.uri("/" + hb).toString());
            before = f.http.gets();
            Tools.run("nbdcopy", sb.get("nbdUri").asText(), tmp.resolve("b.out").toString()).ok();
            assertArrayEquals(b, Files.readAllBytes(tmp.resolve("b.out")));
            assertEquals(3, f.http.gets() - before, "b fetched only its 3 chunks of its own");

            Path content = tmp.resolve("state/content");
            assertEquals(CHUNKS + 3, plainFiles(content), "each distinct chunk held once");
            String scrape = f.client.get("/metrics").body();
            assertTrue(scrape.contains("lazyblock_daemon_content_chunks " + (CHUNKS + 3) + ".0"), scrape);
            assertTrue(scrape.contains("lazyblock_daemon_content_mapped_total 21.0"), scrape);
            f.daemon.delete("a");
            f.daemon.delete("b");
            f.api.close();
            f.daemon.close();

            try (Daemon again = new Daemon(DaemonConfig.defaults(tmp.resolve("state")), null)) {
                Daemon.SandboxInfo s = again.create(new Daemon.CreateRequest("b2", f.http.uri("/" + hb).toString(),
                        null, null, null));
                before = f.http.gets();
                Tools.run("nbdcopy", s.nbdUri(), tmp.resolve("b2.out").toString()).ok();
                assertArrayEquals(b, Files.readAllBytes(tmp.resolve("b2.out")));
                assertEquals(0, f.http.gets() - before, "every chunk mapped from the files the last run kept");
            }
        }
    }

    private static String publish(DirectoryStore ds, Path raw, byte[] bytes) throws Exception {
        Files.write(raw, bytes);
        return LayerExporter.publishBase(raw, 4096, ds, "cas", n -> { }, LayerExporter.Compression.NONE,
                LayerExporter.ContentAddressing.of(CHUNK)).headerKey();
    }

    private static long plainFiles(Path dir) throws Exception {
        try (Stream<Path> s = Files.walk(dir)) {
            return s.filter(p -> p.toString().endsWith(".plain")).count();
        }
    }
}
