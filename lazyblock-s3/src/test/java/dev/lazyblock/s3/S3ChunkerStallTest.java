package dev.lazyblock.s3;

import dev.lazyblock.testing.UpstreamReads;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.testing.FaultProxy;
import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.chunker.FetchTimeoutException;
import dev.lazyblock.testing.FaultProxy.Fault;
import dev.lazyblock.testing.Await;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.gaul.s3proxy.junit.S3ProxyExtension;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * S3 stalls under a chunker: the server's answers stop mid-body for longer than the chunker's
 * fetch timeout. Every reader waiting on the stalled chunk gets a {@link FetchTimeoutException}
 * within the timeout (plus the readers' grace), the fetch threads and the stalled connections
 * are let go, and once the server answers again the next read fetches the chunk and its bytes
 * are right. When the client closes, no thread it or the fetches started is left behind.
 */
class S3ChunkerStallTest {
    private static final int CHUNK = 1 << 20;
    private static final int SIZE = 2 * CHUNK;
    private static final int BLOCK = 4096;
    private static final int READERS = 16;
    private static final String KEY = "stall/image";
    private static final Duration FETCH_TIMEOUT = Duration.ofSeconds(2);
    /** What a reader may take beyond the fetch timeout: the readers' grace (1 s) and a loaded machine's slack. */
    private static final Duration READER_BOUND = FETCH_TIMEOUT.plusSeconds(1 + 3);
    private static final Duration BOUND = Duration.ofSeconds(30);

    @RegisterExtension
    final S3ProxyExtension server = TestS3.server();

    @TempDir
    Path dir;

    private FaultProxy proxy;
    private byte[] image;

    @BeforeEach
    void setUp() throws Exception {
        image = UpstreamReads.randomBytes(99, SIZE);
        TestS3.bucketWith(server.getUri(), KEY, image);
        proxy = new FaultProxy(server.getUri());
    }

    @AfterEach
    void tearDown() throws Exception {
        proxy.close();
    }

    @ParameterizedTest
    @EnumSource(ChunkerKind.class)
    void aStallLongerThanTheFetchTimeoutFailsEveryReaderThenTheNextReadSucceeds(ChunkerKind kind) throws Exception {
        Map<String, Integer> before = threadFamilies();
        // The socket timeout is above the fetch timeout, so the chunker's watchdog is what ends
        // the stall for the readers; a fetch thread stuck in a whole-range read is let go by the
        // socket timeout, the streams by the watchdog closing them.
        S3Config config = TestS3.config(server.getUri()).endpoint(proxy.uri())
                .socketTimeout(Duration.ofSeconds(3))
                .apiCallAttemptTimeout(Duration.ofSeconds(5))
                .apiCallTimeout(Duration.ofSeconds(12))
                .maxAttempts(2)
                .retryBaseDelay(Duration.ofMillis(20))
                .build();
        ChunkerOptions options = ChunkerOptions.DEFAULTS.withChunkSize(CHUNK).withFetchTimeout(FETCH_TIMEOUT);
        try (S3Upstream up = S3Upstream.open(config, new S3Location(TestS3.BUCKET, KEY));
                Chunker chunker = kind.create(up, SparseCache.create(dir.resolve("cache"), SIZE), options)) {
            // Warm: the client, its pool and the fetch threads exist before the stall.
            assertBlock(chunker, CHUNK + 5 * BLOCK);

            // Chunk 0's answers stop after 1 KiB of body: less than any block or stream batch.
            proxy.rule(r -> r.isFor("GET", KEY) && r.rangeStart() >= 0 && r.rangeStart() < CHUNK
                    ? Fault.stallAfterBody(1024) : Fault.PASS);
            List<CompletableFuture<Throwable>> outcomes = new ArrayList<>();
            long[] elapsed = new long[READERS];
            CountDownLatch go = new CountDownLatch(1);
            List<Thread> readers = new ArrayList<>();
            for (int i = 0; i < READERS; i++) {
                int reader = i;
                CompletableFuture<Throwable> outcome = new CompletableFuture<>();
                outcomes.add(outcome);
                readers.add(Thread.ofPlatform().name("stall-reader-" + i).start(() -> {
                    try {
                        go.await();
                        long t0 = System.nanoTime();
                        try {
                            chunker.slice((long) reader * (CHUNK / READERS), BLOCK);
                            outcome.complete(null);
                        } finally {
                            elapsed[reader] = System.nanoTime() - t0;
                        }
                    } catch (Throwable t) {
                        outcome.complete(t);
                    }
                }));
            }
            go.countDown();
            for (int i = 0; i < READERS; i++) {
                Throwable t = outcomes.get(i).get(BOUND.toSeconds(), TimeUnit.SECONDS);
                readers.get(i).join(BOUND.toMillis());
                FetchTimeoutException e = assertInstanceOf(FetchTimeoutException.class, t,
                        "reader " + i + " of the stalled chunk: expected a fetch timeout, got " + t);
                assertTrue(e.getMessage().contains("s3://lazyblock-test/" + KEY) && e.getMessage().contains(
                        "within " + FETCH_TIMEOUT.toMillis() + " ms"), e.getMessage());
                long ms = TimeUnit.NANOSECONDS.toMillis(elapsed[i]);
                assertTrue(ms <= READER_BOUND.toMillis(), "reader " + i + " waited " + ms + " ms, expected at most "
                        + READER_BOUND.toMillis() + " (fetch timeout " + FETCH_TIMEOUT.toMillis() + " ms)");
            }
            assertTrue(proxy.stalls() >= 1, "the proxy stalled no answer: " + proxy.requests());

            // The server answers again: what held the stalled fetches lets go, within a bound.
            proxy.rule(r -> Fault.PASS);
            Await.until(() -> busyFetchThreads().isEmpty() && proxy.stalledNow() == 0, BOUND,
                    () -> "fetch threads idle and no stalled connection left: busy " + busyFetchThreads()
                            + ", stalled connections " + proxy.stalledNow());

            // The next reads fetch chunk 0 and see its bytes.
            for (int i = 0; i < READERS; i++) {
                assertBlock(chunker, (long) i * (CHUNK / READERS));
            }
            byte[] all = new byte[CHUNK];
            assertTimeoutPreemptively(BOUND, () -> chunker.readAt(all, 0, CHUNK, 0));
            assertArrayEquals(Arrays.copyOfRange(image, 0, CHUNK), all, kind + ": chunk 0 after the stall");
        }
        // Client closed: its threads (timeouts' scheduler, pool reaper) go; fetch threads idle.
        Await.until(() -> leaked(before).isEmpty() && busyFetchThreads().isEmpty(), BOUND,
                () -> "threads back to what ran before the client: more now " + leaked(before) + ", busy fetch "
                        + busyFetchThreads());
    }

    private void assertBlock(Chunker chunker, long off) throws Exception {
        byte[] got = new byte[BLOCK];
        assertTimeoutPreemptively(BOUND, () -> chunker.readAt(got, 0, BLOCK, off));
        assertArrayEquals(Arrays.copyOfRange(image, (int) off, (int) off + BLOCK), got, "block at " + off);
    }

    /**
     * Live threads by family (the name without its numbers), leaving out the fetch pool (its
     * idle workers stay a minute by design; {@link #busyFetchThreads} checks them) and the
     * server's own threads.
     */
    private static Map<String, Integer> threadFamilies() {
        Map<String, Integer> families = new TreeMap<>();
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (!t.isAlive()) {
                continue;
            }
            String family = t.getName().replaceAll("[-#]?\\d+", "");
            if (family.equals("lazyblock-fetch") || serverSide(t)) {
                continue;
            }
            families.merge(family, 1, Integer::sum);
        }
        return families;
    }

    /** S3Proxy's Jetty threads: the server's pool grows and shrinks on its own. */
    private static boolean serverSide(Thread t) {
        for (StackTraceElement f : t.getStackTrace()) {
            if (f.getClassName().startsWith("org.eclipse.jetty") || f.getClassName().startsWith("org.gaul")) {
                return true;
            }
        }
        return false;
    }

    /**
     * One thread per JVM, shared by every client and chunker, started by the first that needs
     * it: the chunkers' watchdog, the SDK's scheduler that aborts a response stream nobody reads
     * (its one thread idles out after a minute), the HTTP client's idle-connection reaper.
     */
    private static final List<String> JVM_SINGLETONS = List.of("lazyblock-fetch-watchdog",
            "response-input-stream-timeout-scheduler", "idle-connection-reaper");

    /** Families with more live threads than {@code before} (a JVM singleton may appear once). */
    private static Map<String, String> leaked(Map<String, Integer> before) {
        Map<String, String> more = new TreeMap<>();
        threadFamilies().forEach((family, n) -> {
            int was = before.getOrDefault(family, 0);
            if (JVM_SINGLETONS.contains(family)) {
                was = Math.max(was, 1);
            }
            if (n > was) {
                more.put(family, was + " -> " + n);
            }
        });
        return more;
    }

    /** Fetch pool threads running a fetch (an idle worker waits in the pool's queue). */
    private static List<String> busyFetchThreads() {
        List<String> busy = new ArrayList<>();
        Thread.getAllStackTraces().forEach((t, stack) -> {
            if (t.getName().startsWith("lazyblock-fetch-") && !t.getName().equals("lazyblock-fetch-watchdog")) {
                for (StackTraceElement f : stack) {
                    if (f.getClassName().startsWith("dev.lazyblock.chunker.Session")) {
                        busy.add(t.getName());
                        break;
                    }
                }
            }
        });
        return busy;
    }
}
