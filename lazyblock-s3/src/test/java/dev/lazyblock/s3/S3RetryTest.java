package dev.lazyblock.s3;

import dev.lazyblock.testing.UpstreamReads;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.testing.FaultProxy;
import dev.lazyblock.testing.FaultProxy.Fault;
import dev.lazyblock.testing.FaultProxy.Request;
import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.UpstreamException;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.gaul.s3proxy.junit.S3ProxyExtension;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * What is retried and what is not, counted at the proxy: throttling (503 SlowDown) is retried
 * with a growing, jittered back-off up to maxAttempts and then fails saying so; a missing object
 * or a refused signature is one request and a clear error.
 */
class S3RetryTest {
    private static final int SIZE = 1 << 20;
    private static final String KEY = "retry/obj";
    private static final Duration BOUND = Duration.ofSeconds(30);
    /** Throttled back-off base for the tests: retry n waits 50*2^(n-1) to 100*2^(n-1) ms. */
    private static final Duration BASE = Duration.ofMillis(100);

    @RegisterExtension
    final S3ProxyExtension server = TestS3.server();

    private FaultProxy proxy;
    private byte[] object;

    @BeforeEach
    void setUp() throws Exception {
        object = UpstreamReads.randomBytes(5, SIZE);
        TestS3.bucketWith(server.getUri(), KEY, object);
        proxy = new FaultProxy(server.getUri());
    }

    @AfterEach
    void tearDown() throws Exception {
        proxy.close();
    }

    private S3Upstream upstream(S3Config.Builder config, String key) {
        return S3Upstream.open(config.endpoint(proxy.uri()).build(), new S3Location(TestS3.BUCKET, key));
    }

    private S3Config.Builder config() {
        return TestS3.config(server.getUri()).maxAttempts(4).throttleBaseDelay(BASE).retryBaseDelay(BASE);
    }

    /** The gaps between the arrivals of {@code requests}, in milliseconds. */
    private static List<Long> gapsMillis(List<Request> requests) {
        List<Long> gaps = new ArrayList<>();
        for (int i = 1; i < requests.size(); i++) {
            gaps.add(TimeUnit.NANOSECONDS.toMillis(requests.get(i).arrivedNanos() - requests.get(i - 1).arrivedNanos()));
        }
        return gaps;
    }

    /**
     * Each gap is at least the half-jitter floor of its retry (half of base * 2^(n-1)): the
     * back-off grows and is never skipped. No upper bound: a loaded machine may be late.
     */
    private static void assertBackedOff(List<Long> gaps) {
        for (int n = 1; n <= gaps.size(); n++) {
            long floor = BASE.toMillis() * (1L << (n - 1)) / 2;
            assertTrue(gaps.get(n - 1) >= floor, "retry " + n + " came " + gaps.get(n - 1)
                    + " ms after the attempt before it, expected at least " + floor + " ms; gaps " + gaps);
        }
    }

    @Test
    void repeated503sBackOffWithJitterAndGiveUpAfterMaxAttempts() throws Exception {
        proxy.rule(r -> r.isFor("GET", KEY) ? Fault.slowDown() : Fault.PASS);
        List<List<Long>> runs = new ArrayList<>();
        try (S3Upstream up = upstream(config(), KEY)) {
            for (int run = 0; run < 2; run++) {
                int before = proxy.requests("GET", KEY).size();
                UpstreamException e = assertTimeoutPreemptively(BOUND, () -> assertThrows(UpstreamException.class,
                        () -> up.readFully(0, ByteBuffer.allocate(64 * 1024))));
                assertEquals("reading [0, 65536) of s3://lazyblock-test/" + KEY + ": S3 is throttling or unavailable"
                        + " (status 503 SlowDown: Please reduce your request rate.; request id FAULT" + (before + 4)
                        + "); gave up after 4 attempts", e.getMessage());
                List<Request> all = proxy.requests("GET", KEY);
                List<Request> these = all.subList(before, all.size());
                assertEquals(4, these.size(), "maxAttempts requests reached the proxy: " + these);
                List<Long> gaps = gapsMillis(these);
                assertBackedOff(gaps);
                assertTrue(new HashSet<>(gaps).size() > 1, "gaps all equal: " + gaps);
                runs.add(gaps);
            }
        }
        System.out.printf("503 back-off gaps (ms), base %d ms: %s%n", BASE.toMillis(), runs);
        // Jitter: two runs of the same schedule do not wait the same to the millisecond.
        assertNotEquals(runs.get(0), runs.get(1), "two runs waited exactly alike: " + runs);
    }

    @Test
    void repeated503sFailARangeStreamAndASizeLookupTheSameWay() {
        proxy.rule(r -> r.isFor("GET", KEY) || r.isFor("HEAD", KEY) ? Fault.slowDown() : Fault.PASS);
        try (S3Upstream up = upstream(config().maxAttempts(3), KEY)) {
            UpstreamException e = assertTimeoutPreemptively(BOUND,
                    () -> assertThrows(UpstreamException.class, () -> up.openRange(0, SIZE)));
            assertTrue(e.getMessage().startsWith("reading [0, " + SIZE + ") of s3://lazyblock-test/" + KEY
                    + ": S3 is throttling or unavailable (status 503 SlowDown"), e.getMessage());
            assertTrue(e.getMessage().endsWith("; gave up after 3 attempts"), e.getMessage());
            assertEquals(3, proxy.requests("GET", KEY).size(), proxy.requests().toString());
            assertBackedOff(gapsMillis(proxy.requests("GET", KEY)));

            e = assertTimeoutPreemptively(BOUND, () -> assertThrows(UpstreamException.class, up::size));
            assertTrue(e.getMessage().contains("s3://lazyblock-test/" + KEY + ": finding the size: S3 is throttling"
                    + " or unavailable (status 503"), e.getMessage());
            // Retried all the same; the message cannot say how often: the S3 client rebuilds a
            // HEAD's error (it has no body to read the code from) and the attempt count is lost.
            assertEquals(3, proxy.requests("HEAD", KEY).size(), proxy.requests().toString());
            assertBackedOff(gapsMillis(proxy.requests("HEAD", KEY)));
        }
    }

    @Test
    void throttlingThatStopsBeforeTheLimitEndsInASuccessfulRead() throws Exception {
        AtomicInteger gets = new AtomicInteger();
        proxy.rule(r -> r.isFor("GET", KEY) && gets.incrementAndGet() % 3 != 0 ? Fault.slowDown() : Fault.PASS);
        try (S3Upstream up = upstream(config(), KEY)) {
            ByteBuffer dst = ByteBuffer.allocate(SIZE - 8192);
            assertTimeoutPreemptively(BOUND, () -> up.readFully(8192, dst));
            assertArrayEquals(Arrays.copyOfRange(object, 8192, SIZE), dst.array());
            assertEquals(3, proxy.requests("GET", KEY).size(), "two 503s, then the answer: " + proxy.requests());

            byte[] got = assertTimeoutPreemptively(BOUND, () -> readAll(up.openRange(0, SIZE)));
            assertArrayEquals(object, got);
            assertEquals(6, proxy.requests("GET", KEY).size(), "two 503s, then the stream: " + proxy.requests());
        }
        assertEquals(4, proxy.answered());
    }

    @Test
    void aMissingObjectIsOneRequestAndAClearErrorWithoutRetry() {
        String missing = "retry/missing";
        try (S3Upstream up = upstream(config(), missing)) {
            UpstreamException e = assertThrows(UpstreamException.class, () -> up.readFully(0, ByteBuffer.allocate(10)));
            assertTrue(e.getMessage().startsWith("reading [0, 10) of s3://lazyblock-test/" + missing
                    + ": no such object (status 404 NoSuchKey"), e.getMessage());
            assertFalse(e.getMessage().contains("attempts"), e.getMessage());
            assertEquals(1, proxy.requests("GET", missing).size(), "no retry: " + proxy.requests());

            e = assertThrows(UpstreamException.class, () -> up.openRange(0, 10));
            assertTrue(e.getMessage().contains(": no such object (status 404 NoSuchKey"), e.getMessage());
            assertEquals(2, proxy.requests("GET", missing).size(), "no retry: " + proxy.requests());

            e = assertThrows(UpstreamException.class, up::size);
            assertTrue(e.getMessage().contains(": finding the size: no such object (status 404"), e.getMessage());
            assertEquals(1, proxy.requests("HEAD", missing).size(), "no retry: " + proxy.requests());
        }
        assertEquals(3, proxy.requests().size(), "nothing else went out: " + proxy.requests());
    }

    @Test
    void aRefusedSignatureIsOneRequestAndAClearErrorWithoutRetry() {
        S3Config.Builder wrong = TestS3.config(server.getUri()).credentials(TestS3.ACCESS_KEY, "not-the-secret")
                .maxAttempts(4).retryBaseDelay(BASE);
        try (S3Upstream up = upstream(wrong, KEY)) {
            UpstreamException e = assertThrows(UpstreamException.class, () -> up.readFully(0, ByteBuffer.allocate(10)));
            assertTrue(e.getMessage().startsWith("reading [0, 10) of s3://lazyblock-test/" + KEY
                    + ": access denied (status 403"), e.getMessage());
            assertFalse(e.getMessage().contains("attempts"), e.getMessage());
            assertFalse(e.getMessage().contains("not-the-secret"), e.getMessage());
        }
        assertEquals(1, proxy.requests("GET", KEY).size(), "no retry: " + proxy.requests());
    }

    @Test
    void anAccessDeniedAnswerIsNotRetried() {
        proxy.rule(r -> r.isFor("GET", KEY) ? Fault.answer(403, "AccessDenied", "Access Denied") : Fault.PASS);
        try (S3Upstream up = upstream(config(), KEY)) {
            UpstreamException e = assertThrows(UpstreamException.class, () -> up.openRange(0, 10));
            assertEquals("reading [0, 10) of s3://lazyblock-test/" + KEY + ": access denied (status 403 AccessDenied:"
                    + " Access Denied; request id FAULT1)", e.getMessage());
        }
        assertEquals(1, proxy.requests("GET", KEY).size(), "no retry: " + proxy.requests());
    }

    private static byte[] readAll(Upstream.RangeStream s) throws IOException {
        try (s) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            ByteBuffer buf = ByteBuffer.allocate(32 * 1024);
            int n;
            while ((n = s.read(buf.clear())) >= 0) {
                out.write(buf.array(), 0, n);
            }
            return out.toByteArray();
        }
    }
}
