package dev.lazyblock.azure;

import dev.lazyblock.testing.UpstreamReads;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.azure.core.util.BinaryData;
import dev.lazyblock.testing.Await;
import dev.lazyblock.testing.FaultProxy;
import dev.lazyblock.testing.FaultProxy.Fault;
import dev.lazyblock.testing.FaultProxy.Request;
import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.UpstreamException;
import java.io.IOException;
import java.net.URI;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * A connection dropped mid-body, made by a TCP proxy between the client and Azurite: the read
 * resumes from the first byte not received, conditional on the first answer's ETag, and the
 * reader gets the right bytes; a connection dropped every time ends in an error that names the
 * blob; a stalled body ends within the read timeout; close() wakes a blocked reader.
 */
class AzureDroppedConnectionTest {
    private static final String BLOB = "images/d.img";
    private static final int SIZE = 2 << 20;

    @RegisterExtension
    static final Azurite server = new Azurite();

    private FaultProxy proxy;
    private String container;
    private byte[] bytes;

    @BeforeEach
    void setUp() throws IOException {
        proxy = new FaultProxy(URI.create("http://127.0.0.1:" + server.port()), FaultProxy.Dialect.AZURE);
        container = server.newContainer();
        bytes = UpstreamReads.randomBytes(11, SIZE);
        server.config().build().clients(null, container).sync().getBlobClient(BLOB).upload(BinaryData.fromBytes(bytes));
    }

    @AfterEach
    void tearDown() throws IOException {
        proxy.close();
    }

    private Upstream open(AzureConfig.Builder b) {
        return AzureBlobUpstream.open(b.build(), new AzureLocation(container, BLOB));
    }

    private AzureConfig.Builder viaProxy() {
        return Azurite.config(URI.create(proxy.uri() + "/" + Azurite.ACCOUNT))
                .retryBaseDelay(Duration.ofMillis(20)).maxRetryDelay(Duration.ofMillis(200));
    }

    private static long rangeStart(Request r) {
        String h = r.header("x-ms-range") != null ? r.header("x-ms-range") : r.header("range");
        return h == null ? -1 : Long.parseLong(h.substring(h.indexOf('=') + 1, h.indexOf('-')));
    }

    @Test
    void aRangeStreamDroppedMidBodyResumesWhereItStopped() throws Exception {
        AtomicInteger gets = new AtomicInteger();
        proxy.rule(r -> r.isFor("GET", BLOB) && gets.incrementAndGet() == 1 ? Fault.resetAfterBody(300_000)
                : Fault.PASS);
        try (Upstream up = open(viaProxy())) {
            byte[] got = UpstreamReads.readStream(up, 1000, SIZE - 2000, new Random(1), "openRange");
            assertArrayEquals(Arrays.copyOfRange(bytes, 1000, SIZE - 1000), got);
        }
        List<Request> requests = proxy.requests("GET", BLOB);
        assertEquals(2, requests.size(), requests.toString());
        long resumedAt = rangeStart(requests.get(1));
        assertTrue(resumedAt > 1000 && resumedAt <= 1000 + 300_000,
                "the second request starts after the bytes received, at " + resumedAt + ": " + requests);
        assertTrue(requests.get(1).header("if-match") != null, "the resume is conditional: " + requests);
    }

    @Test
    void readFullyDroppedMidBodyStillReturnsTheRange() throws Exception {
        AtomicInteger gets = new AtomicInteger();
        proxy.rule(r -> r.isFor("GET", BLOB) && gets.incrementAndGet() == 1 ? Fault.dropAfterBody(500_000)
                : Fault.PASS);
        try (Upstream up = open(viaProxy())) {
            ByteBuffer dst = ByteBuffer.allocateDirect(SIZE);
            up.readFully(0, dst);
            byte[] got = new byte[SIZE];
            dst.flip().get(got);
            assertArrayEquals(bytes, got);
        }
        assertEquals(2, proxy.requests("GET", BLOB).size(), proxy.requests().toString());
    }

    @Test
    void aConnectionDroppedEveryTimeEndsInAnErrorNamingTheBlob() throws Exception {
        proxy.rule(r -> r.isFor("GET", BLOB) ? Fault.resetAfterBody(100_000) : Fault.PASS);
        try (Upstream up = open(viaProxy().maxAttempts(3))) {
            long t0 = System.nanoTime();
            UpstreamException e = assertThrows(UpstreamException.class,
                    () -> UpstreamReads.readStream(up, 0, SIZE, new Random(2), "openRange"));
            System.out.printf("stream gave up after %d ms: %s%n", (System.nanoTime() - t0) / 1_000_000, e.getMessage());
            String m = e.getMessage();
            assertTrue(m.contains("reading [0, " + SIZE + ") of az://" + container + "/" + BLOB), m);
            assertTrue(m.contains("body failed after"), m);
            t0 = System.nanoTime();
            e = assertThrows(UpstreamException.class, () -> up.readFully(0, ByteBuffer.allocate(SIZE)));
            System.out.printf("readFully gave up after %d ms: %s%n", (System.nanoTime() - t0) / 1_000_000, e.getMessage());
            assertTrue(e.getMessage().contains("az://" + container + "/" + BLOB), e.getMessage());
        }
        // Three requests per read at most (the first and two resumes), two reads.
        int n = proxy.requests("GET", BLOB).size();
        assertTrue(n >= 2 && n <= 6, n + " requests: " + proxy.requests());
    }

    @Test
    void aStalledBodyEndsWithinTheReadTimeout() throws Exception {
        proxy.rule(r -> r.isFor("GET", BLOB) ? Fault.stallAfterBody(64 * 1024) : Fault.PASS);
        try (Upstream up = open(viaProxy().readTimeout(Duration.ofSeconds(1)).maxAttempts(1))) {
            long t0 = System.nanoTime();
            UpstreamException e = assertThrows(UpstreamException.class,
                    () -> UpstreamReads.readStream(up, 0, SIZE, new Random(3), "openRange"));
            long ms = (System.nanoTime() - t0) / 1_000_000;
            assertTrue(ms < 8_000, "took " + ms + " ms: " + e);
            assertTrue(e.getMessage().contains("az://" + container + "/" + BLOB), e.getMessage());
        }
    }

    @Test
    void closeFromAnotherThreadWakesABlockedReader() throws Exception {
        proxy.rule(r -> r.isFor("GET", BLOB) ? Fault.stallAfterBody(64 * 1024) : Fault.PASS);
        try (Upstream up = open(viaProxy().readTimeout(Duration.ofSeconds(30)))) {
            Upstream.RangeStream s = up.openRange(0, SIZE);
            Thread closer = Thread.ofPlatform().start(() -> {
                try {
                    // The body has stopped coming: the reader is, or is about to be, blocked on it.
                    Await.until(() -> proxy.stalledNow() > 0, Duration.ofSeconds(30), () -> "the proxy stalled the body");
                    s.close();
                } catch (Exception ignored) {
                    // the test's assertion says what went wrong
                }
            });
            long t0 = System.nanoTime();
            UpstreamException e = assertThrows(UpstreamException.class, () -> {
                ByteBuffer b = ByteBuffer.allocate(64 * 1024);
                while (true) {
                    b.clear();
                    s.read(b);
                }
            });
            long ms = (System.nanoTime() - t0) / 1_000_000;
            closer.join();
            assertTrue(e.getMessage().contains("range stream closed after"), e.getMessage());
            assertTrue(ms < 5_000, "woke after " + ms + " ms");
            s.close();
        }
    }
}
