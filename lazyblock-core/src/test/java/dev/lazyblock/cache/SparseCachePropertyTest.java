package dev.lazyblock.cache;

import dev.lazyblock.testing.Seeds;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;


import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Random sequences of every cache operation, at random and edge offsets, against a plain
 * in-memory model: a byte array and a boolean per granule.
 */
class SparseCachePropertyTest {
    @TempDir
    Path dir;

    static Stream<Arguments> cases() {
        return Seeds.seeds(12).boxed().flatMap(seed -> Stream.of(4096L, 16384L, 2L << 20)
                .map(granularity -> Arguments.of(seed, granularity)));
    }

    @ParameterizedTest(name = "seed {0}, granularity {1}")
    @MethodSource("cases")
    void everyOperationAgreesWithTheModel(long seed, long granularity) throws Exception {
        Seeds.replayable(seed, () -> run(seed, granularity));
    }

    private void run(long seed, long granularity) throws Exception {
        SplittableRandom rnd = new SplittableRandom(seed);
        // Not a multiple of the granularity nor of the block: the last granule is short.
        int size = (int) (granularity * rnd.nextInt(3, 9) + rnd.nextInt(1, 4096 * 3));
        Model model = new Model(size, granularity);
        try (SparseCache cache = SparseCache.create(dir.resolve("c-" + seed + "-" + granularity), size, 4096, granularity)) {
            for (int step = 0; step < 600; step++) {
                long off = offset(rnd, size, granularity);
                long len = length(rnd, granularity);
                String what = "step " + step + " [" + off + ", +" + len + ")";
                switch (rnd.nextInt(7)) {
                    case 0, 1 -> write(cache, model, rnd, off, len, what);
                    case 2 -> mark(cache, model, off, len, what);
                    case 3 -> assertIsCached(cache, model, off, len, what);
                    case 4 -> assertSlice(cache, model, off, len, what);
                    case 5 -> assertReadAt(cache, model, off, len, what);
                    default -> assertSliceDirect(cache, model, off, len, what);
                }
            }
        }
    }

    private static long offset(SplittableRandom rnd, int size, long granularity) {
        return switch (rnd.nextInt(6)) {
            case 0 -> new long[] {0, size - 1, size, size + 1, -1, Long.MIN_VALUE}[rnd.nextInt(6)];
            case 1, 2 -> { // a granule edge, or one byte either side of it
                long edge = rnd.nextLong(size / granularity + 1) * granularity;
                yield edge + rnd.nextInt(-1, 2);
            }
            default -> rnd.nextLong(size);
        };
    }

    private static long length(SplittableRandom rnd, long granularity) {
        return switch (rnd.nextInt(6)) {
            case 0 -> new long[] {0, -1, 1, Long.MAX_VALUE}[rnd.nextInt(4)];
            case 1 -> granularity + rnd.nextInt(-1, 2);
            case 2 -> rnd.nextLong(1, 3 * granularity);
            default -> rnd.nextLong(1, 20_000);
        };
    }

    private static void write(SparseCache cache, Model model, SplittableRandom rnd, long off, long len, String what)
            throws Exception {
        if (len < 0 || len > 3 * model.bytes.length) {
            return; // writes take an array: nothing to ask of an impossible length
        }
        byte[] src = new byte[(int) len];
        rnd.nextBytes(src);
        if (off < 0 || off > model.bytes.length || len > model.bytes.length - off) {
            assertThrows(IndexOutOfBoundsException.class, () -> cache.writeAt(src, 0, src.length, off), what);
            return;
        }
        cache.writeAt(src, 0, src.length, off);
        System.arraycopy(src, 0, model.bytes, (int) off, src.length);
    }

    private static void mark(SparseCache cache, Model model, long off, long len, String what) {
        if (len <= 0) {
            cache.setIsCached(off, len);
            return;
        }
        if (off < 0 || off >= model.bytes.length) {
            assertThrows(IndexOutOfBoundsException.class, () -> cache.setIsCached(off, len), what);
            return;
        }
        cache.setIsCached(off, len);
        model.mark(off, len);
    }

    private static void assertIsCached(SparseCache cache, Model model, long off, long len, String what) {
        if (len > 0 && off < 0) {
            assertThrows(IndexOutOfBoundsException.class, () -> cache.isCached(off, len), what);
            return;
        }
        assertEquals(model.isCached(off, len), cache.isCached(off, len), what);
    }

    private static void assertSlice(SparseCache cache, Model model, long off, long len, String what) {
        Expect e = model.expectRead(off, len, true);
        switch (e) {
            case Expect.Fails f -> assertThrows(f.type(), () -> cache.slice(off, len), what);
            case Expect.Bytes b -> {
                MemorySegment view = cache.slice(off, len);
                assertArrayEquals(b.bytes(), view.toArray(ValueLayout.JAVA_BYTE), what);
                assertThrows(IllegalArgumentException.class, () -> view.set(ValueLayout.JAVA_BYTE, 0, (byte) 1),
                        "a slice is read-only");
            }
        }
    }

    private static void assertSliceDirect(SparseCache cache, Model model, long off, long len, String what) {
        switch (model.expectRead(off, len, false)) {
            case Expect.Fails f -> assertThrows(f.type(), () -> cache.sliceDirect(off, len), what);
            case Expect.Bytes b -> assertArrayEquals(b.bytes(), cache.sliceDirect(off, len).toArray(ValueLayout.JAVA_BYTE), what);
        }
    }

    private static void assertReadAt(SparseCache cache, Model model, long off, long len, String what) {
        int asked = (int) Math.min(Math.max(len, 0), 40_000);
        if (len < 0) {
            // The byte[] form cannot express a negative length; the segment form's is its size.
            assertThrows(IndexOutOfBoundsException.class, () -> cache.readAt(new byte[0], 0, (int) Math.max(len, -1), off), what);
            return;
        }
        switch (model.expectRead(off, asked, true)) {
            case Expect.Fails f -> assertThrows(f.type(), () -> cache.readAt(new byte[asked], 0, asked, off), what);
            case Expect.Bytes b -> {
                byte[] dst = new byte[asked + 2];
                int n = cache.readAt(dst, 1, asked, off);
                assertEquals(b.bytes().length, n, what);
                assertArrayEquals(b.bytes(), Arrays.copyOfRange(dst, 1, 1 + n), what);
                MemorySegment seg = MemorySegment.ofArray(new byte[asked]);
                assertEquals(n, cache.readAt(seg, off), what);
                assertArrayEquals(b.bytes(), seg.asSlice(0, n).toArray(ValueLayout.JAVA_BYTE), what);
            }
        }
    }

    sealed interface Expect {
        record Fails(Class<? extends Throwable> type) implements Expect {}

        record Bytes(byte[] bytes) implements Expect {}
    }

    /** The cache as a byte array and a presence flag per granule. */
    static final class Model {
        final byte[] bytes;
        final boolean[] present;
        final long granularity;

        Model(int size, long granularity) {
            this.bytes = new byte[size];
            this.granularity = granularity;
            this.present = new boolean[(int) ((size + granularity - 1) / granularity)];
        }

        void mark(long off, long len) {
            long end = Math.min(bytes.length, off + Math.min(len, bytes.length));
            for (long g = off / granularity; g * granularity < end; g++) {
                present[(int) g] = true;
            }
        }

        boolean isCached(long off, long len) {
            if (len <= 0) {
                return true;
            }
            if (off >= bytes.length) {
                return false;
            }
            long end = Math.min(bytes.length, off + Math.min(len, bytes.length));
            for (long g = off / granularity; g * granularity < end; g++) {
                if (!present[(int) g]) {
                    return false;
                }
            }
            return true;
        }

        Expect expectRead(long off, long len, boolean checked) {
            if (len < 0) {
                return new Expect.Fails(IllegalArgumentException.class);
            }
            if (off < 0 || off >= bytes.length) {
                return new Expect.Fails(IndexOutOfBoundsException.class);
            }
            long end = Math.min(bytes.length, off + Math.min(len, bytes.length));
            if (checked && !isCached(off, end - off)) {
                return new Expect.Fails(NotCachedException.class);
            }
            return new Expect.Bytes(Arrays.copyOfRange(bytes, (int) off, (int) end));
        }
    }

}
