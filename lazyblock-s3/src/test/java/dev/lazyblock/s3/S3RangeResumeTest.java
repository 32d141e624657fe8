package dev.lazyblock.s3;

import dev.lazyblock.testing.UpstreamReads;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.testing.FaultProxy;
import dev.lazyblock.testing.FaultProxy.Fault;
import dev.lazyblock.testing.FaultProxy.Request;
import dev.lazyblock.testing.Await;
import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.UpstreamException;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.gaul.s3proxy.junit.S3ProxyExtension;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.services.s3.S3Client;

/**
 * A range stream whose connection drops mid-body asks for the rest from the first byte it did
 * not receive, conditional on the same ETag, a bounded number of times; the proxy records the
 * requests, so the tests see each resumed request's Range and If-Match and count the bytes the
 * server sent.
 */
class S3RangeResumeTest {
    private static final int SIZE = 2 << 20;
    private static final String KEY = "resume/obj";
    private static final Duration BOUND = Duration.ofSeconds(30);
    /** Headers of a few answers: what the proxy may forward beyond the bodies' bytes. */
    private static final int HEADER_SLACK = 8 * 1024;

    @RegisterExtension
    final S3ProxyExtension server = TestS3.server();

    private FaultProxy proxy;
    private byte[] object;
    private String etag;

    @BeforeEach
    void setUp() throws Exception {
        object = UpstreamReads.randomBytes(77, SIZE);
        etag = TestS3.bucketWith(server.getUri(), KEY, object);
        proxy = new FaultProxy(server.getUri());
    }

    @AfterEach
    void tearDown() throws Exception {
        proxy.close();
    }

    /** Through the proxy, back-off short so the tests stay quick (the bound is still checked). */
    private S3Upstream upstream(S3Config.Builder config) {
        return S3Upstream.open(config.endpoint(proxy.uri()).build(), new S3Location(TestS3.BUCKET, KEY));
    }

    private S3Config.Builder config() {
        return TestS3.config(server.getUri()).retryBaseDelay(Duration.ofMillis(20));
    }

    /** The first GET of the object gets {@code first}; every later one passes. */
    private void firstGet(Fault first) {
        AtomicInteger gets = new AtomicInteger();
        proxy.rule(r -> r.isFor("GET", KEY) && gets.incrementAndGet() == 1 ? first : Fault.PASS);
    }

    @Test
    void aStreamDroppedMidBodyResumesFromTheFirstByteNotReceived() throws Exception {
        long off = 4096;
        int len = SIZE - 4096 - 100;
        int delivered = 300_000;
        // A clean close (FIN): every byte forwarded reaches the client, so the resume point is exact.
        firstGet(Fault.dropAfterBody(delivered));
        try (S3Upstream up = upstream(config())) {
            byte[] got = assertTimeoutPreemptively(BOUND, () -> readAll(up, off, len, 16 * 1024));
            assertArrayEquals(Arrays.copyOfRange(object, (int) off, (int) off + len), got, "bytes after the resume");
        }
        List<Request> gets = proxy.requests("GET", KEY);
        assertEquals(2, gets.size(), "requests: the first and one resume, got " + gets);
        assertEquals(off, gets.get(0).rangeStart(), gets.get(0).toString());
        assertEquals(off + delivered, gets.get(1).rangeStart(),
                "the resume starts at the first byte not received: " + gets.get(1));
        assertEquals(off + len - 1, gets.get(1).rangeEnd(), "and ends where the range does: " + gets.get(1));
        assertNull(gets.get(0).header("if-match"), "nothing is pinned before the first answer");
        assertEquals(etag, gets.get(1).header("if-match"), "the resume is conditional on the first answer's ETag");
        long sent = proxy.bytesDown();
        assertTrue(sent >= len && sent <= len + HEADER_SLACK,
                "the server sent the range once, not again from its start: expected " + len + " bytes of body plus "
                        + "headers, the proxy forwarded " + sent);
    }

    @Test
    void aStreamResetMidBodyResumesWhereItsBytesStopped() throws Exception {
        int forwarded = 500_000;
        // A reset may discard bytes in flight: the resume starts at what the client actually got.
        firstGet(Fault.resetAfterBody(forwarded));
        try (S3Upstream up = upstream(config())) {
            byte[] got = assertTimeoutPreemptively(BOUND, () -> readAll(up, 0, SIZE, 64 * 1024));
            assertArrayEquals(object, got, "bytes after the resume");
        }
        List<Request> gets = proxy.requests("GET", KEY);
        assertEquals(2, gets.size(), "requests: the first and one resume, got " + gets);
        long resumedAt = gets.get(1).rangeStart();
        assertTrue(resumedAt > 0 && resumedAt <= forwarded,
                "the resume starts after the bytes received (0 < start <= " + forwarded + "), got " + gets.get(1));
        long sent = proxy.bytesDown();
        // At most what went out before the reset, then only the rest: never the object twice.
        assertTrue(sent <= forwarded + (SIZE - resumedAt) + HEADER_SLACK,
                "the proxy forwarded " + sent + " bytes: expected at most " + forwarded + " before the reset and "
                        + (SIZE - resumedAt) + " after it, plus headers");
    }

    @Test
    void resumesAreBoundedByMaxAttemptsAndTheErrorSaysHowFarItGot() {
        int each = 100_000;
        proxy.rule(r -> r.isFor("GET", KEY) ? Fault.dropAfterBody(each) : Fault.PASS);
        try (S3Upstream up = upstream(config().maxAttempts(3))) {
            UpstreamException e = assertTimeoutPreemptively(BOUND,
                    () -> assertThrows(UpstreamException.class, () -> readAll(up, 0, SIZE, 16 * 1024)));
            assertTrue(e.getMessage().startsWith("reading [0, " + SIZE + ") of s3://lazyblock-test/" + KEY
                    + ": body failed after " + 3 * each + " of " + SIZE + " bytes ("), e.getMessage());
            assertTrue(e.getMessage().endsWith("; gave up after 3 attempts"), e.getMessage());
        }
        List<Request> gets = proxy.requests("GET", KEY);
        assertEquals(3, gets.size(), "maxAttempts requests in all, got " + gets);
        for (int i = 0; i < 3; i++) {
            assertEquals((long) i * each, gets.get(i).rangeStart(), "request " + i + ": " + gets.get(i));
        }
    }

    @Test
    void noResumeIsTriedThatCannotEndWithinTheCallTimeout() {
        proxy.rule(r -> r.isFor("GET", KEY) ? Fault.dropAfterBody(100_000) : Fault.PASS);
        // The back-off before a resume (10-20 s) is longer than the whole call timeout (5 s), which
        // leaves the first answer time enough on a loaded machine.
        S3Config.Builder config = TestS3.config(server.getUri()).retryBaseDelay(Duration.ofSeconds(20))
                .apiCallAttemptTimeout(Duration.ofSeconds(5)).apiCallTimeout(Duration.ofSeconds(5));
        try (S3Upstream up = upstream(config)) {
            long t0 = System.nanoTime();
            UpstreamException e = assertTimeoutPreemptively(BOUND,
                    () -> assertThrows(UpstreamException.class, () -> readAll(up, 0, SIZE, 16 * 1024)));
            long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
            // A clean close mid-body: Apache's "Premature end of Content-Length delimited message body".
            assertTrue(e.getMessage().contains(": body failed after 100000 of " + SIZE + " bytes (ConnectionClosed"),
                    e.getMessage());
            assertTrue(e.getMessage().endsWith("); gave up after 1 attempt: no time left to ask for the rest within"
                    + " the call timeout (5000 ms)"), e.getMessage());
            assertTrue(ms < 10_000, "gave up without the back-off (at least 10 s): " + ms + " ms");
        }
        assertEquals(1, proxy.requests("GET", KEY).size(), proxy.requests().toString());
    }

    @Test
    void anObjectReplacedBeforeTheResumeIsRefusedNotMixed() throws Exception {
        AtomicInteger gets = new AtomicInteger();
        proxy.rule(r -> {
            if (!r.isFor("GET", KEY)) {
                return Fault.PASS;
            }
            if (gets.incrementAndGet() == 1) {
                return Fault.dropAfterBody(200_000);
            }
            // Between the drop and the resume, another writer replaces the object (same size).
            try (S3Client direct = TestS3.config(server.getUri()).build().newClient()) {
                direct.putObject(b -> b.bucket(TestS3.BUCKET).key(KEY),
                        RequestBody.fromBytes(UpstreamReads.randomBytes(78, SIZE)));
            }
            return Fault.PASS;
        });
        try (S3Upstream up = upstream(config())) {
            UpstreamException e = assertTimeoutPreemptively(BOUND,
                    () -> assertThrows(UpstreamException.class, () -> readAll(up, 0, SIZE, 16 * 1024)));
            assertTrue(e.getMessage().contains("s3://lazyblock-test/" + KEY + ": body failed after 200000 of "
                    + SIZE + " bytes"), e.getMessage());
            assertTrue(e.getMessage().contains("asking for the rest (bytes=200000-" + (SIZE - 1)
                    + ") failed: the object changed since it was first read (status 412"), e.getMessage());
        }
        List<Request> requests = proxy.requests("GET", KEY);
        assertEquals(2, requests.size(), "no retry of a 412: " + requests);
        assertEquals(etag, requests.get(1).header("if-match"), requests.get(1).toString());
    }

    @Test
    void closeDuringTheBackOffEndsTheStreamAtOnceWithoutAnotherRequest() throws Exception {
        firstGet(Fault.dropAfterBody(100_000));
        // A back-off of 5-10 s: only close() can end the read within the wait below.
        try (S3Upstream up = upstream(TestS3.config(server.getUri()).retryBaseDelay(Duration.ofSeconds(10)))) {
            Upstream.RangeStream s = up.openRange(0, SIZE);
            CompletableFuture<Throwable> outcome = new CompletableFuture<>();
            Thread reader = Thread.ofPlatform().name("resume-reader").start(() -> {
                try {
                    drain(s);
                    outcome.complete(null);
                } catch (Throwable t) {
                    outcome.complete(t);
                }
            });
            Await.until(() -> inBackOff(reader), BOUND, () -> "reader waiting out a back-off; it is at "
                    + Arrays.toString(reader.getStackTrace()));
            long t0 = System.nanoTime();
            s.close();
            Throwable t = outcome.get(BOUND.toSeconds(), TimeUnit.SECONDS);
            long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
            UpstreamException e = assertInstanceOf(UpstreamException.class, t);
            assertTrue(e.getMessage().contains(": range stream closed after 100000 of " + SIZE + " bytes"),
                    e.getMessage());
            assertTrue(ms < 2_000, "close() woke the back-off in " + ms + " ms, expected well under its 5 s");
            reader.join(BOUND.toMillis());
            assertEquals(1, proxy.requests("GET", KEY).size(), "no request after close(): " + proxy.requests());
        }
    }

    private static boolean inBackOff(Thread t) {
        boolean latch = false;
        boolean resume = false;
        for (StackTraceElement f : t.getStackTrace()) {
            latch |= f.getClassName().equals("java.util.concurrent.CountDownLatch");
            resume |= f.getMethodName().equals("resume");
        }
        return latch && resume;
    }

    /** The whole range through {@code openRange}, {@code chunk} bytes per read at most. */
    private static byte[] readAll(S3Upstream up, long off, int len, int chunk) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream(len);
        try (Upstream.RangeStream s = up.openRange(off, len)) {
            ByteBuffer buf = ByteBuffer.allocateDirect(chunk);
            int n;
            while ((n = s.read(buf.clear())) >= 0) {
                byte[] b = new byte[n];
                buf.flip().get(b);
                out.write(b);
            }
        }
        return out.toByteArray();
    }

    private static void drain(Upstream.RangeStream s) throws Exception {
        ByteBuffer buf = ByteBuffer.allocate(16 * 1024);
        while (s.read(buf.clear()) >= 0) {
            // discard
        }
    }
}
