package dev.lazyblock.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.upstream.DirectoryStore;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code lazyblock warm}, then {@code serve} of the warmed cache, against a real HTTP server and NBD client. */
class WarmCommandTest {
    @TempDir
    Path dir;

    record Run(int exit, String out, String err) {}

    static Run run(Object command, String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream o = System.out;
        PrintStream e = System.err;
        try {
            System.setOut(new PrintStream(out, true));
            System.setErr(new PrintStream(err, true));
            int code = new CommandLine(command).execute(args);
            return new Run(code, out.toString(), err.toString());
        } finally {
            System.setOut(o);
            System.setErr(e);
        }
    }

    private Path randomFile(String name, int size, long seed) throws Exception {
        byte[] b = new byte[size];
        new SplittableRandom(seed).nextBytes(b);
        Path p = dir.resolve(name);
        Files.createDirectories(p.getParent());
        return Files.write(p, b);
    }

    @Test
    void serveAfterWarmReadsEveryByteWithoutAnUpstreamRequest() throws Exception {
        Path image = randomFile("web/rootfs.img", 9 * (1 << 20) + 4321, 21);
        Path caches = dir.resolve("caches");
        try (RangeHttpServer http = new RangeHttpServer(dir.resolve("web"))) {
            Run warm = run(new WarmCommand(), http.url("rootfs.img"), "--cache-dir", caches.toString(), "--parallel", "3");
            assertEquals(0, warm.exit(), warm.err());
            assertTrue(warm.out().contains(String.format("warmed %s: %,d bytes", http.url("rootfs.img"),
                    Files.size(image))), warm.out());
            assertTrue(warm.err().contains("warm: 9.0 MiB of 9.0 MiB (100%)"), "the summary line: " + warm.err());
            assertEquals(3, http.gets.get(), "one request per 4 MiB chunk");

            http.gets.set(0);
            ServeCommandTest.Running s = new ServeCommandTest.Running(http.url("rootfs.img"), "--listen", "127.0.0.1:0",
                    "--cache-dir", caches.toString());
            Path copy = dir.resolve("copy");
            ClientTools.run("nbdcopy", s.uri("rootfs.img"), copy.toString());
            String out = s.stop();
            assertEquals(-1, Files.mismatch(image, copy), "the bytes are the image's");
            assertEquals(0, http.gets.get(), "no byte was fetched: every read was a hit");
            assertTrue(out.contains(String.format("%,d bytes present from earlier runs", Files.size(image))), out);

            Run again = run(new WarmCommand(), http.url("rootfs.img"), "--cache-dir", caches.toString());
            assertEquals(0, again.exit(), again.err());
            assertTrue(again.out().contains(String.format("(0 fetched now in 0 requests, %,d already cached)",
                    Files.size(image))), again.out());
        }
    }

    @Test
    void warmOfALayeredImageFetchesEveryBuild() throws Exception {
        Path raw = randomFile("base.raw", 2 * (4 << 20) + 8192, 22);
        DirectoryStore store = new DirectoryStore(dir.resolve("store"));
        LayerExporter.Layer base = LayerExporter.publishBase(raw, 4096, store, "vm");
        Path header = dir.resolve("store").resolve(base.headerKey());
        Path caches = dir.resolve("caches");
        Run warm = run(new WarmCommand(), header.toString(), "--cache-dir", caches.toString());
        assertEquals(0, warm.exit(), warm.err());
        assertTrue(warm.out().contains(String.format("%,d bytes in %s (%,d fetched now in 3 requests, 0 already cached)",
                Files.size(raw), caches, Files.size(raw))), warm.out());
        Run again = run(new WarmCommand(), header.toString(), "--cache-dir", caches.toString());
        assertTrue(again.out().contains("(0 fetched now in 0 requests"), again.out());
    }

    /**
     * A content-addressed image: warm fills DIR/content with its chunks by hash, and serve
     * --cache-dir DIR maps them from there with no request to the store.
     */
    @Test
    void serveMapsTheChunkFilesWarmKeptForAContentAddressedImage() throws Exception {
        Path raw = randomFile("cas.raw", 20 * (64 << 10) + 4096, 24);
        DirectoryStore store = new DirectoryStore(dir.resolve("store"));
        LayerExporter.Layer base = LayerExporter.publishBase(raw, 4096, store, "vm", n -> { },
                LayerExporter.Compression.NONE, LayerExporter.ContentAddressing.of(64 << 10));
        Path header = dir.resolve("store").resolve(base.headerKey());
        Path caches = dir.resolve("caches");
        Run warm = run(new WarmCommand(), header.toString(), "--cache-dir", caches.toString());
        assertEquals(0, warm.exit(), warm.err());
        assertTrue(warm.out().contains("fetched now in 21 requests"), warm.out());
        try (var s = Files.walk(caches.resolve("content"))) {
            assertEquals(21, s.filter(p -> p.toString().endsWith(".plain")).count(), "one file per chunk");
        }
        Run again = run(new WarmCommand(), header.toString(), "--cache-dir", caches.toString());
        assertEquals(0, again.exit(), again.err());
        assertTrue(again.out().contains(String.format("(0 fetched now in 0 requests, 0 already cached, %,d mapped "
                + "from the chunk files in %s)", 20 * (64 << 10) + 4096, caches.resolve("content"))), again.out());
        ServeCommandTest.Running s = new ServeCommandTest.Running(header.toString(), "--listen", "127.0.0.1:0",
                "--cache-dir", caches.toString());
        Path copy = dir.resolve("copy");
        ClientTools.run("nbdcopy", s.uri(header.getFileName().toString().replace(".header", "")), copy.toString());
        String out = s.stop();
        assertEquals(-1, Files.mismatch(raw, copy), "the bytes are the image's");
        assertTrue(out.contains("remote: 0 requests"), "every chunk mapped from warm's files: " + out);
        // Another process holding c2's content cache: warm goes on, into the build's kept cache.
        try (var held = new dev.lazyblock.content.ContentCache(dir.resolve("c2/content"), 1 << 30)) {
            Run shared = run(new WarmCommand(), header.toString(), "--cache-dir", dir.resolve("c2").toString());
            assertEquals(0, shared.exit(), shared.err());
            assertTrue(shared.err().contains("is in use by another process"), shared.err());
            assertTrue(shared.out().contains("fetched now in 21 requests"), shared.out());
        }
        Run bad = run(new WarmCommand(), header.toString(), "--cache-dir", dir.resolve("c3").toString(),
                "--content-cache", "lots");
        assertEquals(2, bad.exit());
        assertTrue(bad.err().contains("--content-cache: 'lots' is not a size"), bad.err());
    }

    @Test
    void warmWithoutACacheDirSaysWhatItNeeds() {
        Run r = run(new WarmCommand(), "x.img");
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("needs --cache-dir DIR"), r.err());
    }

    /**
     * warm --tier: the first host's warm fills the shared tier; a second host (another cache
     * directory) warms the same compressed image from the tier with no request to the store.
     */
    @Test
    void aSecondHostWarmsFromTheSharedTierWithoutStoreRequests() throws Exception {
        Path raw = Files.write(dir.resolve("text.raw"), ExportCommandTest.compressible(23, 3 * (2 << 20) + 4096));
        DirectoryStore store = new DirectoryStore(dir.resolve("store"));
        LayerExporter.Layer base = LayerExporter.publishBase(raw, 4096, store, "vm", n -> { },
                ExportCommand.compression("zstd", dir));
        Path header = dir.resolve("store").resolve(base.headerKey());
        Path tier = dir.resolve("tier");
        Run first = run(new WarmCommand(), header.toString(), "--cache-dir", dir.resolve("host1").toString(), "--tier",
                tier.toString(), "--tier-budget", "1G", "--tier-floor", "0");
        assertEquals(0, first.exit(), first.err());
        assertTrue(first.out().contains("fetched now in 4 requests"), first.out()); // 4 frames of 2 MiB
        assertTrue(first.out().contains("shared tier: 0 chunks (0 bytes) read from it, 4 missed"), first.out());
        try (var files = Files.list(tier.resolve(base.header().buildId().toString()))) {
            assertEquals(4, files.count());
        }
        Run second = run(new WarmCommand(), header.toString(), "--cache-dir", dir.resolve("host2").toString(), "--tier",
                tier.toString());
        assertEquals(0, second.exit(), second.err());
        // Nothing fetched from the store: every frame came from the tier.
        assertTrue(second.out().contains("(0 fetched now in 0 requests, 0 already cached); shared tier: 4 chunks ("),
                second.out());
        assertTrue(second.out().contains("read from it, 0 missed"), second.out());
        Run bad = run(new WarmCommand(), header.toString(), "--cache-dir", dir.resolve("host3").toString(), "--tier",
                tier.toString(), "--tier-budget", "lots");
        assertEquals(2, bad.exit());
        assertTrue(bad.err().contains("--tier-budget: 'lots' is not a size"), bad.err());
    }

    /**
     * A plain image (no layer header) shares the tier too, keyed by its name and version: a second
     * host reads every chunk from the tier; the image rewritten in place is a new key, fetched again.
     */
    @Test
    void aPlainImageIsSharedThroughTheTierByNameAndVersion() throws Exception {
        Path image = dir.resolve("disk.img");
        byte[] bytes = new byte[3 * (4 << 20) + 4096]; // 4 chunks, the last one short
        new java.util.Random(31).nextBytes(bytes);
        Files.write(image, bytes);
        Path tier = dir.resolve("tier");
        Run first = run(new WarmCommand(), image.toString(), "--cache-dir", dir.resolve("host1").toString(), "--tier",
                tier.toString(), "--tier-budget", "1G");
        assertEquals(0, first.exit(), first.err());
        assertTrue(first.out().contains("fetched now in 4 requests"), first.out());
        assertTrue(first.out().contains("shared tier: 0 chunks (0 bytes) read from it, 4 missed"), first.out());

        Run second = run(new WarmCommand(), image.toString(), "--cache-dir", dir.resolve("host2").toString(), "--tier",
                tier.toString());
        assertEquals(0, second.exit(), second.err());
        assertTrue(second.out().contains("(0 fetched now in 0 requests, 0 already cached); shared tier: 4 chunks ("
                + String.format("%,d", bytes.length) + " bytes) read from it, 0 missed"), second.out());

        new java.util.Random(32).nextBytes(bytes);
        Files.write(image, bytes);
        Files.setLastModifiedTime(image, java.nio.file.attribute.FileTime.from(
                Files.getLastModifiedTime(image).toInstant().plusSeconds(10)));
        Run third = run(new WarmCommand(), image.toString(), "--cache-dir", dir.resolve("host3").toString(), "--tier",
                tier.toString());
        assertEquals(0, third.exit(), third.err());
        assertTrue(third.out().contains("fetched now in 4 requests"), "another version, other chunks: " + third.out());
        assertTrue(third.out().contains("shared tier: 0 chunks (0 bytes) read from it, 4 missed"), third.out());
        try (var keys = Files.list(tier)) {
            assertEquals(2, keys.filter(p -> p.getFileName().toString().startsWith("image-")).count(),
                    "one key per version");
        }
    }
}
