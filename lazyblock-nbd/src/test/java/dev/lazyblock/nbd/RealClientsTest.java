package dev.lazyblock.nbd;

import dev.lazyblock.testing.Tools;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/**
 * The server against the clients people use: libnbd's nbdinfo and nbdcopy, qemu-img and
 * qemu-io (Debian packages libnbd-bin, qemu-utils; .ci/run installs them). Every process runs
 * with a time limit.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class RealClientsTest {
    private static final int B = Images.B;
    private static final int CHUNK = Images.CHUNK;
    private static final int MIB = Images.MIB;

    private Path dir;
    private Fixture fx;

    @BeforeAll
    void start(@TempDir Path tmp) throws IOException {
        dir = tmp;
        for (String tool : List.of("nbdinfo", "nbdcopy", "qemu-img", "qemu-io")) {
            Tools.require(tool);
        }
        fx = Fixture.start(dir);
    }

    @AfterAll
    void stop() throws IOException {
        if (fx != null) {
            fx.close();
        }
    }

    // ------------------------------------------------------------------ nbdinfo

    @Test
    void nbdinfoShowsSizeFlagsBlockSizesAndContext() throws Exception {
        String json = Tools.run("nbdinfo", "--json", fx.uri("layered")).ok().output();
        assertEquals(Images.LAYERED_SIZE, number(json, "export-size"), json);
        assertEquals(1, number(json, "block_size_minimum"), json);
        assertEquals(4096, number(json, "block_size_preferred"), json);
        assertEquals(32 << 20, number(json, "block_size_maximum"), json);
        assertTrue(json.contains("\"is_read_only\": true"), json);
        assertTrue(json.contains("\"structured\": true"), json);
        assertTrue(json.contains("\"base:allocation\""), json);
        assertTrue(json.contains("\"can_multi_conn\": true"), json);

        String rw = Tools.run("nbdinfo", "--json", fx.uri("rw")).ok().output();
        assertTrue(rw.contains("\"is_read_only\": false"), rw);
        assertTrue(rw.contains("\"can_zero\": true"), rw);
        assertTrue(rw.contains("\"can_flush\": true"), rw);
        assertTrue(rw.contains("\"can_trim\": true"), rw);

        String raw = Tools.run("nbdinfo", "--json", fx.uri("raw")).ok().output();
        assertEquals(Fixture.RAW_SIZE, number(raw, "export-size"), raw);
    }

    @Test
    void nbdinfoListsEveryExport() throws Exception {
        String out = Tools.run("nbdinfo", "--list", fx.uri("")).ok().output();
        for (String name : List.of("raw", "layered", "rw", "ro")) {
            assertTrue(out.contains("export=\"" + name + "\""), out);
        }
        assertTrue(out.contains("raw test image"), out);
    }

    @Test
    void nbdinfoMapShowsZeroMappingsAsHoles() throws Exception {
        String out = Tools.run("nbdinfo", "--map", fx.uri("layered")).ok().output();
        List<long[]> map = parseMap(out);
        long tail = Images.LAYERED_SIZE - (12L * MIB + 64 * 1024);
        List<long[]> want = List.of(
                new long[] {0, 4L * MIB, 0},
                new long[] {4L * MIB, 2L * MIB, 3},
                new long[] {6L * MIB, 6L * MIB, 0},
                new long[] {12L * MIB, 64 * 1024, 3},
                new long[] {12L * MIB + 64 * 1024, tail, 0});
        assertEquals(render(want), render(map), out);
        assertTrue(out.contains("hole,zero"), out);

        // A chunker over one object: all data, one extent.
        List<long[]> rawMap = parseMap(Tools.run("nbdinfo", "--map", fx.uri("raw")).ok().output());
        assertEquals(render(List.of(new long[] {0, Fixture.RAW_SIZE, 0})), render(rawMap));
    }

    // ------------------------------------------------------------------ nbdcopy and qemu-img

    @Test
    void nbdcopyCopiesEveryExportByteIdentical() throws Exception {
        Path raw = dir.resolve("raw.copy");
        Tools.run("nbdcopy", fx.uri("raw"), raw.toString()).ok();
        assertEquals(-1, Files.mismatch(raw, fx.rawFile), "nbdcopy of the raw export differs from the source");

        Path layered = dir.resolve("layered.copy");
        Tools.run("nbdcopy", fx.uri("layered"), layered.toString()).ok();
        assertEquals(-1, Files.mismatch(layered, fx.layeredFile), "nbdcopy of the layered export differs");
    }

    @Test
    void qemuImgCompareAgrees() throws Exception {
        String a = Tools.run("qemu-img", "compare", "-f", "raw", "-F", "raw", fx.uri("raw"), fx.rawFile.toString())
                .ok().output();
        assertTrue(a.contains("Images are identical"), a);
        String b = Tools.run("qemu-img", "compare", "-f", "raw", "-F", "raw", fx.uri("layered"),
                fx.layeredFile.toString()).ok().output();
        assertTrue(b.contains("Images are identical"), b);
        String info = Tools.run("qemu-img", "info", "-f", "raw", fx.uri("layered")).ok().output();
        assertTrue(info.contains(Images.LAYERED_SIZE + " bytes"), info);
    }

    // ------------------------------------------------------------------ qemu-io

    /** One write of the random workload: a pattern byte (0 = write zeroes) over a range. */
    private record Write(long off, int len, int pattern) {}

    @Test
    void qemuIoRandomWritesAndReadsOnTheWritableExport() throws Exception {
        byte[] base = fx.layered.image();
        byte[] model = base.clone();
        int size = model.length;
        SplittableRandom rnd = new SplittableRandom(20240611);
        List<Write> writes = new ArrayList<>();
        for (int i = 0; i < 48; i++) {
            int kind = i % 6;
            long off;
            int len;
            switch (kind) {
                case 0 -> { // aligned blocks
                    off = (long) rnd.nextInt(size / B - 4) * B;
                    len = B * rnd.nextInt(1, 4);
                }
                case 1 -> { // unaligned, across a 4 MiB chunk boundary
                    off = (long) rnd.nextInt(1, 4) * CHUNK - rnd.nextInt(1, 3 * B);
                    len = rnd.nextInt(3 * B, 6 * B);
                }
                case 2 -> { // into a zero mapping, across its edge
                    off = 6L * MIB - rnd.nextInt(1, 2 * B);
                    len = rnd.nextInt(1, 4 * B);
                }
                case 3 -> { // tiny, unaligned
                    off = rnd.nextInt(size - 16);
                    len = rnd.nextInt(1, 16);
                }
                case 4 -> { // the unaligned tail of the image
                    len = rnd.nextInt(1, 2 * B);
                    off = size - len;
                }
                default -> { // unaligned, anywhere
                    off = rnd.nextInt(size - 3 * B);
                    len = rnd.nextInt(1, 3 * B);
                }
            }
            int pattern = i % 8 == 7 ? 0 : rnd.nextInt(1, 256);
            writes.add(new Write(off, len, pattern));
        }

        // Session 1: each write, then a read of the same range that must see it.
        List<String> cmd = Tools.cmd("qemu-io", "-f", "raw");
        for (Write w : writes) {
            cmd.add("-c");
            cmd.add(w.pattern() == 0 ? "write -z " + w.off() + " " + w.len()
                    : String.format("write -P 0x%02x %d %d", w.pattern(), w.off(), w.len()));
            cmd.add("-c");
            cmd.add(String.format("read -P 0x%02x %d %d", w.pattern(), w.off(), w.len()));
            Arrays.fill(model, (int) w.off(), (int) (w.off() + w.len()), (byte) w.pattern());
        }
        cmd.add(fx.uri("rw"));
        String out = Tools.run(cmd).ok().output();
        assertFalse(out.contains("Pattern verification failed"), out);
        assertFalse(out.toLowerCase().contains("error"), out);
        assertEquals(writes.size(), count(out, "wrote "), out);
        assertEquals(writes.size(), count(out, "read "), out);

        // Session 2, a new connection: random reads, aligned and not, across chunks, checked byte for byte.
        List<long[]> reads = new ArrayList<>();
        for (int i = 0; i < 24; i++) {
            long off = switch (i % 3) {
                case 0 -> (long) rnd.nextInt(size / B) * B;
                case 1 -> (long) rnd.nextInt(1, 4) * CHUNK - rnd.nextInt(1, 2 * B);
                default -> rnd.nextInt(size - 1);
            };
            int len = (int) Math.min(size - off, rnd.nextInt(1, 3 * B));
            reads.add(new long[] {off, len});
        }
        for (Write w : writes.subList(0, 8)) {
            reads.add(new long[] {w.off(), w.len()});
        }
        checkReads("rw", model, reads, false);

        // The whole export through another client matches the model.
        Path copy = dir.resolve("rw.copy");
        Tools.run("nbdcopy", fx.uri("rw"), copy.toString()).ok();
        byte[] got = Files.readAllBytes(copy);
        assertEquals(-1, Arrays.mismatch(got, model), "the writable export differs from base + writes at byte "
                + Arrays.mismatch(got, model));

        // A read-only export of the same base still reads the base where rw was written.
        checkReads("ro", base, reads, true);
        Path roCopy = dir.resolve("ro.copy");
        Tools.run("nbdcopy", fx.uri("ro"), roCopy.toString()).ok();
        assertEquals(-1, Files.mismatch(roCopy, fx.layeredFile), "the read-only export no longer reads as the base");
    }

    /** Reads each range with qemu-io's hex dump and compares it with {@code model}. */
    private void checkReads(String export, byte[] model, List<long[]> reads, boolean readOnly) throws Exception {
        List<String> cmd = Tools.cmd("qemu-io", "-f", "raw");
        if (readOnly) {
            cmd.add("-r");
        }
        for (long[] r : reads) {
            cmd.add("-c");
            cmd.add("read -v " + r[0] + " " + r[1]);
        }
        cmd.add(fx.uri(export));
        String out = Tools.run(cmd).ok().output();
        byte[] seen = new byte[model.length];
        boolean[] have = new boolean[model.length];
        Pattern line = Pattern.compile("^([0-9a-f]{8}):  (.*)$", Pattern.MULTILINE);
        Matcher m = line.matcher(out);
        while (m.find()) {
            long addr = Long.parseLong(m.group(1), 16);
            String rest = m.group(2);
            for (int i = 0; i < 16 && 3 * i + 2 <= rest.length(); i++) {
                String hex = rest.substring(3 * i, 3 * i + 2);
                if (!hex.matches("[0-9a-f]{2}") || (3 * i + 2 < rest.length() && rest.charAt(3 * i + 2) != ' ')) {
                    break;
                }
                if (i > 0 && rest.charAt(3 * i - 1) != ' ') {
                    break;
                }
                seen[(int) (addr + i)] = (byte) Integer.parseInt(hex, 16);
                have[(int) (addr + i)] = true;
                if (3 * i + 3 < rest.length() && rest.charAt(3 * i + 3) == ' ') {
                    break; // two spaces: the ASCII column follows
                }
            }
        }
        for (long[] r : reads) {
            for (long p = r[0]; p < r[0] + r[1]; p++) {
                if (!have[(int) p]) {
                    fail("qemu-io did not dump byte " + p + " of read [" + r[0] + ", +" + r[1] + ")\n" + out);
                }
                if (seen[(int) p] != model[(int) p]) {
                    fail(export + ": byte " + p + " of read [" + r[0] + ", +" + r[1] + ") is "
                            + (seen[(int) p] & 0xff) + ", expected " + (model[(int) p] & 0xff));
                }
            }
        }
    }

    // ------------------------------------------------------------------ parsing

    private static long number(String json, String key) {
        Matcher m = Pattern.compile("\"" + Pattern.quote(key) + "\": (\\d+)").matcher(json);
        if (!m.find()) {
            fail("no \"" + key + "\" in\n" + json);
        }
        return Long.parseLong(m.group(1));
    }

    /** nbdinfo --map lines: offset, length, type, description. */
    private static List<long[]> parseMap(String out) {
        List<long[]> map = new ArrayList<>();
        for (String l : out.strip().split("\n")) {
            String[] f = l.strip().split("\\s+");
            map.add(new long[] {Long.parseLong(f[0]), Long.parseLong(f[1]), Long.parseLong(f[2])});
        }
        return map;
    }

    private static String render(List<long[]> extents) {
        StringBuilder sb = new StringBuilder();
        for (long[] e : extents) {
            sb.append(Arrays.toString(e)).append('\n');
        }
        return sb.toString();
    }

    private static int count(String text, String what) {
        int n = 0;
        for (int i = text.indexOf(what); i >= 0; i = text.indexOf(what, i + 1)) {
            n++;
        }
        return n;
    }
}
