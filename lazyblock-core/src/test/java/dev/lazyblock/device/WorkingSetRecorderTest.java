package dev.lazyblock.device;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.testing.Seeds;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class WorkingSetRecorderTest {
    private static final int GRANULE = 64 << 10;

    private static MemoryDevice device(int size, long seed) {
        byte[] b = new byte[size];
        new SplittableRandom(seed).nextBytes(b);
        return new MemoryDevice(b);
    }

    @Test
    void recordsTheFirstBlockReadInEachGranuleInFirstReadOrder() throws Exception {
        WorkingSetRecorder r = new WorkingSetRecorder(device(1 << 20, 1), GRANULE);
        byte[] buf = new byte[8192];
        r.readAt(buf, 0, 100, 5 * GRANULE + 4096 + 17);   // granule 5, block at +4096
        r.readAt(buf, 0, 4096, 5 * GRANULE);              // granule 5 again: nothing new
        r.readAt(buf, 0, 8192, 2 * GRANULE - 4096);       // straddles 1 and 2: both, in order
        r.readAt(buf, 0, 10, 15 * GRANULE + GRANULE - 1); // the last byte of the device
        assertEquals(List.of(5L * GRANULE + 4096, 2L * GRANULE - 4096, 2L * GRANULE, 15L * GRANULE + GRANULE - 4096),
                r.workingSet().offsets());
        assertEquals(4096, r.workingSet().pageSize());
    }

    @Test
    void readsPassThroughUnchangedAndBadOffsetsFailAsTheDeviceDoes() throws Exception {
        MemoryDevice d = device(1 << 20, 2);
        WorkingSetRecorder r = new WorkingSetRecorder(d, GRANULE);
        byte[] got = new byte[5000];
        assertEquals(5000, r.readAt(got, 0, 5000, 123_456));
        byte[] want = new byte[5000];
        System.arraycopy(d.bytes, 123_456, want, 0, 5000);
        assertArrayEquals(want, got);
        assertThrows(IndexOutOfBoundsException.class, () -> r.readAt(got, 0, 10, 1 << 20));
        assertThrows(IndexOutOfBoundsException.class, () -> r.readAt(got, 0, 10, -1));
        assertEquals(List.of(1L * GRANULE + 57344), r.workingSet().offsets(), "failed reads record nothing");
        assertThrows(IllegalArgumentException.class, () -> new WorkingSetRecorder(d, 1000));
    }

    @Test
    void manyReadersRecordEveryTouchedGranuleOnceWithABlockOneOfThemRead() throws Exception {
        for (long seed : Seeds.seeds(5).toArray()) {
            Seeds.replayable(seed, () -> {
                int size = 8 << 20;
                WorkingSetRecorder r = new WorkingSetRecorder(device(size, seed), GRANULE);
                int threads = 16;
                Map<Long, Set<Long>> readBlocks = new ConcurrentHashMap<>();
                CountDownLatch go = new CountDownLatch(1);
                List<Future<?>> done = new ArrayList<>();
                try (ExecutorService pool = Executors.newFixedThreadPool(threads)) {
                    for (int t = 0; t < threads; t++) {
                        SplittableRandom rnd = new SplittableRandom(seed + t);
                        done.add(pool.submit(() -> {
                            go.await();
                            try (Arena a = Arena.ofConfined()) {
                                MemorySegment buf = a.allocate(4096);
                                for (int i = 0; i < 400; i++) {
                                    long block = rnd.nextLong(size / 4096);
                                    readBlocks.computeIfAbsent(block * 4096 / GRANULE, g -> ConcurrentHashMap.newKeySet())
                                            .add(block * 4096);
                                    r.readAt(buf, block * 4096);
                                }
                            }
                            return null;
                        }));
                    }
                    go.countDown();
                    for (Future<?> f : done) {
                        f.get();
                    }
                }
                List<Long> recorded = r.workingSet().offsets();
                Map<Long, Long> byGranule = new HashMap<>();
                for (long off : recorded) {
                    assertEquals(null, byGranule.put(off / GRANULE, off), "granule " + off / GRANULE + " recorded twice");
                    assertTrue(readBlocks.get(off / GRANULE).contains(off), "recorded " + off + ", which nobody read");
                }
                assertEquals(new HashSet<>(readBlocks.keySet()), byGranule.keySet());
            });
        }
    }

    @Test
    void aSavedWorkingSetLoadsBackTheSame(@TempDir Path dir) throws Exception {
        WorkingSet ws = new WorkingSet(4096, List.of(8192L, 0L, 4096L * 1000));
        Path f = dir.resolve("ws.bin");
        ws.save(f);
        assertEquals(ws, WorkingSet.load(f));
    }
}
