package dev.lazyblock.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.testing.Await;
import dev.lazyblock.upstream.DirectoryStore;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.StandardOpenOption;
import java.util.stream.Stream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code lazyblock serve}, in-process, against real NBD clients. */
class ServeCommandTest {
    @TempDir
    Path dir;

    /** A {@code serve} running on its own thread, its standard output captured. */
    static final class Running {
        final ServeCommand command = new ServeCommand();
        final ByteArrayOutputStream out = new ByteArrayOutputStream();
        final Thread thread;
        volatile int exit = -1;

        Running(String... args) throws InterruptedException {
            PrintStream saved = System.out;
            System.setOut(new PrintStream(out, true));
            try {
                thread = Thread.ofPlatform().name("serve-test").start(
                        () -> exit = new CommandLine(command).execute(args));
                assertTrue(command.started.await(30, TimeUnit.SECONDS), "serve did not start within 30 s");
            } finally {
                System.setOut(saved);
            }
        }

        String uri(String export) {
            assertTrue(command.server != null, "serve did not start:\n" + out);
            return command.server.uri(export);
        }

        String stop() throws InterruptedException {
            command.stop();
            assertTrue(thread.join(Duration.ofSeconds(120)), "serve did not stop within 120 s");
            assertEquals(0, exit, out.toString());
            return out.toString();
        }
    }

    private Path randomFile(String name, int size, long seed) throws IOException {
        byte[] b = new byte[size];
        new SplittableRandom(seed).nextBytes(b);
        Path p = dir.resolve(name);
        Files.createDirectories(p.getParent());
        Files.write(p, b);
        return p;
    }

    @Test
    void metricsMoveWhileNbdcopyReads() throws Exception {
        Path image = randomFile("disk.img", 12 * (1 << 20), 4);
        Running s = new Running(image.toString(), "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
                "--cache-dir", dir.resolve("m").toString());
        String uri = s.uri("disk.img");
        var at = s.command.metricsServer.address();
        assertTrue(at.getAddress().isLoopbackAddress());
        java.net.http.HttpClient http = java.net.http.HttpClient.newHttpClient();
        java.net.http.HttpRequest get = java.net.http.HttpRequest.newBuilder(
                java.net.URI.create("http://127.0.0.1:" + at.getPort() + "/metrics")).build();
        String before = http.send(get, java.net.http.HttpResponse.BodyHandlers.ofString()).body();
        ClientTools.run("nbdcopy", uri, dir.resolve("copy").toString());
        String after = http.send(get, java.net.http.HttpResponse.BodyHandlers.ofString()).body();
        double fetchedBefore = series(before, "lazyblock_remote_bytes_total");
        double fetchedAfter = series(after, "lazyblock_remote_bytes_total");
        assertTrue(fetchedAfter >= Files.size(image) && fetchedAfter > fetchedBefore,
                "remote bytes moved from " + fetchedBefore + " to " + fetchedAfter);
        assertTrue(series(after, "lazyblock_cache_reads_total") > series(before, "lazyblock_cache_reads_total"));
        assertTrue(after.contains("lazyblock_cache_present_granules"), after);
        String out = s.stop();
        assertTrue(out.contains("metrics at http://127.0.0.1:" + at.getPort() + "/metrics"), out);
    }

    /** The sum of every series of a metric (0 if it has none yet). */
    private static double series(String scrape, String metric) {
        double sum = 0;
        for (String line : scrape.split("\n")) {
            if (line.startsWith(metric + "{") || line.startsWith(metric + " ")) {
                sum += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
            }
        }
        return sum;
    }

    @Test
    void servesARawImageReadOnlyAndReportsTheCache() throws Exception {
        Path image = randomFile("rootfs.ext4", 9 * (1 << 20) + 5, 1);
        Running s = new Running(image.toString(), "--listen", "127.0.0.1:0", "--cache-dir", dir.resolve("c").toString());
        String uri = s.uri("rootfs.ext4");
        String info = ClientTools.run("nbdinfo", "--json", uri).output();
        assertTrue(info.contains("\"export-size\": " + Files.size(image)), info);
        assertTrue(info.contains("\"is_read_only\": true"), info);
        Path copy = dir.resolve("copy");
        ClientTools.run("nbdcopy", uri, copy.toString());
        assertEquals(-1, Files.mismatch(image, copy));
        // nbdcopy's last reads are answered as their bytes land; the chunk is marked whole just after.
        Chunker served = (Chunker) s.command.server.exports().getFirst().device();
        Await.until(() -> served.cache().isCached(0, served.size()), Duration.ofSeconds(30),
                () -> "the whole image marked present after nbdcopy read it all");
        String out = s.stop();
        assertTrue(out.contains("export 'rootfs.ext4' at " + uri), out);
        assertTrue(out.contains("nbdinfo " + uri), out);
        assertTrue(out.contains("stopped."), out);
        assertTrue(out.contains("cache: " + String.format("%,d", Files.size(image)) + " of"), out);
        assertTrue(out.contains("(100.0%)"), out);
    }

    @Test
    void servesALayeredImageWritable() throws Exception {
        Path raw = randomFile("base.raw", 3 * (4 << 20) + 4096, 2);
        LayerExporter.Layer base = LayerExporter.publishBase(raw, 4096, new DirectoryStore(dir.resolve("store")),
                "images/vm1");
        Path header = dir.resolve("store").resolve(base.headerKey());
        Running s = new Running(header.toString(), "--writable", "--export", "vm1", "--listen", "127.0.0.1:0",
                "--chunker", "streaming");
        String uri = s.uri("vm1");
        String w = ClientTools.run("qemu-io", "-f", "raw", "-c", "write -P 0x5a 4190000 9000", "-c",
                "read -P 0x5a 4190000 9000", uri).output();
        assertFalse(w.contains("Pattern verification failed"), w);
        String r = ClientTools.run("qemu-io", "-f", "raw", "-c", "read -P 0x5a 4190000 9000", uri).output();
        assertFalse(r.contains("Pattern verification failed"), r);
        String out = s.stop();
        assertTrue(out.contains("layered image"), out);
        assertTrue(out.contains("writable"), out);
        assertTrue(out.contains("overlay: 4 blocks written"), out);
        assertEquals(-1, Files.mismatch(raw, dir.resolve("store").resolve(base.diffKey())), "the base was written");
    }

    @Test
    void whatClientsWroteExportsAsALayerWhenServeStops() throws Exception {
        Path raw = randomFile("base.raw", 2 * (4 << 20), 5);
        DirectoryStore store = new DirectoryStore(dir.resolve("store"));
        LayerExporter.Layer base = LayerExporter.publishBase(raw, 4096, store, "images/vm2");
        Path header = dir.resolve("store").resolve(base.headerKey());
        Running s = new Running(header.toString(), "--writable", "--export-layer", "--export", "vm2", "--listen",
                "127.0.0.1:0", "--cache-dir", dir.resolve("c2").toString());
        String uri = s.uri("vm2");
        ClientTools.run("qemu-io", "-f", "raw", "-c", "write -P 0x7e 4190000 9000", uri);
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream savedErr = System.err;
        String out;
        try {
            System.setErr(new PrintStream(err, true)); // where the export's progress goes
            out = s.stop();
        } finally {
            System.setErr(savedErr);
        }
        assertTrue(err.toString().contains("export layer: 16.0 KiB of 16.0 KiB (100%)"), "progress summary: " + err);
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("exported layer \\S+: 4 blocks stored .* header (\\S+)")
                .matcher(out);
        assertTrue(m.find(), out);
        // The new layer reads as the base with the write in it.
        Path exported = Path.of(m.group(1));
        assertEquals(header.getParent(), exported.getParent(), "the layer sits next to its parent's header");
        try (var next = dev.lazyblock.device.LayeredImage.open(new DirectoryStore(exported.getParent()),
                exported.getFileName().toString(), dir, dev.lazyblock.chunker.ChunkerKind.STREAMING,
                dev.lazyblock.chunker.ChunkerOptions.DEFAULTS)) {
            byte[] want = Files.readAllBytes(raw);
            java.util.Arrays.fill(want, 4190000, 4190000 + 9000, (byte) 0x7e);
            byte[] got = new byte[want.length];
            next.readAt(got, 0, got.length, 0);
            assertEquals(-1, java.util.Arrays.mismatch(want, got));
        }
    }

    /**
     * A zstd base layer served over NBD through a shared tier, written by qemu-io, exported at
     * stop as an LZ4 layer: the new layer is header version 2 with the new build compressed, and
     * reads back as the base with the write in it; the tier holds the frames the server fetched.
     */
    @Test
    void aCompressedLayerServedThroughATierExportsACompressedLayer() throws Exception {
        Path raw = Files.write(dir.resolve("base.raw"), ExportCommandTest.compressible(6, 2 * (4 << 20)));
        DirectoryStore store = new DirectoryStore(dir.resolve("store"));
        LayerExporter.Layer base = LayerExporter.publishBase(raw, 4096, store, "images/vm3", n -> { },
                ExportCommand.compression("zstd", dir));
        Path header = dir.resolve("store").resolve(base.headerKey());
        Path tier = dir.resolve("tier");
        Running s = new Running(header.toString(), "--writable", "--export-layer", "--compress", "lz4", "--export", "vm3",
                "--listen", "127.0.0.1:0", "--cache-dir", dir.resolve("c3").toString(), "--tier", tier.toString());
        String uri = s.uri("vm3");
        ClientTools.run("qemu-io", "-f", "raw", "-c", "write -P 0x7e 4190000 9000", uri);
        String out = s.stop();
        assertTrue(out.contains("shared tier: 0 chunks (0 bytes) read from it, "), "a cold tier, reported: " + out);
        java.util.regex.Matcher m = java.util.regex.Pattern.compile(
                "exported layer \\S+: 4 blocks stored \\(16,384 bytes, [\\d,]+ lz4\\).* header (\\S+)").matcher(out);
        assertTrue(m.find(), out);
        Path exported = Path.of(m.group(1));
        try (var next = dev.lazyblock.device.LayeredImage.open(new DirectoryStore(exported.getParent()),
                exported.getFileName().toString(), dir, dev.lazyblock.chunker.ChunkerKind.STREAMING,
                dev.lazyblock.chunker.ChunkerOptions.DEFAULTS)) {
            assertEquals(2, next.header().version());
            assertTrue(next.header().builds().getLast().compressed() && next.header().builds().getFirst().compressed());
            byte[] want = Files.readAllBytes(raw);
            java.util.Arrays.fill(want, 4190000, 4190000 + 9000, (byte) 0x7e);
            byte[] got = new byte[want.length];
            next.readAt(got, 0, got.length, 0);
            assertEquals(-1, java.util.Arrays.mismatch(want, got));
        }
        try (var frames = Files.list(tier.resolve(base.header().buildId().toString()))) {
            assertTrue(frames.count() >= 2, "the frames under the write (and those export compared) are in the tier");
        }
    }

    @Test
    void exportLayerNeedsAWritableLayeredImage() throws Exception {
        Path raw = randomFile("plain.raw", 1 << 20, 6);
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream saved = System.err;
        int code;
        try {
            System.setErr(new PrintStream(err, true));
            code = new CommandLine(new ServeCommand()).execute(raw.toString(), "--writable", "--export-layer");
        } finally {
            System.setErr(saved);
        }
        assertEquals(2, code);
        assertTrue(err.toString().contains("--export-layer needs a layered image"), err.toString());
    }

    @Test
    void servesOverHttpRawAndLayered() throws Exception {
        Path raw = randomFile("web/disk.img", 5 * (1 << 20) + 77, 3);
        LayerExporter.Layer base = LayerExporter.publishBase(raw, 4096, new DirectoryStore(dir.resolve("web")), "layers");
        try (RangeHttpServer http = new RangeHttpServer(dir.resolve("web"))) {
            Running s = new Running(http.url("disk.img"), "--listen", "127.0.0.1:0");
            Path copy = dir.resolve("http.copy");
            ClientTools.run("nbdcopy", s.uri("disk.img"), copy.toString());
            assertEquals(-1, Files.mismatch(raw, copy));
            s.stop();

            String id = base.header().buildId().toString();
            Running l = new Running(http.url(base.headerKey()), "--listen", "127.0.0.1:0");
            Path copy2 = dir.resolve("http-layered.copy");
            ClientTools.run("nbdcopy", l.uri(id), copy2.toString());
            assertEquals(-1, Files.mismatch(raw, copy2));
            assertTrue(l.stop().contains("layered image " + id), "default export name: the header's build id");
        }
    }

    @Test
    void aCacheFileTruncatedUnderServeIsAnIoErrorForTheClientAndServeLives() throws Exception {
        Path image = randomFile("disk.img", 8 << 20, 9);
        Path kept = dir.resolve("kept");
        Running s = new Running(image.toString(), "--listen", "127.0.0.1:0", "--cache-dir", kept.toString());
        String uri = s.uri("disk.img");
        ClientTools.run("qemu-io", "-f", "raw", "-r", "-c", "read 0 1M", uri); // cached now
        Path cacheFile;
        try (Stream<Path> files = Files.list(kept)) {
            cacheFile = files.filter(p -> p.toString().endsWith(".cache")).findFirst().orElseThrow();
        }
        try (FileChannel ch = FileChannel.open(cacheFile, StandardOpenOption.WRITE)) {
            ch.truncate(0);
        }
        ClientTools.Result r = ClientTools.runAllowingFailure("qemu-io", "-f", "raw", "-r", "-c", "read 0 64k", uri);
        assertTrue(r.output().contains("Input/output error"), r.output());
        ClientTools.Result miss = ClientTools.runAllowingFailure("qemu-io", "-f", "raw", "-r", "-c", "read 6M 64k", uri);
        assertTrue(miss.output().contains("Input/output error"), "a miss fails too: " + miss.output());
        String info = ClientTools.run("nbdinfo", uri).output();
        assertTrue(info.contains("export-size: " + Files.size(image)), "the server still answers: " + info);
        String out = s.stop();
        java.util.regex.Matcher errors = java.util.regex.Pattern.compile("bytes written, (\\d+) errors").matcher(out);
        assertTrue(errors.find() && Integer.parseInt(errors.group(1)) >= 2, "the failed reads are counted: " + out);
        assertFalse(Files.exists(Path.of(cacheFile.toString().replace(".cache", ".journal"))),
                "a failed cache keeps no presence journal");
    }

    @Test
    void aKeptCacheOfAnImageRewrittenAtTheSameSizeIsNotServed() throws Exception {
        Path image = randomFile("disk.img", 8 << 20, 21);
        Path kept = dir.resolve("kept-versions");
        Running first = new Running(image.toString(), "--listen", "127.0.0.1:0", "--cache-dir", kept.toString());
        ClientTools.run("nbdcopy", first.uri("disk.img"), dir.resolve("copy1").toString());
        Chunker served = (Chunker) first.command.server.exports().getFirst().device();
        Await.until(() -> served.cache().isCached(0, served.size()), Duration.ofSeconds(30),
                () -> "the whole image marked present");
        first.stop();

        Running again = new Running(image.toString(), "--listen", "127.0.0.1:0", "--cache-dir", kept.toString());
        assertTrue(again.out.toString().contains("(kept; 8,388,608 bytes present from earlier runs)"), again.out.toString());
        again.stop();

        byte[] rewritten = new byte[8 << 20];
        new SplittableRandom(22).nextBytes(rewritten);
        Files.write(image, rewritten);
        Files.setLastModifiedTime(image, java.nio.file.attribute.FileTime.from(
                Files.getLastModifiedTime(image).toInstant().plusSeconds(10)));

        Running changed = new Running(image.toString(), "--listen", "127.0.0.1:0", "--cache-dir", kept.toString());
        assertTrue(changed.out.toString().contains("(kept; 0 bytes present from earlier runs)"), changed.out.toString());
        Path copy = dir.resolve("copy3");
        ClientTools.run("nbdcopy", changed.uri("disk.img"), copy.toString());
        assertEquals(-1, Files.mismatch(image, copy), "the rewritten image, not the bytes kept from the old one");
        changed.stop();
    }

    @Test
    void badArgumentsExitWithTwo() {
        assertEquals(2, new CommandLine(new ServeCommand()).execute("x.img", "--chunker", "nope"));
        assertEquals(2, new CommandLine(new ServeCommand()).execute("x.img", "--listen", "nocolon"));
        assertEquals(2, new CommandLine(new ServeCommand()).execute("x.img", "--export", "a/../b"));
    }

    @Test
    void argumentHelpers() {
        assertEquals(new InetSocketAddress("127.0.0.1", 10809), ServeCommand.parseListen("127.0.0.1:10809"));
        assertEquals(0, ServeCommand.parseListen(":0").getPort());
        assertTrue(ServeCommand.parseListen(":0").getAddress().isLoopbackAddress());
        assertEquals(new InetSocketAddress("::1", 5), ServeCommand.parseListen("[::1]:5"));
        assertEquals("rootfs.ext4", ServeCommand.defaultExportName("/srv/rootfs.ext4"));
        assertEquals("rootfs.ext4", ServeCommand.defaultExportName("https://h/x/rootfs.ext4?X-Amz-Signature=s"));
        assertEquals("abc", ServeCommand.defaultExportName("s3://bucket/vm/abc.header"));
        assertEquals("image", ServeCommand.defaultExportName("https://h/"));
        assertTrue(ServeCommand.isHeader("s3://b/k/x.header"));
        assertTrue(ServeCommand.isHeader("/a/b.header"));
        assertFalse(ServeCommand.isHeader("https://h/a.img?x=.header"));
    }

    @Test
    void aTenantSecretTooShortIsExitTwoNamingTheVariable() throws Exception {
        Path img = Files.write(dir.resolve("x.img"), new byte[4096]);
        Path log = dir.resolve("serve.log");
        ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                Main.class.getName(), "serve", img.toString(), "--listen", "127.0.0.1:0")
                .redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().put(ExportCommand.SECRET_ENV, "too short");
        Process p = pb.start();
        try {
            assertTrue(p.waitFor(60, TimeUnit.SECONDS), "serve did not exit: " + Files.readString(log));
        } finally {
            p.destroyForcibly();
        }
        String out = Files.readString(log);
        assertEquals(2, p.exitValue(), out);
        assertTrue(out.contains("lazyblock serve: $" + ExportCommand.SECRET_ENV + ": "), out);
        assertFalse(out.contains("too short"), "the secret is not echoed: " + out);
    }

    @Test
    void anEncryptedImageWithoutItsTenantsSecretIsExitTwoSayingSo() throws Exception {
        Path raw = dir.resolve("enc.raw");
        byte[] bytes = new byte[256 << 10];
        new java.util.Random(3).nextBytes(bytes);
        Files.write(raw, bytes);
        String header;
        try (dev.lazyblock.upstream.DirectoryStore ds = new dev.lazyblock.upstream.DirectoryStore(dir.resolve("store"))) {
            header = dev.lazyblock.device.LayerExporter.publishBase(raw, 4096, ds, "enc", n -> { },
                    dev.lazyblock.device.LayerExporter.Compression.NONE,
                    dev.lazyblock.device.LayerExporter.ContentAddressing.of(64 << 10).encrypted(
                            dev.lazyblock.content.ContentCipher.fromSecret("a tenant's secret, long enough".getBytes(
                                    java.nio.charset.StandardCharsets.UTF_8)))).headerKey();
        }
        org.junit.jupiter.api.Assumptions.assumeTrue(System.getenv(ExportCommand.SECRET_ENV) == null);
        DaemonCommandTest.Run r = DaemonCommandTest.lazyblock("serve", dir.resolve("store").resolve(header).toString(),
                "--listen", "127.0.0.1:0", "--cache-dir", dir.resolve("cache").toString());
        assertEquals(2, r.exit(), r.err());
        assertTrue(r.err().contains("is encrypted"), r.err());
    }
}
