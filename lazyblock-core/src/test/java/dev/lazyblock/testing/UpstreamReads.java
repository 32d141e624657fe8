package dev.lazyblock.testing;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.upstream.Upstream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * The property every upstream must hold, whatever its store: random ranges read through
 * {@link Upstream#readFully} and {@link Upstream#openRange}, compared byte for byte with the
 * bytes put there. Used by the file, HTTP, S3, GCS and Azure tests alike.
 */
public final class UpstreamReads {
    private UpstreamReads() {}

    public record Range(long off, int len) {
        @Override
        public String toString() {
            return "[" + off + ", " + (off + len) + ")";
        }
    }

    public static byte[] randomBytes(long seed, int size) {
        byte[] data = new byte[size];
        new Random(seed).nextBytes(data);
        return data;
    }

    public static Path writeRandomFile(Path dir, String name, long seed, int size) throws IOException {
        return Files.write(dir.resolve(name), randomBytes(seed, size));
    }

    /**
     * {@code count} random ranges inside {@code [0, size)}, always including the edges: the
     * last byte, a range ending exactly at the end, the whole object, the first byte; a quarter
     * of the rest end at the last byte too.
     */
    public static List<Range> ranges(Random rnd, int size, int count) {
        List<Range> out = new ArrayList<>();
        out.add(new Range(size - 1, 1));
        int tail = 1 + rnd.nextInt(Math.min(size, 100_000));
        out.add(new Range(size - tail, tail));
        out.add(new Range(0, size));
        out.add(new Range(0, 1));
        while (out.size() < count) {
            int maxLen = switch (rnd.nextInt(3)) {
                case 0 -> 16;
                case 1 -> 8192;
                default -> size;
            };
            long off = rnd.nextInt(size);
            int len = 1 + rnd.nextInt((int) Math.min(maxLen, size - off));
            // A fair share end at the last byte, where short reads and Content-Range slips show.
            out.add(rnd.nextInt(4) == 0 ? new Range(size - len, len) : new Range(off, len));
        }
        return out;
    }

    /** Heap or direct, at random: upstreams must fill both. */
    public static ByteBuffer buffer(Random rnd, int len) {
        return rnd.nextBoolean() ? ByteBuffer.allocate(len) : ByteBuffer.allocateDirect(len);
    }

    public static byte[] bytes(ByteBuffer b) {
        byte[] out = new byte[b.remaining()];
        b.get(out);
        return out;
    }

    /**
     * {@code count} ranges through {@code readFully}, each into a heap or direct buffer whose
     * position starts past a random pad: the upstream writes from the position and leaves it
     * after the bytes.
     */
    public static void assertReadFullyMatches(Upstream up, byte[] data, long seed, int count) throws IOException {
        Random rnd = new Random(seed);
        for (Range r : ranges(rnd, data.length, count)) {
            assertReadFully(up, data, r, rnd, "seed " + seed + ", readFully " + r);
        }
    }

    /** The same ranges through both read paths, one after the other. */
    public static void assertRandomRangesMatch(Upstream up, byte[] data, long seed, int count) throws IOException {
        Random rnd = new Random(seed);
        for (Range r : ranges(rnd, data.length, count)) {
            assertReadFully(up, data, r, rnd, "seed " + seed + ", readFully " + r);
            String what = "seed " + seed + ", openRange " + r;
            assertArrayEquals(expected(data, r), readStream(up, r.off(), r.len(), rnd, what), what);
        }
        assertEquals(data.length, up.size(), "size of " + up.name());
    }

    private static void assertReadFully(Upstream up, byte[] data, Range r, Random rnd, String what) throws IOException {
        int pad = rnd.nextInt(17);
        ByteBuffer dst = buffer(rnd, pad + r.len() + 16);
        dst.position(pad).limit(pad + r.len());
        up.readFully(r.off(), dst);
        assertEquals(pad + r.len(), dst.position(), what + ": position after the read");
        dst.flip().position(pad);
        assertArrayEquals(expected(data, r), bytes(dst), what);
    }

    private static byte[] expected(byte[] data, Range r) {
        return Arrays.copyOfRange(data, (int) r.off(), (int) r.off() + r.len());
    }

    public static void assertStreamsMatch(Upstream up, byte[] data, long seed, int count) throws IOException {
        Random rnd = new Random(seed);
        for (Range r : ranges(rnd, data.length, count)) {
            String what = "seed " + seed + ", openRange " + r;
            assertArrayEquals(expected(data, r), readStream(up, r.off(), r.len(), rnd, what), what);
        }
    }

    /** Reads the whole range with random-sized buffers; also checks -1 only at the end. */
    public static byte[] readStream(Upstream up, long off, int len, Random rnd, String what) throws IOException {
        ByteBuffer all = ByteBuffer.allocate(len);
        try (Upstream.RangeStream s = up.openRange(off, len)) {
            while (true) {
                ByteBuffer piece = buffer(rnd, 1 + rnd.nextInt(rnd.nextBoolean() ? 64 : 70_000));
                int n = s.read(piece);
                if (n < 0) {
                    break;
                }
                assertTrue(n > 0, what + ": a read returned 0 for a non-empty buffer");
                assertEquals(n, piece.position(), what + ": returned count vs buffer position");
                assertTrue(n <= all.remaining(), what + ": more bytes than the range");
                piece.flip();
                all.put(piece);
            }
        }
        assertEquals(len, all.position(), what + ": -1 before the end of the range");
        return all.array();
    }
}
