package dev.lazyblock.chunker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.testing.Await;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A storm of misses on a store that stalls: fetch threads stop at their bound, every reader still
 * gets its timeout, and the fetches that queued past the bound and timed out while waiting ask the
 * store for nothing once threads come free.
 */
class FetchPoolTest {
    private static final int CHUNK = 64 << 10;

    @TempDir
    Path dir;

    @Test
    void aStormOfMissesOnAStalledStoreHoldsAtMostTheBoundOfFetchThreads() throws Exception {
        int bound = AbstractChunker.FETCHERS.bound();
        int chunks = bound + 64;
        byte[] image = new byte[chunks * CHUNK];
        new java.util.Random(5).nextBytes(image);
        TestUpstream up = new TestUpstream(image);
        up.stall = true;
        ChunkerOptions options = ChunkerOptions.DEFAULTS.withChunkSize(CHUNK).withFetchTimeout(Duration.ofSeconds(2));
        try (Chunker c = ChunkerKind.FULL_FETCH.create(up, SparseCache.create(dir.resolve("cache"), image.length),
                options); ExecutorService readers = Executors.newVirtualThreadPerTaskExecutor()) {
            long completedBefore = AbstractChunker.FETCHERS.completed();
            List<Future<?>> reads = new ArrayList<>();
            for (int i = 0; i < chunks; i++) {
                long off = (long) i * CHUNK;
                reads.add(readers.submit(() -> c.readAt(new byte[4096], 0, 4096, off)));
            }
            for (Future<?> f : reads) {
                ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(60, TimeUnit.SECONDS),
                        "every reader ends");
                assertInstanceOf(FetchTimeoutException.class, e.getCause(), e.getCause().toString());
            }
            int asked = up.requests.size();
            assertTrue(asked <= bound, asked + " fetches reached the store at once; the bound is " + bound);

            up.unstall();
            // One fetch task per chunk (full fetch): wait until all of ours ran, the queued ones included.
            Await.until(() -> AbstractChunker.FETCHERS.completed() >= completedBefore + chunks,
                    Duration.ofSeconds(30), () -> "the fetch pool ran every fetch: " + AbstractChunker.FETCHERS);
            assertTrue(up.requests.size() == asked, "fetches that timed out in the queue asked the store for "
                    + (up.requests.size() - asked) + " chunks");

            byte[] got = new byte[4096];
            c.readAt(got, 0, got.length, (long) (chunks - 1) * CHUNK);
            assertArrayEquals(Arrays.copyOfRange(image, (chunks - 1) * CHUNK, (chunks - 1) * CHUNK + 4096), got,
                    "the store answers again, and so does the chunker");
        }
    }

    @Test
    void aChunkersOwnPoolBoundsItsFetchesAndOnceClosedFailsAMissAtOnce() throws Exception {
        int chunks = 10;
        byte[] image = new byte[chunks * CHUNK];
        new java.util.Random(6).nextBytes(image);
        TestUpstream up = new TestUpstream(image);
        up.stall = true;
        FetchThreads pool = new FetchThreads(3, "own-fetch-");
        ChunkerOptions options = ChunkerOptions.DEFAULTS.withChunkSize(CHUNK).withFetchTimeout(Duration.ofSeconds(60))
                .withFetchThreads(pool);
        try (Chunker c = ChunkerKind.FULL_FETCH.create(up, SparseCache.create(dir.resolve("own"), image.length),
                options); ExecutorService readers = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<byte[]>> reads = new ArrayList<>();
            for (int i = 0; i < chunks - 1; i++) {
                long off = (long) i * CHUNK;
                reads.add(readers.submit(() -> {
                    byte[] b = new byte[4096];
                    c.readAt(b, 0, b.length, off);
                    return b;
                }));
            }
            // Once 3 have reached the (stalled) store and 6 wait, no slot can come free: the bound holds
            // if that is where it stays.
            Await.until(() -> up.requests.size() == 3 && pool.waiting() == chunks - 1 - 3, Duration.ofSeconds(30),
                    () -> "3 fetches at the store and the rest waiting: " + pool + ", " + up.requests.size()
                            + " at the store");
            assertTrue(pool.running() == 3 && up.requests.size() == 3, pool + ", " + up.requests.size()
                    + " fetches at the store; the pool's bound is 3");
            up.unstall();
            for (int i = 0; i < reads.size(); i++) {
                assertArrayEquals(Arrays.copyOfRange(image, i * CHUNK, i * CHUNK + 4096),
                        reads.get(i).get(60, TimeUnit.SECONDS));
            }
            pool.close();
            long t0 = System.nanoTime();
            Future<?> late = readers.submit(() -> c.readAt(new byte[4096], 0, 4096, (long) (chunks - 1) * CHUNK));
            ExecutionException e = assertThrows(ExecutionException.class, () -> late.get(30, TimeUnit.SECONDS));
            assertTrue(String.valueOf(e.getCause()).contains("closed"), "a clear error: " + e.getCause());
            assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(30), "not after the 60 s fetch deadline");
        }
    }
}
