package dev.lazyblock.s3;

import dev.lazyblock.testing.UpstreamReads;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.testing.FaultProxy;
import dev.lazyblock.testing.Await;
import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.UpstreamException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.gaul.s3proxy.junit.S3ProxyExtension;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The network breaks between client and server (a TCP proxy resets or stalls connections
 * mid-body): every failure is a clear error naming the object, within a bounded time, never a
 * hang.
 */
class S3UpstreamFaultTest {
    private static final int SIZE = 2 << 20;
    private static final String KEY = "faults/obj";
    private static final Duration BOUND = Duration.ofSeconds(30);

    @RegisterExtension
    final S3ProxyExtension server = TestS3.server();

    private FaultProxy proxy;
    private byte[] object;

    @BeforeEach
    void setUp() throws Exception {
        object = UpstreamReads.randomBytes(21, SIZE);
        TestS3.bucketWith(server.getUri(), KEY, object);
        proxy = new FaultProxy(server.getUri());
    }

    @AfterEach
    void tearDown() throws Exception {
        proxy.close();
    }

    /** An upstream with a client of its own, through the proxy. */
    private S3Upstream upstream(S3Config.Builder config) {
        return S3Upstream.open(config.endpoint(proxy.uri()).build(), new S3Location(TestS3.BUCKET, KEY));
    }

    @Test
    void resetMidBodyOnEveryAttemptFailsReadFullyClearly() {
        proxy.resetAnswersAfter(64 * 1024, Integer.MAX_VALUE);
        try (S3Upstream up = upstream(TestS3.config(server.getUri()).maxAttempts(3))) {
            UpstreamException e = assertTimeoutPreemptively(BOUND, () -> assertThrows(UpstreamException.class,
                    () -> up.readFully(0, ByteBuffer.allocate(1 << 20))));
            assertTrue(e.getMessage().startsWith("reading [0, 1048576) of s3://lazyblock-test/faults/obj: "),
                    e.getMessage());
            assertTrue(e.getMessage().contains("after 3 attempts"), e.getMessage());
            assertEquals(3, proxy.resets(), "one reset per attempt");
        }
    }

    @Test
    void aSingleResetIsRetriedByReadFully() throws Exception {
        proxy.resetAnswersAfter(100 * 1024, 1);
        try (S3Upstream up = upstream(TestS3.config(server.getUri()))) {
            ByteBuffer dst = ByteBuffer.allocate(1 << 20);
            assertTimeoutPreemptively(BOUND, () -> up.readFully(4096, dst));
            assertArrayEquals(Arrays.copyOfRange(object, 4096, 4096 + (1 << 20)), dst.array());
            assertEquals(1, proxy.resets());
        }
    }

    @Test
    void resetMidBodyFailsTheRangeStreamClearly() {
        try (S3Upstream up = upstream(TestS3.config(server.getUri()))) {
            proxy.resetAnswersAfter(200 * 1024, Integer.MAX_VALUE);
            UpstreamException e = assertTimeoutPreemptively(BOUND, () -> {
                try (Upstream.RangeStream s = up.openRange(0, SIZE)) {
                    return assertThrows(UpstreamException.class, () -> drain(s, null));
                }
            });
            assertTrue(e.getMessage().startsWith("reading [0, 2097152) of s3://lazyblock-test/faults/obj: body failed"
                    + " after "), e.getMessage());
            assertTrue(e.getMessage().contains(" of 2097152 bytes"), e.getMessage());
        }
    }

    @Test
    void aStalledBodyFailsAtTheSocketTimeout() {
        proxy.stallAnswersAfter(100 * 1024, Integer.MAX_VALUE);
        S3Config.Builder config = TestS3.config(server.getUri()).maxAttempts(2)
                .socketTimeout(Duration.ofSeconds(1))
                .apiCallAttemptTimeout(Duration.ofSeconds(5)).apiCallTimeout(Duration.ofSeconds(15));
        try (S3Upstream up = upstream(config)) {
            UpstreamException e = assertTimeoutPreemptively(BOUND, () -> assertThrows(UpstreamException.class,
                    () -> up.readFully(0, ByteBuffer.allocate(1 << 20))));
            assertTrue(e.getMessage().contains("s3://lazyblock-test/faults/obj"), e.getMessage());
            e = assertTimeoutPreemptively(BOUND, () -> {
                try (Upstream.RangeStream s = up.openRange(0, SIZE)) {
                    return assertThrows(UpstreamException.class, () -> drain(s, null));
                }
            });
            assertTrue(e.getMessage().contains("body failed after"), e.getMessage());
            assertTrue(e.getMessage().contains("SocketTimeoutException"), e.getMessage());
        }
    }

    @Test
    void closeFromAnotherThreadWakesABlockedReader() throws Exception {
        proxy.stallAnswersAfter(100 * 1024, Integer.MAX_VALUE);
        // A socket timeout far beyond the test's bound: only close() can end the read in time.
        try (S3Upstream up = upstream(TestS3.config(server.getUri()).socketTimeout(Duration.ofMinutes(5)))) {
            Upstream.RangeStream s = up.openRange(0, SIZE);
            AtomicLong got = new AtomicLong();
            Thread[] reader = new Thread[1];
            CompletableFuture<Throwable> outcome = new CompletableFuture<>();
            reader[0] = Thread.ofPlatform().name("blocked-reader").start(() -> {
                try {
                    drain(s, got);
                    outcome.complete(null);
                } catch (Throwable t) {
                    outcome.complete(t);
                }
            });
            Await.until(() -> proxy.stalls() == 1 && inSocketRead(reader[0]), BOUND,
                    () -> "reader blocked in a socket read after " + got.get() + " bytes");
            s.close();
            Throwable t = outcome.get(BOUND.toSeconds(), TimeUnit.SECONDS);
            UpstreamException e = assertInstanceOf(UpstreamException.class, t);
            assertTrue(e.getMessage().contains("s3://lazyblock-test/faults/obj: range stream closed after "),
                    e.getMessage());
            s.close(); // idempotent
            reader[0].join(BOUND.toMillis());
        }
    }

    private static boolean inSocketRead(Thread t) {
        for (StackTraceElement f : t.getStackTrace()) {
            if (f.getClassName().contains("NioSocketImpl") || f.getClassName().contains("SocketInputStream")) {
                return true;
            }
        }
        return false;
    }

    private static void drain(Upstream.RangeStream s, AtomicLong got) throws Exception {
        ByteBuffer buf = ByteBuffer.allocate(16 * 1024);
        int n;
        while ((n = s.read(buf.clear())) >= 0) {
            if (got != null) {
                got.addAndGet(n);
            }
        }
    }
}
