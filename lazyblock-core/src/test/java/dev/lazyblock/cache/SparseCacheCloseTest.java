package dev.lazyblock.cache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

class SparseCacheCloseTest {
    @TempDir
    Path dir;

    @Test
    void everyOperationAfterCloseSaysCacheClosed() throws Exception {
        SparseCache cache = SparseCache.create(dir.resolve("c"), 1 << 20);
        cache.writeAt(new byte[4096], 0, 4096, 0);
        cache.setIsCached(0, 4096);
        cache.close();
        List<Executable> calls = List.of(
                () -> cache.isCached(0, 4096),
                () -> cache.setIsCached(0, 4096),
                () -> cache.slice(0, 4096),
                () -> cache.sliceDirect(0, 4096),
                () -> cache.readAt(new byte[4096], 0, 4096, 0),
                () -> cache.readAt(MemorySegment.ofArray(new byte[4096]), 0),
                () -> cache.writeAt(new byte[4096], 0, 4096, 0),
                cache::fileSize,
                () -> cache.exportToDiff(dir.resolve("diff")),
                cache::retain,
                cache::presence,
                cache::close);
        for (Executable call : calls) {
            CacheClosedException e = assertThrows(CacheClosedException.class, call);
            assertTrue(e.getMessage().startsWith("cache closed"), e.getMessage());
        }
    }

    @Test
    void theCacheFileIsGoneOnceOpenAndCreationRefusesAnExistingFile() throws Exception {
        Path file = dir.resolve("c");
        try (SparseCache cache = SparseCache.create(file, 1 << 20)) {
            assertTrue(Files.notExists(file), "unlinked at once; the descriptor keeps it");
            Files.writeString(file, "someone else's");
            assertThrows(java.io.IOException.class, () -> SparseCache.create(file, 1 << 20).close());
            assertEquals("someone else's", Files.readString(file), "an existing file is never truncated");
            assertEquals(0, cache.fileSize());
        }
    }

    @Test
    void aSliceOutlivingItsCacheFailsInsteadOfReadingFreedMemory() throws Exception {
        SparseCache cache = SparseCache.create(dir.resolve("c"), 1 << 20);
        cache.writeAt(new byte[] {7}, 0, 1, 0);
        cache.setIsCached(0, 1);
        MemorySegment view = cache.slice(0, 1);
        assertEquals(7, view.get(ValueLayout.JAVA_BYTE, 0));
        cache.close();
        assertThrows(IllegalStateException.class, () -> view.get(ValueLayout.JAVA_BYTE, 0));
    }

    @Test
    void aLeaseKeepsTheMappingUntilReleased() throws Exception {
        SparseCache cache = SparseCache.create(dir.resolve("c"), 1 << 20);
        cache.writeAt(new byte[] {9}, 0, 1, 0);
        cache.setIsCached(0, 1);
        MemorySegment view = cache.slice(0, 1);
        cache.retain();
        cache.close();
        // Closed to callers, but a fetch holding a lease may still be writing: not unmapped yet.
        assertThrows(CacheClosedException.class, () -> cache.slice(0, 1));
        assertEquals(9, view.get(ValueLayout.JAVA_BYTE, 0));
        cache.release();
        assertThrows(IllegalStateException.class, () -> view.get(ValueLayout.JAVA_BYTE, 0));
    }

    /**
     * Readers and writers keep going while the cache closes under them: each call either
     * succeeds with the right bytes or fails with "cache closed", the JVM never crashes, and after
     * close every call fails.
     */
    @RepeatedTest(5)
    void closeWhileReadersAreMidReadNeverCrashes() throws Exception {
        int size = 8 << 20;
        byte[] image = new byte[size];
        new Random(size).nextBytes(image);
        SparseCache cache = SparseCache.create(dir.resolve("c"), size);
        cache.writeAt(image, 0, size, 0);
        cache.setIsCached(0, size);

        int threads = 12;
        CountDownLatch running = new CountDownLatch(threads);
        AtomicLong reads = new AtomicLong();
        List<Future<Integer>> fs = new ArrayList<>();
        try (ExecutorService pool = Executors.newFixedThreadPool(threads)) {
            for (int t = 0; t < threads; t++) {
                int id = t;
                fs.add(pool.submit(() -> {
                    Random rnd = new Random(id);
                    byte[] buf = new byte[1 << 20]; // big copies: long enough to be caught mid-way
                    boolean counted = false;
                    int closedSeen = 0;
                    while (closedSeen < 50) {
                        int off = rnd.nextInt(size - buf.length);
                        try {
                            if (id % 3 == 0) {
                                cache.writeAt(image, off, buf.length, off); // same bytes: reads stay valid
                            } else {
                                cache.readAt(buf, 0, buf.length, off);
                                for (int i = 0; i < buf.length; i += 4093) {
                                    if (buf[i] != image[off + i]) {
                                        throw new AssertionError("wrong byte at " + (off + i));
                                    }
                                }
                            }
                            reads.incrementAndGet();
                            if (!counted) {
                                counted = true;
                                running.countDown();
                            }
                        } catch (CacheClosedException e) {
                            closedSeen++;
                            if (!counted) {
                                counted = true;
                                running.countDown();
                            }
                        }
                    }
                    return closedSeen;
                }));
            }
            assertTrue(running.await(1, TimeUnit.MINUTES), "workers started");
            cache.close();
            for (Future<Integer> f : fs) {
                assertEquals(50, f.get(1, TimeUnit.MINUTES));
            }
        }
        assertThrows(CacheClosedException.class, () -> cache.readAt(new byte[1], 0, 1, 0));
        assertTrue(reads.get() >= threads);
    }

    @Test
    void releaseWithoutRetainIsAnError() throws Exception {
        try (SparseCache cache = SparseCache.create(dir.resolve("c"), 4096)) {
            cache.retain();
            cache.release();
            IllegalStateException e = assertThrows(IllegalStateException.class, cache::release);
            assertTrue(e.getMessage().contains("release() without retain()"));
            cache.retain(); // the count was restored: the cache still works
            cache.release();
            assertArrayEquals(new byte[0], cache.sliceDirect(0, 0).toArray(ValueLayout.JAVA_BYTE));
        }
    }
}
