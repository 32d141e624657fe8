package dev.lazyblock.upstream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/** Random ranges read through an upstream, compared byte for byte with the source. */
final class RangeReads {
    private RangeReads() {}

    record Range(long off, int len) {
        @Override
        public String toString() {
            return "[" + off + ", " + (off + len) + ")";
        }
    }

    static byte[] randomBytes(long seed, int size) {
        byte[] data = new byte[size];
        new Random(seed).nextBytes(data);
        return data;
    }

    static Path writeRandomFile(Path dir, String name, long seed, int size) throws IOException {
        return Files.write(dir.resolve(name), randomBytes(seed, size));
    }

    /**
     * {@code count} random ranges inside {@code [0, size)}, always including the edges: the
     * last byte, a range ending exactly at the end, the whole object, the first byte.
     */
    static List<Range> ranges(Random rnd, int size, int count) {
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
            out.add(new Range(off, len));
        }
        return out;
    }

    /** Heap or direct, at random: upstreams must fill both. */
    static ByteBuffer buffer(Random rnd, int len) {
        return rnd.nextBoolean() ? ByteBuffer.allocate(len) : ByteBuffer.allocateDirect(len);
    }

    static byte[] bytes(ByteBuffer b) {
        byte[] out = new byte[b.remaining()];
        b.get(out);
        return out;
    }

    static void assertReadFullyMatches(Upstream up, byte[] data, long seed, int count) throws IOException {
        Random rnd = new Random(seed);
        for (Range r : ranges(rnd, data.length, count)) {
            ByteBuffer dst = buffer(rnd, r.len());
            up.readFully(r.off(), dst);
            String what = "seed " + seed + ", readFully " + r;
            assertEquals(r.len(), dst.position(), what + ": position after the read");
            dst.flip();
            assertArrayEquals(Arrays.copyOfRange(data, (int) r.off(), (int) r.off() + r.len()),
                    bytes(dst), what);
        }
    }

    static void assertStreamsMatch(Upstream up, byte[] data, long seed, int count) throws IOException {
        Random rnd = new Random(seed);
        for (Range r : ranges(rnd, data.length, count)) {
            String what = "seed " + seed + ", openRange " + r;
            assertArrayEquals(Arrays.copyOfRange(data, (int) r.off(), (int) r.off() + r.len()),
                    readStream(up, r.off(), r.len(), rnd, what), what);
        }
    }

    /** Reads the whole range with random-sized buffers; also checks -1 only at the end. */
    static byte[] readStream(Upstream up, long off, int len, Random rnd, String what) throws IOException {
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
