package dev.lazyblock.chunker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.cache.CacheClosedException;
import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.metrics.CountingMetrics;
import dev.lazyblock.testing.Await;
import dev.lazyblock.upstream.UpstreamException;
import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/** What every chunker must do, whatever its strategy. */
class ChunkerContractTest {
    static final int CHUNK = 256 << 10;

    @TempDir
    Path dir;

    static byte[] image(long seed, int size) {
        byte[] b = new byte[size];
        new SplittableRandom(seed).nextBytes(b);
        return b;
    }

    private Chunker open(ChunkerKind kind, TestUpstream up, long granularity, ChunkerOptions options) throws IOException {
        SparseCache cache = SparseCache.create(dir.resolve("cache-" + System.nanoTime()), up.size(), 4096, granularity);
        return kind.create(up, cache, options);
    }

    static Stream<Arguments> kindsAndSeeds() {
        return Stream.of(ChunkerKind.values()).flatMap(k -> Stream.of(1L, 2L, 3L, 4L).map(s -> Arguments.of(k, s)));
    }

    @ParameterizedTest(name = "{0}, seed {1}")
    @MethodSource("kindsAndSeeds")
    void randomReadsReturnTheSourceBytes(ChunkerKind kind, long seed) throws Exception {
        int size = 5 * CHUNK + 12_345; // a short last chunk
        byte[] src = image(seed, size);
        TestUpstream up = new TestUpstream(src);
        SplittableRandom rnd = new SplittableRandom(seed);
        long granularity = seed % 2 == 0 ? 4096 : 64 << 10;
        try (Chunker c = open(kind, up, granularity, ChunkerOptions.DEFAULTS.withChunkSize(CHUNK))) {
            for (int i = 0; i < 300; i++) {
                long off = switch (rnd.nextInt(4)) {
                    case 0 -> size - 1 - rnd.nextInt(5000);                 // the short last chunk
                    case 1 -> (long) rnd.nextInt(1, 6) * CHUNK - rnd.nextInt(1, 5000); // across a boundary
                    default -> rnd.nextInt(size);
                };
                int len = rnd.nextInt(4) == 0 ? rnd.nextInt(CHUNK * 2) : rnd.nextInt(1, 20_000);
                byte[] got = new byte[len];
                int n = c.readAt(got, 0, len, off);
                int want = (int) Math.min(len, size - off);
                assertEquals(want, n, "seed " + seed + " read " + i);
                assertArrayEquals(Arrays.copyOfRange(src, (int) off, (int) off + want), Arrays.copyOf(got, n),
                        "seed " + seed + " read " + i + " at " + off + " +" + len);
            }
            assertTrue(c.cache().isCached(size - 1, 1));
        }
    }

    @ParameterizedTest
    @EnumSource(ChunkerKind.class)
    void aChunkIsFetchedOnceAndThenServedFromTheCache(ChunkerKind kind) throws Exception {
        byte[] src = image(9, 3 * CHUNK);
        TestUpstream up = new TestUpstream(src);
        CountingMetrics m = new CountingMetrics();
        try (Chunker c = open(kind, up, 4096, ChunkerOptions.DEFAULTS.withChunkSize(CHUNK).withMetrics(m))) {
            // Once a chunk is present, nothing may ask the upstream for any of it again.
            up.onRequest = (off, len) -> {
                if (c.cache().isCached(off, len)) {
                    throw new AssertionError("refetch of present bytes [" + off + ", +" + len + ")");
                }
            };
            c.readAt(new byte[4096], 0, 4096, CHUNK + 8192);
            awaitPresent(c, CHUNK, CHUNK);
            int afterMiss = up.requests.size();
            for (int i = 0; i < 50; i++) {
                c.readAt(new byte[100], 0, 100, CHUNK + i * 1000L);
            }
            assertEquals(afterMiss, up.requests.size(), "hits make no requests");
            long chunkRequests = up.requests.stream().filter(r -> r[0] >= CHUNK && r[0] < 2 * CHUNK).count();
            long bytes = up.requests.stream().mapToLong(r -> r[1]).sum();
            switch (kind) {
                case FULL_FETCH, STREAMING -> {
                    assertEquals(1, chunkRequests);
                    assertEquals(CHUNK, bytes);
                }
                case REQUEST_FIRST -> {
                    assertEquals(3, chunkRequests, "priority block + the two streams around it");
                    assertEquals(CHUNK, bytes, "no byte fetched twice");
                }
            }
            assertEquals(50, m.snapshot().hits());
            assertEquals(1, m.snapshot().misses());
        }
    }

    /** The rest of a chunk keeps arriving after the reader was released: wait for it, bounded. */
    static void awaitPresent(Chunker c, long off, long len) {
        Await.until(() -> c.cache().isCached(off, len), Duration.ofSeconds(10), () -> "chunk at " + off + " present");
    }

    @ParameterizedTest
    @EnumSource(ChunkerKind.class)
    void badRangesAreRefusedWithClearErrors(ChunkerKind kind) throws Exception {
        try (Chunker c = open(kind, new TestUpstream(image(1, CHUNK + 10)), 4096, ChunkerOptions.DEFAULTS.withChunkSize(CHUNK))) {
            assertThrows(IndexOutOfBoundsException.class, () -> c.slice(CHUNK + 10, 1));
            assertThrows(IndexOutOfBoundsException.class, () -> c.slice(-1, 1));
            assertThrows(IllegalArgumentException.class, () -> c.slice(0, -1));
            assertEquals(10, c.slice(CHUNK, 4096).byteSize(), "clipped at the end");
            assertEquals(0, c.slice(5, 0).byteSize());
        }
    }

    @ParameterizedTest
    @EnumSource(ChunkerKind.class)
    void aStalledUpstreamTimesOutEveryWaiterAndTheNextReadSucceeds(ChunkerKind kind) throws Exception {
        byte[] src = image(5, 2 * CHUNK);
        TestUpstream up = new TestUpstream(src);
        up.stall = true;
        CountingMetrics m = new CountingMetrics();
        // Short, but the read after unstall() must also fit in it on a loaded machine.
        Duration timeout = Duration.ofMillis(1500);
        ChunkerOptions opts = ChunkerOptions.DEFAULTS.withChunkSize(CHUNK).withFetchTimeout(timeout).withMetrics(m);
        try (Chunker c = open(kind, up, 4096, opts); ExecutorService pool = Executors.newFixedThreadPool(8)) {
            List<Future<?>> readers = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                long off = i * 16_384L;
                readers.add(pool.submit(() -> c.readAt(new byte[4096], 0, 4096, off)));
            }
            for (Future<?> f : readers) {
                ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(30, TimeUnit.SECONDS),
                        "every waiter ends, none hangs");
                assertInstanceOf(FetchTimeoutException.class, e.getCause(), e.getCause().toString());
                assertTrue(e.getCause().getMessage().contains("within 1500 ms"), e.getCause().getMessage());
            }
            assertTrue(m.snapshot().fetchTimeouts() >= 1);
            up.unstall();
            byte[] got = new byte[4096];
            c.readAt(got, 0, 4096, 8192);
            assertArrayEquals(Arrays.copyOfRange(src, 8192, 8192 + 4096), got, "the cache is still usable");
        }
    }

    @ParameterizedTest
    @EnumSource(ChunkerKind.class)
    void aBodyStalledPastTheDeadlineIsClosedAndItsThreadGivenBack(ChunkerKind kind) throws Exception {
        byte[] src = image(9, 2 * CHUNK);
        TestUpstream up = new TestUpstream(src);
        up.stallBody = true; // headers came, then the body stopped: only closing the connection ends the read
        ChunkerOptions opts = ChunkerOptions.DEFAULTS.withChunkSize(CHUNK).withFetchTimeout(Duration.ofMillis(1500));
        try (Chunker c = open(kind, up, 4096, opts)) {
            int len = 128 << 10; // more than a stream's first piece, so every request of it stalls
            FetchTimeoutException e = assertThrows(FetchTimeoutException.class,
                    () -> c.readAt(new byte[len], 0, len, 0));
            assertTrue(e.getMessage().contains("within 1500 ms"), e.getMessage());
            // The store never recovers here: the watchdog's close is what ends every stalled read,
            // whole-range ones included, and gives their threads back.
            Await.until(() -> up.stalledBodies.get() == 0, Duration.ofSeconds(10),
                    () -> up.stalledBodies.get() + " fetches still blocked on a stalled body");
            up.unstall();
            byte[] got = new byte[len];
            c.readAt(got, 0, len, 0);
            assertArrayEquals(Arrays.copyOf(src, len), got, "read again once the store answers");
        }
    }

    @Test
    void aFrameFetchStalledPastTheDeadlineIsClosedToo() throws Exception {
        byte[] src = image(10, 2 * CHUNK);
        TestUpstream up = new TestUpstream(src);
        up.stallBody = true;
        ChunkerOptions opts = ChunkerOptions.DEFAULTS.withChunkSize(CHUNK).withFetchTimeout(Duration.ofMillis(1500));
        SparseCache cache = SparseCache.create(dir.resolve("frames-" + System.nanoTime()), up.size(), 4096, 4096);
        try (Chunker c = FrameChunker.raw(up, "build-1", cache, opts, null)) {
            assertThrows(FetchTimeoutException.class, () -> c.readAt(new byte[4096], 0, 4096, CHUNK));
            Await.until(() -> up.stalledBodies.get() == 0, Duration.ofSeconds(10),
                    () -> up.stalledBodies.get() + " frame fetches still blocked on a stalled body");
            up.unstall();
            byte[] got = new byte[4096];
            c.readAt(got, 0, got.length, CHUNK);
            assertArrayEquals(Arrays.copyOfRange(src, CHUNK, CHUNK + 4096), got);
        }
    }

    @ParameterizedTest
    @EnumSource(ChunkerKind.class)
    void closingFailsReadersWaitingOnAFetch(ChunkerKind kind) throws Exception {
        TestUpstream up = new TestUpstream(image(6, CHUNK));
        up.stall = true;
        Chunker c = open(kind, up, 4096, ChunkerOptions.DEFAULTS.withChunkSize(CHUNK));
        try (ExecutorService pool = Executors.newSingleThreadExecutor()) {
            Future<?> reader = pool.submit(() -> c.readAt(new byte[10], 0, 10, 100));
            Await.until(() -> !up.requests.isEmpty(), Duration.ofSeconds(10), () -> "the fetch reached the upstream");
            c.close();
            ExecutionException e = assertThrows(ExecutionException.class, () -> reader.get(10, TimeUnit.SECONDS));
            assertInstanceOf(CacheClosedException.class, e.getCause());
            assertThrows(CacheClosedException.class, () -> c.slice(0, 1));
        } finally {
            up.unstall();
        }
    }

    @ParameterizedTest
    @EnumSource(ChunkerKind.class)
    void aShortObjectIsAnErrorNotAShortChunk(ChunkerKind kind) throws Exception {
        byte[] src = image(7, CHUNK);
        // The object claims more bytes than it delivers.
        TestUpstream up = new TestUpstream(src) {
            @Override
            public long size() {
                return CHUNK * 2L;
            }
        };
        try (Chunker c = open(kind, up, 4096, ChunkerOptions.DEFAULTS.withChunkSize(CHUNK))) {
            IOException e = assertThrows(IOException.class, () -> c.readAt(new byte[10], 0, 10, CHUNK + 5));
            assertInstanceOf(UpstreamException.class, e);
            assertTrue(e.getMessage().contains("test://object"), e.getMessage());
        }
    }

    /**
     * Many readers on overlapping ranges, random delays, random failures mid-stream: each read
     * returns the right bytes or the upstream's error, never wrong bytes, never a hang.
     */
    @ParameterizedTest(name = "{0}, seed {1}")
    @MethodSource("kindsAndSeeds")
    void concurrentReadersGetTheRightBytesOrTheUpstreamError(ChunkerKind kind, long seed) throws Exception {
        int size = 6 * CHUNK + 777;
        byte[] src = image(seed, size);
        TestUpstream up = new TestUpstream(src);
        up.failProbability = 0.2;
        up.failEvery = 3;
        up.maxDelayMicros = 300;
        int readers = 32;
        AtomicInteger ok = new AtomicInteger();
        AtomicInteger failed = new AtomicInteger();
        try (Chunker c = open(kind, up, seed % 2 == 0 ? 4096 : 32 << 10, ChunkerOptions.DEFAULTS.withChunkSize(CHUNK));
             ExecutorService pool = Executors.newFixedThreadPool(readers)) {
            // A chunk that succeeded is never fetched again: nothing asks for present bytes.
            up.onRequest = (off, len) -> {
                if (c.cache().isCached(off, len)) {
                    throw new AssertionError("refetch of present bytes [" + off + ", +" + len + ")");
                }
            };
            CountDownLatch go = new CountDownLatch(1);
            List<Future<?>> fs = new ArrayList<>();
            for (int t = 0; t < readers; t++) {
                SplittableRandom rnd = new SplittableRandom(seed * 1000 + t);
                fs.add(pool.submit(() -> {
                    go.await();
                    for (int i = 0; i < 40; i++) {
                        // A hot region: readers pile onto the same few chunks.
                        long off = rnd.nextBoolean() ? rnd.nextLong(2L * CHUNK) : rnd.nextLong(size);
                        int len = rnd.nextInt(1, 3 * 4096);
                        byte[] got = new byte[len];
                        try {
                            int n = c.readAt(got, 0, len, off);
                            for (int k = 0; k < n; k++) {
                                if (got[k] != src[(int) off + k]) {
                                    throw new AssertionError("wrong byte at " + (off + k) + " (seed " + seed + ")");
                                }
                            }
                            ok.incrementAndGet();
                        } catch (UpstreamException e) {
                            assertTrue(e.getMessage().contains("injected failure"), e.toString());
                            failed.incrementAndGet();
                        }
                    }
                    return null;
                }));
            }
            go.countDown();
            for (Future<?> f : fs) {
                f.get(2, TimeUnit.MINUTES);
            }
        }
        assertEquals(readers * 40, ok.get() + failed.get());
        assertTrue(ok.get() > 0 && failed.get() > 0, "both outcomes exercised: ok " + ok + ", failed " + failed);
    }

    @ParameterizedTest
    @EnumSource(ChunkerKind.class)
    void aSliceIsAViewOfTheCachedBytes(ChunkerKind kind) throws Exception {
        byte[] src = image(8, 2 * CHUNK);
        try (Chunker c = open(kind, new TestUpstream(src), 4096, ChunkerOptions.DEFAULTS.withChunkSize(CHUNK))) {
            var s = c.slice(CHUNK - 100, 200);
            assertArrayEquals(Arrays.copyOfRange(src, CHUNK - 100, CHUNK + 100), s.toArray(ValueLayout.JAVA_BYTE));
            assertTrue(s.isReadOnly());
        }
    }
}
