package dev.lazyblock.upstream;

import dev.lazyblock.testing.UpstreamReads;

import static java.nio.charset.StandardCharsets.US_ASCII;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.function.Executable;

/**
 * Our client's checks against servers that misbehave on purpose. The tiny handlers here are
 * the misbehaviour; ranges served correctly are tested against Jetty in HttpUpstreamTest.
 */
@Timeout(60)
class HttpUpstreamErrorsTest {
    private static final String QUERY = "?X-Amz-Signature=secret&X-Amz-Credential=AKIDsecret";
    private static final byte[] OBJECT = UpstreamReads.randomBytes(7, 1000);

    private final CountDownLatch release = new CountDownLatch(1);
    private final ExecutorService executor = Executors.newCachedThreadPool();
    private HttpServer server;

    interface Behaviour {
        void answer(HttpExchange exchange) throws IOException;
    }

    @AfterEach
    void stop() {
        release.countDown();
        if (server != null) {
            server.stop(0);
        }
        executor.shutdownNow();
    }

    /** An upstream whose URL carries a secret in its user info and query, as signed URLs do. */
    private HttpUpstream serve(Behaviour behaviour) throws IOException {
        return serve(behaviour, Duration.ofSeconds(10));
    }

    private HttpUpstream serve(Behaviour behaviour, Duration requestTimeout) throws IOException {
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.setExecutor(executor);
        server.createContext("/", exchange -> {
            try (exchange) {
                behaviour.answer(exchange);
            }
        });
        server.start();
        URI uri = URI.create("http://user:pwsecret@127.0.0.1:" + server.getAddress().getPort()
                + "/bucket/object.raw" + QUERY);
        return new HttpUpstream(uri, Duration.ofSeconds(5), requestTimeout);
    }

    private static void sendRange(HttpExchange ex, String contentRange, long contentLength, byte[] body)
            throws IOException {
        if (contentRange != null) {
            ex.getResponseHeaders().set("Content-Range", contentRange);
        }
        ex.sendResponseHeaders(206, contentLength);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(body);
        }
    }

    /** [first, last] of the request's "bytes=first-last". */
    private static long[] requested(HttpExchange ex) {
        String[] parts = ex.getRequestHeaders().getFirst("Range").substring("bytes=".length()).split("-");
        return new long[] {Long.parseLong(parts[0]), Long.parseLong(parts[1])};
    }

    /** The exception, with every message and stack frame of its chain, holds no secret. */
    private static <T extends Throwable> T assertNoSecret(Class<T> type, Executable call) {
        T e = assertThrows(type, call);
        StringWriter trace = new StringWriter();
        e.printStackTrace(new PrintWriter(trace));
        assertFalse(trace.toString().contains("secret"), trace.toString());
        return e;
    }

    private static void assertMessage(Throwable e, String... parts) {
        for (String part : parts) {
            assertTrue(e.getMessage().contains(part), "expected '" + part + "' in: " + e.getMessage());
        }
    }

    private static int readAll(Upstream up, long off, int len) throws IOException {
        int total = 0;
        try (Upstream.RangeStream s = up.openRange(off, len)) {
            ByteBuffer dst = ByteBuffer.allocate(len + 10);
            int n;
            while ((n = s.read(dst)) >= 0) {
                total += n;
            }
        }
        return total;
    }

    @Test
    void status200ForARangedRequestIsRefused() throws IOException {
        try (HttpUpstream up = serve(ex -> {
            ex.sendResponseHeaders(200, OBJECT.length);
            ex.getResponseBody().write(OBJECT);
        })) {
            UpstreamException e = assertNoSecret(UpstreamException.class,
                    () -> up.readFully(10, ByteBuffer.allocate(10)));
            assertMessage(e, "ignored the Range header", "status 200 instead of 206", "[10, 20)", up.name());
            assertMessage(assertNoSecret(UpstreamException.class, () -> up.openRange(10, 10)),
                    "ignored the Range header");
        }
    }

    @Test
    void contentRangeOtherThanRequestedIsRefused() throws IOException {
        try (HttpUpstream up = serve(ex -> sendRange(ex, "bytes 1-10/1000", 10,
                Arrays.copyOfRange(OBJECT, 1, 11)))) {
            UpstreamException e = assertNoSecret(UpstreamException.class,
                    () -> up.readFully(0, ByteBuffer.allocate(10)));
            assertMessage(e, "Content-Range 'bytes 1-10/1000' does not match the request for bytes=0-9");
            assertMessage(assertNoSecret(UpstreamException.class, () -> up.openRange(0, 10)),
                    "Content-Range 'bytes 1-10/1000' does not match");
        }
    }

    @Test
    void missingContentRangeIsRefused() throws IOException {
        try (HttpUpstream up = serve(ex -> sendRange(ex, null, 10, new byte[10]))) {
            assertMessage(assertNoSecret(UpstreamException.class,
                    () -> up.readFully(0, ByteBuffer.allocate(10))), "Content-Range (missing)");
        }
    }

    @Test
    void contentLengthOtherThanTheRangeIsRefused() throws IOException {
        try (HttpUpstream up = serve(ex -> sendRange(ex, "bytes 0-9/1000", 12, new byte[12]))) {
            assertMessage(assertNoSecret(UpstreamException.class,
                    () -> up.readFully(0, ByteBuffer.allocate(10))),
                    "Content-Length 12 does not match the range of 10 bytes");
        }
    }

    @Test
    void bodyCutShortOfItsContentLengthFails() throws IOException {
        // Promises 10 bytes, sends 5, drops the connection.
        try (HttpUpstream up = serve(ex -> {
            ex.getResponseHeaders().set("Content-Range", "bytes 0-9/1000");
            ex.sendResponseHeaders(206, 10);
            ex.getResponseBody().write(OBJECT, 0, 5);
            ex.getResponseBody().flush();
            ex.close();
        })) {
            UpstreamException e = assertNoSecret(UpstreamException.class,
                    () -> up.readFully(0, ByteBuffer.allocate(10)));
            assertMessage(e, "[0, 10)", up.name());
            UpstreamException s = assertNoSecret(UpstreamException.class, () -> readAll(up, 0, 10));
            assertMessage(s, "[0, 10)");
        }
    }

    @Test
    void wellFormedBodyShorterThanTheRangeFails() throws IOException {
        // Chunked: a complete body, just too short for the Content-Range it came with.
        try (HttpUpstream up = serve(ex -> sendRange(ex, "bytes 0-9/1000", 0, Arrays.copyOf(OBJECT, 5)))) {
            assertMessage(assertNoSecret(UpstreamException.class,
                    () -> up.readFully(0, ByteBuffer.allocate(10))),
                    "body ended early: expected 10 bytes, got 5");
            assertMessage(assertNoSecret(UpstreamException.class, () -> readAll(up, 0, 10)),
                    "body ended early: expected 10 bytes, got 5");
        }
    }

    @Test
    void bodyLongerThanTheRangeFails() throws IOException {
        try (HttpUpstream up = serve(ex -> sendRange(ex, "bytes 0-9/1000", 0, Arrays.copyOf(OBJECT, 15)))) {
            assertMessage(assertNoSecret(UpstreamException.class,
                    () -> up.readFully(0, ByteBuffer.allocate(10))),
                    "body longer than the range: more than 10 bytes");
            assertMessage(assertNoSecret(UpstreamException.class, () -> readAll(up, 0, 10)),
                    "body longer than the range: more than 10 bytes");
        }
    }

    @Test
    void status404NamesTheUrlWithoutSecrets() throws IOException {
        try (HttpUpstream up = serve(ex -> ex.sendResponseHeaders(404, -1))) {
            UpstreamException e = assertNoSecret(UpstreamException.class,
                    () -> up.readFully(0, ByteBuffer.allocate(10)));
            assertMessage(e, "status 404, expected 206", "http://127.0.0.1:" + server.getAddress().getPort()
                    + "/bucket/object.raw: ", "[0, 10)");
            assertFalse(e.getMessage().contains("X-Amz"), e.getMessage());
            assertMessage(assertNoSecret(UpstreamException.class, () -> up.openRange(0, 10)), "status 404");
            assertMessage(assertNoSecret(UpstreamException.class, up::size), "status 404");
        }
    }

    @Test
    void status500IsAnError() throws IOException {
        try (HttpUpstream up = serve(ex -> {
            byte[] page = ("internal error for " + ex.getRequestURI()).getBytes(US_ASCII);
            ex.sendResponseHeaders(500, page.length);
            ex.getResponseBody().write(page);
        })) {
            assertMessage(assertNoSecret(UpstreamException.class,
                    () -> up.readFully(100, ByteBuffer.allocate(10))), "status 500, expected 206", "[100, 110)");
        }
    }

    @Test
    void refusedConnectionIsAnErrorWithoutSecrets() throws IOException {
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            port = s.getLocalPort();
        }
        URI uri = URI.create("http://user:pwsecret@127.0.0.1:" + port + "/object.raw" + QUERY);
        try (HttpUpstream up = new HttpUpstream(uri, Duration.ofSeconds(5), Duration.ofSeconds(10))) {
            assertMessage(assertNoSecret(UpstreamException.class,
                    () -> up.readFully(0, ByteBuffer.allocate(10))), "cannot connect");
            assertNoSecret(UpstreamException.class, () -> up.openRange(0, 10));
            assertNoSecret(UpstreamException.class, up::size);
        }
    }

    @Test
    void serverThatNeverAnswersTimesOut() throws IOException {
        Behaviour hang = ex -> {
            try {
                release.await(30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        };
        try (HttpUpstream up = serve(hang, Duration.ofMillis(300))) {
            assertMessage(assertNoSecret(UpstreamException.class,
                    () -> up.readFully(0, ByteBuffer.allocate(10))), "within PT0.3S");
            assertMessage(assertNoSecret(UpstreamException.class, () -> up.openRange(0, 10)), "within PT0.3S");
        }
    }

    @Test
    void interruptedReadFailsAndKeepsTheInterrupt() throws IOException {
        try (HttpUpstream up = serve(ex -> sendRange(ex, "bytes 0-9/1000", 10, new byte[10]))) {
            Thread.currentThread().interrupt();
            try {
                assertThrows(InterruptedIOException.class, () -> up.readFully(0, ByteBuffer.allocate(10)));
                assertTrue(Thread.currentThread().isInterrupted());
            } finally {
                Thread.interrupted();
            }
        }
    }

    @Test
    void objectThatChangesSizeIsRefused() throws IOException {
        AtomicInteger calls = new AtomicInteger();
        try (HttpUpstream up = serve(ex -> {
            long[] r = requested(ex);
            long total = calls.incrementAndGet() == 1 ? 1000 : 2000;
            int len = (int) (r[1] - r[0] + 1);
            sendRange(ex, "bytes " + r[0] + "-" + r[1] + "/" + total, len, new byte[len]);
        })) {
            up.readFully(0, ByteBuffer.allocate(10));
            assertEquals(1000, up.size());
            assertMessage(assertNoSecret(UpstreamException.class,
                    () -> up.readFully(0, ByteBuffer.allocate(10))),
                    "the object changed size: it was 1000 bytes, Content-Range says 2000");
        }
    }

    @Test
    void aStrongETagIsSentAsIfMatchAndA412IsAChangedObject() throws IOException {
        java.util.List<String> ifMatch = new java.util.concurrent.CopyOnWriteArrayList<>();
        AtomicInteger calls = new AtomicInteger();
        try (HttpUpstream up = serve(ex -> {
            ifMatch.add(String.valueOf(ex.getRequestHeaders().getFirst("If-Match")));
            if (calls.incrementAndGet() == 3) { // the object was replaced since
                ex.sendResponseHeaders(412, -1);
                return;
            }
            long[] r = requested(ex);
            int len = (int) (r[1] - r[0] + 1);
            ex.getResponseHeaders().set("ETag", "\"v1\"");
            sendRange(ex, "bytes " + r[0] + "-" + r[1] + "/1000", len, Arrays.copyOfRange(OBJECT, (int) r[0], (int) r[1] + 1));
        })) {
            up.readFully(0, ByteBuffer.allocate(10));
            assertEquals("\"v1\"", up.version());
            up.readFully(10, ByteBuffer.allocate(10));
            assertMessage(assertNoSecret(UpstreamException.class, () -> up.readFully(20, ByteBuffer.allocate(10))),
                    "the object changed since it was first read: status 412 Precondition Failed for If-Match \"v1\"");
        }
        assertEquals(java.util.List.of("null", "\"v1\"", "\"v1\""), ifMatch, "If-Match on every request after the first");
    }

    @Test
    void anAnswerWithAnotherETagIsRefusedEvenIfTheServerIgnoresIfMatch() throws IOException {
        AtomicInteger calls = new AtomicInteger();
        try (HttpUpstream up = serve(ex -> {
            long[] r = requested(ex);
            int len = (int) (r[1] - r[0] + 1);
            ex.getResponseHeaders().set("ETag", calls.incrementAndGet() == 1 ? "\"v1\"" : "\"v2\"");
            sendRange(ex, "bytes " + r[0] + "-" + r[1] + "/1000", len, new byte[len]);
        })) {
            up.readFully(0, ByteBuffer.allocate(10));
            assertMessage(assertNoSecret(UpstreamException.class, () -> up.readFully(0, ByteBuffer.allocate(10))),
                    "the object changed since it was first read: ETag \"v2\", first read as ETag \"v1\"");
        }
    }

    @Test
    void sizeWithoutHeadUsesTheContentRangeTotal() throws IOException {
        try (HttpUpstream up = serve(ex -> {
            if (ex.getRequestMethod().equals("HEAD")) {
                ex.sendResponseHeaders(403, -1); // signed for GET only
                return;
            }
            long[] r = requested(ex);
            assertEquals(0, r[0]);
            assertEquals(0, r[1]);
            sendRange(ex, "bytes 0-0/" + OBJECT.length, 1, new byte[1]);
        })) {
            assertEquals(OBJECT.length, up.size());
        }
    }
}
