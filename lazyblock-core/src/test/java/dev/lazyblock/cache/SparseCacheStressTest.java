package dev.lazyblock.cache;

import dev.lazyblock.testing.Seeds;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.LongStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Many threads filling and reading one cache at once, with random pauses between steps so the
 * interleavings differ from run to run (and by seed). Every byte of the image is a function of
 * its offset, so any reader can tell a torn or stale read from a good one.
 */
class SparseCacheStressTest {
    static final int THREADS = 16;
    static final int STEPS = 3_000;

    @TempDir
    Path dir;

    static LongStream seeds() {
        return Seeds.seeds(4);
    }

    static byte expected(long offset) {
        long x = offset * 0x9E3779B97F4A7C15L;
        return (byte) (x ^ (x >>> 29) ^ (x >>> 47));
    }

    @ParameterizedTest
    @MethodSource("seeds")
    void concurrentFillersAndReadersNeitherLoseBitsNorTearReads(long seed) throws Exception {
        Seeds.replayable(seed, () -> {
            for (long granularity : new long[] {4096, 65536}) {
                run(seed, granularity);
            }
        });
    }

    private void run(long seed, long granularity) throws Exception {
        long size = (48L << 20) + 12345;
        try (SparseCache cache = SparseCache.create(dir.resolve("stress-" + granularity), size, 4096, granularity);
             ExecutorService pool = Executors.newFixedThreadPool(THREADS)) {
            CountDownLatch start = new CountDownLatch(1);
            List<Future<List<long[]>>> results = new ArrayList<>();
            for (int t = 0; t < THREADS; t++) {
                SplittableRandom rnd = new SplittableRandom(seed).split();
                for (int skip = 0; skip < t; skip++) {
                    rnd = rnd.split();
                }
                SplittableRandom mine = rnd;
                results.add(pool.submit(() -> {
                    start.await();
                    return worker(cache, mine, size, granularity);
                }));
            }
            start.countDown();
            List<long[]> marked = new ArrayList<>();
            for (Future<List<long[]>> f : results) {
                marked.addAll(f.get(2, TimeUnit.MINUTES));
            }
            for (long[] r : marked) {
                assertTrue(cache.isCached(r[0], r[1]), "range [" + r[0] + ", +" + r[1] + ") lost its bits");
            }
        }
    }

    /** Returns the ranges this thread marked present. */
    private static List<long[]> worker(SparseCache cache, SplittableRandom rnd, long size, long granularity)
            throws Exception {
        List<long[]> marked = new ArrayList<>();
        long granules = (size + granularity - 1) / granularity;
        byte[] buf = new byte[(int) (4 * granularity)];
        for (int step = 0; step < STEPS; step++) {
            // A small hot region makes threads collide on the same granules and words.
            long g = rnd.nextBoolean() ? rnd.nextLong(Math.min(granules, 256)) : rnd.nextLong(granules);
            long off = g * granularity;
            long len = Math.min(size - off, granularity * rnd.nextLong(1, 5));
            if (rnd.nextInt(3) == 0) {
                for (int i = 0; i < len; i++) {
                    buf[i] = expected(off + i);
                }
                cache.writeAt(buf, 0, (int) len, off);
                cache.setIsCached(off, len);
                marked.add(new long[] {off, len});
            } else {
                long roff = off + rnd.nextLong(len);
                int rlen = (int) rnd.nextLong(1, len - (roff - off) + 1);
                if (cache.isCached(roff, rlen)) {
                    int n = cache.readAt(buf, 0, rlen, roff);
                    assertEquals(rlen, n);
                    for (int i = 0; i < n; i++) {
                        if (buf[i] != expected(roff + i)) {
                            throw new AssertionError("torn or stale read at " + (roff + i) + ": got " + buf[i]
                                    + ", want " + expected(roff + i));
                        }
                    }
                } else {
                    try {
                        MemorySegment s = cache.slice(roff, rlen);
                        // Marked between our check and the slice: it must be whole then.
                        for (int i = 0; i < s.byteSize(); i++) {
                            assertEquals(expected(roff + i), s.get(ValueLayout.JAVA_BYTE, i));
                        }
                    } catch (NotCachedException expected) {
                        // the only exception a reader may see
                    }
                }
            }
            pause(rnd);
        }
        return marked;
    }

    private static void pause(SplittableRandom rnd) {
        switch (rnd.nextInt(8)) {
            case 0 -> Thread.yield();
            case 1 -> {
                for (int i = rnd.nextInt(200); i > 0; i--) {
                    Thread.onSpinWait();
                }
            }
            default -> { }
        }
    }

    @Test
    void concurrentSettersOfOneContainerLoseNoBit() throws Exception {
        // All threads hammer one container, through array-container copies and the switch to a
        // bitmap: every CAS retry must carry the other threads' bits forward.
        int granules = PresenceBitmap.CONTAINER_GRANULES;
        PresenceBitmap bitmap = new PresenceBitmap(granules);
        int threads = 32;
        CountDownLatch start = new CountDownLatch(1);
        try (ExecutorService pool = Executors.newFixedThreadPool(threads)) {
            List<Future<?>> fs = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int id = t;
                fs.add(pool.submit(() -> {
                    start.await();
                    // Thread t owns granules t, t+threads, ...: disjoint, interleaved in the words.
                    for (int g = id; g < granules; g += threads * 3) {
                        bitmap.set(g, g + 1);
                        if (!bitmap.get(g)) {
                            throw new AssertionError("own bit " + g + " not visible right after set");
                        }
                    }
                    return null;
                }));
            }
            start.countDown();
            for (Future<?> f : fs) {
                f.get(1, TimeUnit.MINUTES);
            }
        }
        long want = 0;
        for (int t = 0; t < threads; t++) {
            for (int g = t; g < granules; g += threads * 3) {
                assertTrue(bitmap.get(g), "bit " + g + " lost");
                want++;
            }
        }
        assertEquals(want, bitmap.cardinality());
    }
}
