package dev.lazyblock.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.upstream.DirectoryStore;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ExportCommandTest {
    @TempDir
    Path dir;

    @Test
    void aRawFileExportedAsABaseLayerReadsBackAsTheSameBytes() throws Exception {
        byte[] bytes = new byte[5 * (1 << 20) + 99];
        new SplittableRandom(41).nextBytes(bytes);
        Path raw = Files.write(dir.resolve("rootfs.raw"), bytes);
        Path dest = dir.resolve("layers/vm1");
        WarmCommandTest.Run r = WarmCommandTest.run(new ExportCommand(), raw.toString(), dest.toString());
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.err().contains("export rootfs.raw: 5.0 MiB of 5.0 MiB (100%)"), "a summary line: " + r.err());
        Matcher m = Pattern.compile("exported .* as base layer (\\S+): 5,242,979 bytes, block 4,096; header (\\S+)")
                .matcher(r.out());
        assertTrue(m.find(), r.out());
        Path header = Path.of(m.group(2));
        assertEquals(dest, header.getParent());
        assertEquals(m.group(1) + ".header", header.getFileName().toString());
        try (LayeredImage image = LayeredImage.open(new DirectoryStore(dest), header.getFileName().toString(), dir,
                ChunkerKind.FULL_FETCH, ChunkerOptions.DEFAULTS)) {
            byte[] got = new byte[bytes.length];
            image.readAt(got, 0, got.length, 0);
            assertEquals(-1, java.util.Arrays.mismatch(bytes, got));
        }
    }

    @Test
    void anHttpDestinationOrAMissingFileIsRefused() throws Exception {
        Path raw = Files.write(dir.resolve("x.raw"), new byte[4096]);
        WarmCommandTest.Run http = WarmCommandTest.run(new ExportCommand(), raw.toString(), "https://example.com/x");
        assertEquals(2, http.exit());
        assertTrue(http.err().contains("cannot write to https://"), http.err());
        WarmCommandTest.Run missing = WarmCommandTest.run(new ExportCommand(), dir.resolve("nope").toString(), dir.toString());
        assertEquals(2, missing.exit());
        assertTrue(missing.err().contains("is not a regular file"), missing.err());
    }

    /** A text-like image, so compression has something to save. */
    static byte[] compressible(long seed, int n) {
        SplittableRandom r = new SplittableRandom(seed);
        String[] words = {"usr", "lib", "share", "kernel", "module", "lazyblock", "frame", "the", "of", "image"};
        StringBuilder sb = new StringBuilder(n + 16);
        while (sb.length() < n) {
            sb.append(words[r.nextInt(words.length)]).append(r.nextInt(6) == 0 ? '\n' : ' ');
        }
        return sb.substring(0, n).getBytes(java.nio.charset.StandardCharsets.US_ASCII);
    }

    /**
     * export --compress zstd|lz4: a version 2 layer that reads back as the same bytes; inspect
     * shows the codec and the ratio; get --compress publishes a downloaded image the same way.
     */
    @Test
    void compressedExportReadsBackAndInspectShowsTheRatio() throws Exception {
        byte[] bytes = compressible(42, 5 * (1 << 20) + 4096);
        Path raw = Files.write(dir.resolve("rootfs.raw"), bytes);
        for (String codec : new String[] {"zstd", "lz4"}) {
            Path dest = dir.resolve("layers-" + codec);
            WarmCommandTest.Run r = WarmCommandTest.run(new ExportCommand(), raw.toString(), dest.toString(),
                    "--compress", codec);
            assertEquals(0, r.exit(), r.err());
            Matcher m = Pattern.compile(codec + ": ([\\d,]+) bytes stored \\(([\\d.]+)%\\); header (\\S+)").matcher(r.out());
            assertTrue(m.find(), r.out());
            assertTrue(Double.parseDouble(m.group(2)) < 50, codec + " should halve text: " + r.out());
            Path header = Path.of(m.group(3));
            try (LayeredImage image = LayeredImage.open(new DirectoryStore(dest), header.getFileName().toString(), dir,
                    ChunkerKind.STREAMING, ChunkerOptions.DEFAULTS)) {
                assertEquals(2, image.header().version());
                byte[] got = new byte[bytes.length];
                image.readAt(got, 0, got.length, 0);
                assertEquals(-1, java.util.Arrays.mismatch(bytes, got));
            }
            WarmCommandTest.Run inspect = WarmCommandTest.run(new InspectCommand(), header.toString());
            assertEquals(0, inspect.exit(), inspect.err());
            assertTrue(inspect.out().contains("header     version 2") && inspect.out().contains(codec + " ")
                    && inspect.out().contains("x, 3 x 2048 KiB") && inspect.out().contains("ratio "), inspect.out());
        }
        // Smaller frames: more of them in the table.
        Path small = dir.resolve("small-frames");
        WarmCommandTest.Run f = WarmCommandTest.run(new ExportCommand(), raw.toString(), small.toString(), "--compress",
                "lz4", "--frame-kib", "512");
        assertEquals(0, f.exit(), f.err());
        Matcher hm = Pattern.compile("header (\\S+)").matcher(f.out());
        assertTrue(hm.find(), f.out());
        WarmCommandTest.Run fi = WarmCommandTest.run(new InspectCommand(), hm.group(1));
        assertTrue(fi.out().contains("x, 11 x 512 KiB"), fi.out());
        WarmCommandTest.Run odd = WarmCommandTest.run(new ExportCommand(), raw.toString(), small.toString(), "--compress",
                "lz4", "--frame-kib", "300");
        assertEquals(2, odd.exit());
        assertTrue(odd.err().contains("--frame-kib must be a power of two"), odd.err());
        WarmCommandTest.Run none = WarmCommandTest.run(new ExportCommand(), raw.toString(), dir.resolve("plain").toString(),
                "--compress", "none");
        assertEquals(0, none.exit(), none.err());
        assertTrue(!none.out().contains("stored ("), none.out());
        WarmCommandTest.Run bad = WarmCommandTest.run(new ExportCommand(), raw.toString(), dir.toString(), "--compress", "xz");
        assertEquals(2, bad.exit());
        assertTrue(bad.err().contains("unknown codec 'xz'"), bad.err());

        // get --compress: download the raw image and publish it compressed.
        Path dest = dir.resolve("from-get");
        WarmCommandTest.Run g = WarmCommandTest.run(new GetCommand(), raw.toString(), dest.toString(), "--compress", "zstd");
        assertEquals(0, g.exit(), g.err());
        Matcher m = Pattern.compile("header (\\S+)").matcher(g.out());
        assertTrue(m.find(), g.out());
        try (LayeredImage image = LayeredImage.open(new DirectoryStore(dest), Path.of(m.group(1)).getFileName().toString(),
                dir, ChunkerKind.FULL_FETCH, ChunkerOptions.DEFAULTS)) {
            assertTrue(image.header().builds().getFirst().compressed());
            byte[] got = new byte[bytes.length];
            image.readAt(got, 0, got.length, 0);
            assertEquals(-1, java.util.Arrays.mismatch(bytes, got));
        }
    }

    /**
     * get --content-addressed --encrypt publishes as export --encrypt does: chunks encrypted with
     * the tenant secret from the environment, read back only with it; without the variable, exit 2.
     */
    @Test
    void getEncryptsWithTheTenantSecretLikeExport() throws Exception {
        byte[] bytes = new byte[5 * (64 << 10) + 4096];
        new SplittableRandom(9).nextBytes(bytes);
        Path raw = Files.write(dir.resolve("enc.raw"), bytes);
        Path dest = dir.resolve("encrypted");
        String secret = "get's tenant secret, 16+ bytes";
        Path log = dir.resolve("get.log");
        ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                Main.class.getName(), "get", raw.toString(), dest.toString(), "--compress", "zstd",
                "--content-addressed", "--chunk-kib", "64", "--encrypt")
                .redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().put(ExportCommand.SECRET_ENV, secret);
        Process p = pb.start();
        try {
            assertTrue(p.waitFor(120, java.util.concurrent.TimeUnit.SECONDS), "get did not exit: " + Files.readString(log));
        } finally {
            p.destroyForcibly();
        }
        String out = Files.readString(log);
        assertEquals(0, p.exitValue(), out);
        assertTrue(!out.contains(secret), "the secret is not echoed: " + out);
        Matcher m = Pattern.compile("header (\\S+)").matcher(out);
        assertTrue(m.find(), out);
        String header = Path.of(m.group(1)).getFileName().toString();
        dev.lazyblock.content.ContentCipher cipher = dev.lazyblock.content.ContentCipher.fromSecret(
                secret.getBytes(java.nio.charset.StandardCharsets.UTF_8));
        try (LayeredImage image = LayeredImage.open(new DirectoryStore(dest), header, dir, ChunkerKind.FULL_FETCH,
                ChunkerOptions.DEFAULTS.withContentCipher(cipher))) {
            assertTrue(image.header().builds().getFirst().content().encrypted());
            byte[] got = new byte[bytes.length];
            image.readAt(got, 0, got.length, 0);
            assertEquals(-1, java.util.Arrays.mismatch(bytes, got));
        }
        org.junit.jupiter.api.Assumptions.assumeTrue(System.getenv(ExportCommand.SECRET_ENV) == null);
        WarmCommandTest.Run none = WarmCommandTest.run(new GetCommand(), raw.toString(), dir.resolve("none").toString(),
                "--compress", "zstd", "--content-addressed", "--encrypt");
        assertEquals(2, none.exit());
        assertTrue(none.err().contains("--encrypt needs the tenant secret in $" + ExportCommand.SECRET_ENV), none.err());
    }
}
