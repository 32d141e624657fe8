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
}
