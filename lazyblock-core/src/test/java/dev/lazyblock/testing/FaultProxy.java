package dev.lazyblock.testing;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A TCP proxy on loopback between a store's client and a real server (S3Proxy, Azurite) that
 * forwards bytes faithfully until told to break. Shared by the store modules' tests; the errors it
 * answers itself are worded in the store's {@link Dialect}.
 *
 * <p>At the TCP level, as a real network breaks: reset a connection (RST) after so many bytes of
 * the server's answer, stall one (stop forwarding, keep it open), or reset uploads once a byte
 * budget has gone through.
 *
 * <p>Per request, as a store or a middlebox misbehaves: it reads the plain-HTTP request line and
 * headers going up (never the bodies' bytes), records every request ({@link #requests()}: method,
 * target, headers, arrival time), and asks a {@link #rule} what to do with it: pass it, answer it
 * itself with the store's XML error (503 SlowDown, ServerBusy...) without the server seeing it, or let the server
 * answer and then stall, reset or cleanly close the connection after so many bytes of the
 * answer's body. The clients do not pipeline, so the next answer on a connection belongs to
 * the last request read from it.
 */
public final class FaultProxy implements AutoCloseable {
    private static final byte[] HEADER_END = {'\r', '\n', '\r', '\n'};
    private static final Pattern RANGE = Pattern.compile("bytes=(\\d+)-(\\d*)");

    /** One request as it reached the proxy. Header names are lowercase. */
    public record Request(long connection, String method, String target, Map<String, String> headers, long arrivedNanos) {
        public String header(String name) {
            return headers.get(name.toLowerCase(Locale.ROOT));
        }

        /** The first byte of its {@code Range: bytes=a-b}, or -1 without one. */
        public long rangeStart() {
            Matcher m = range();
            return m == null ? -1 : Long.parseLong(m.group(1));
        }

        /** The last byte of its {@code Range: bytes=a-b}, or -1 without one (or open-ended). */
        public long rangeEnd() {
            Matcher m = range();
            return m == null || m.group(2).isEmpty() ? -1 : Long.parseLong(m.group(2));
        }

        private Matcher range() {
            String r = header("range");
            if (r == null) {
                return null;
            }
            Matcher m = RANGE.matcher(r.strip());
            return m.matches() ? m : null;
        }

        /**
         * Whether it is a {@code method} request for the object {@code key} (the path, decoded,
         * ends with {@code /key}: S3's path style puts the bucket first, and the Azure SDK
         * percent-encodes the '/' of blob names).
         */
        public boolean isFor(String method, String key) {
            String path = target.contains("?") ? target.substring(0, target.indexOf('?')) : target;
            return this.method.equals(method) && URI.create(path).getPath().endsWith("/" + key);
        }

        @Override
        public String toString() {
            return method + " " + target + (header("range") == null ? "" : " Range: " + header("range"))
                    + (header("if-match") == null ? "" : " If-Match: " + header("if-match"));
        }
    }

    /** What the proxy does with one request. */
    public record Fault(Kind kind, long afterBodyBytes, int status, String code, String message) {
        public enum Kind { PASS, STALL, RESET, DROP, ANSWER }

        public static final Fault PASS = new Fault(Kind.PASS, -1, 0, null, null);

        /** Forwards the answer's headers and {@code n} bytes of its body, then forwards nothing more. */
        public static Fault stallAfterBody(long n) {
            return new Fault(Kind.STALL, n, 0, null, null);
        }

        /** Forwards the headers and {@code n} bytes of body, then resets the connection (RST). */
        public static Fault resetAfterBody(long n) {
            return new Fault(Kind.RESET, n, 0, null, null);
        }

        /**
         * Forwards the headers and {@code n} bytes of body, then closes the connection cleanly
         * (FIN): every byte forwarded reaches the client, and then the body ends early.
         */
        public static Fault dropAfterBody(long n) {
            return new Fault(Kind.DROP, n, 0, null, null);
        }

        /** Answers with an XML error of the proxy's dialect itself; the server never sees the request. */
        public static Fault answer(int status, String code, String message) {
            return new Fault(Kind.ANSWER, -1, status, code, message);
        }

        /** S3's throttling answer. */
        public static Fault slowDown() {
            return answer(503, "SlowDown", "Please reduce your request rate.");
        }

        /** Azure Storage's throttling answer. */
        public static Fault serverBusy() {
            return answer(503, "ServerBusy", "The server is busy.");
        }
    }

    /** How a store words the errors the proxy answers itself. */
    public enum Dialect {
        S3("Slow Down", "x-amz-request-id"),
        AZURE("Server Busy", "x-ms-request-id");

        private final String busyReason;
        private final String requestIdHeader;

        Dialect(String busyReason, String requestIdHeader) {
            this.busyReason = busyReason;
            this.requestIdHeader = requestIdHeader;
        }

        String body(Fault f, int seq) {
            String tail = this == S3 ? "<RequestId>FAULT" + seq + "</RequestId><HostId>fault-proxy</HostId>" : "";
            return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>" + f.code() + "</Code><Message>"
                    + f.message() + "</Message>" + tail + "</Error>";
        }

        String headers(Fault f, int seq, int length) {
            return "HTTP/1.1 " + f.status() + " " + (f.status() == 503 ? busyReason : "Error") + "\r\n"
                    + "Content-Type: application/xml\r\n"
                    + "Content-Length: " + length + "\r\n"
                    + requestIdHeader + ": FAULT" + seq + "\r\n"
                    + (this == AZURE ? "x-ms-error-code: " + f.code() + "\r\n" : "")
                    + "\r\n";
        }
    }

    private final ServerSocket listener;
    private final InetSocketAddress target;
    private final Dialect dialect;
    private final Set<Conn> conns = ConcurrentHashMap.newKeySet();
    private final AtomicLong accepted = new AtomicLong();
    private final AtomicLong totalUp = new AtomicLong();
    private final AtomicLong totalDown = new AtomicLong();
    private final AtomicInteger resets = new AtomicInteger();
    private final AtomicInteger stalls = new AtomicInteger();
    private final AtomicInteger stalledNow = new AtomicInteger();
    private final AtomicInteger answered = new AtomicInteger();
    private final AtomicBoolean closed = new AtomicBoolean();
    private final List<Request> requests = new CopyOnWriteArrayList<>();
    private volatile Function<Request, Fault> rule = r -> Fault.PASS;

    /** Downstream fault for the next {@code faultyConnections} connections accepted. */
    private volatile long downLimit = -1;
    private volatile boolean stallInsteadOfReset;
    private final AtomicInteger faultyConnections = new AtomicInteger();
    /** Upload fault: once this many bytes went upstream in all, reset connections carrying more. */
    private volatile long uploadBudget = -1;
    private volatile long uploadPerConnection;
    /** Upload hold: once this many bytes went upstream in all, stop forwarding until released. */
    private volatile long holdAfter = -1;
    private final CountDownLatch released = new CountDownLatch(1);
    private final AtomicBoolean holding = new AtomicBoolean();

    /** A proxy in front of an S3 server. */
    public FaultProxy(URI target) throws IOException {
        this(target, Dialect.S3);
    }

    public FaultProxy(URI target, Dialect dialect) throws IOException {
        this.dialect = dialect;
        this.target = new InetSocketAddress(target.getHost(), target.getPort());
        this.listener = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        Thread t = new Thread(this::acceptLoop, "fault-proxy-accept");
        t.setDaemon(true);
        t.start();
    }

    public URI uri() {
        return URI.create("http://127.0.0.1:" + listener.getLocalPort());
    }

    /**
     * From now on, each request is handled as {@code rule} says; it runs on the proxy's thread
     * for that connection, once per request, in arrival order per connection.
     */
    public void rule(Function<Request, Fault> rule) {
        this.rule = rule;
    }

    /** Every request read so far, in arrival order. */
    public List<Request> requests() {
        return List.copyOf(requests);
    }

    /** The requests for {@code method} of {@code key}, in arrival order. */
    public List<Request> requests(String method, String key) {
        List<Request> out = new ArrayList<>();
        for (Request r : requests) {
            if (r.isFor(method, key)) {
                out.add(r);
            }
        }
        return out;
    }

    /** Bytes of answers (headers and bodies) forwarded to clients, all connections together. */
    public long bytesDown() {
        return totalDown.get();
    }

    /** The next {@code connections} connections are reset after {@code bytes} bytes of answer. */
    public void resetAnswersAfter(long bytes, int connections) {
        stallInsteadOfReset = false;
        downLimit = bytes;
        faultyConnections.set(connections);
    }

    /** The next {@code connections} connections stop forwarding after {@code bytes} bytes of answer. */
    public void stallAnswersAfter(long bytes, int connections) {
        stallInsteadOfReset = true;
        downLimit = bytes;
        faultyConnections.set(connections);
    }

    /**
     * After {@code budget} bytes have gone upstream (all connections together), any connection
     * that carries more than {@code perConnection} further bytes is reset: uploads of large parts
     * fail from then on, small requests still pass.
     */
    public void failUploadsAfter(long budget, long perConnection) {
        uploadPerConnection = perConnection;
        uploadBudget = budget;
    }

    /** Stops forwarding uploads once {@code budget} bytes have gone upstream, until {@link #release()}. */
    public void holdUploadsAfter(long budget) {
        holdAfter = budget;
    }

    /** Whether an upload is being held. */
    public boolean holding() {
        return holding.get();
    }

    public void release() {
        holdAfter = -1;
        released.countDown();
    }

    public long acceptedConnections() {
        return accepted.get();
    }

    /** Connections open through the proxy now (idle pooled ones included). */
    public int openConnections() {
        return conns.size();
    }

    public int resets() {
        return resets.get();
    }

    public int stalls() {
        return stalls.get();
    }

    /** Connections stalled now: one that stays here after its client gave up is a leak. */
    public int stalledNow() {
        return stalledNow.get();
    }

    /** Requests the proxy answered itself. */
    public int answered() {
        return answered.get();
    }

    private void acceptLoop() {
        while (!closed.get()) {
            Socket client;
            try {
                client = listener.accept();
            } catch (IOException e) {
                return; // closed
            }
            long id = accepted.incrementAndGet();
            long limit = -1;
            boolean stall = stallInsteadOfReset;
            if (downLimit >= 0 && faultyConnections.getAndUpdate(n -> Math.max(0, n - 1)) > 0) {
                limit = downLimit;
            }
            try {
                Socket server = new Socket();
                server.connect(target, 5_000);
                Conn c = new Conn(id, client, server, limit, stall);
                conns.add(c);
                c.start();
            } catch (IOException e) {
                closeQuietly(client);
            }
        }
    }

    /** A fault armed for the answer to one request (a fresh object per request). */
    private record Armed(Fault fault) {}

    private final class Conn {
        final long id;
        final Socket client;
        final Socket server;
        final long downLimit;
        final boolean stall;
        final CountDownLatch ended = new CountDownLatch(1);
        /** Client writes come from both pumps (an answer of our own from the up pump). */
        final Object clientWrite = new Object();
        /** Set by the up pump before it forwards a request; read by the down pump. */
        volatile Armed armed;
        long up;
        long upBase = -1;
        long down;

        // Up pump's request parser.
        final ByteArrayOutputStream head = new ByteArrayOutputStream();
        int headMatched;
        long bodyLeft;
        boolean passthrough;

        Conn(long id, Socket client, Socket server, long downLimit, boolean stall) {
            this.id = id;
            this.client = client;
            this.server = server;
            this.downLimit = downLimit;
            this.stall = stall;
        }

        void start() {
            Thread u = new Thread(this::pumpUp, "fault-proxy-up");
            Thread d = new Thread(this::pumpDown, "fault-proxy-down");
            u.setDaemon(true);
            d.setDaemon(true);
            u.start();
            d.start();
        }

        private void pumpUp() {
            byte[] buf = new byte[64 * 1024];
            try (InputStream in = client.getInputStream(); OutputStream out = server.getOutputStream()) {
                int n;
                while ((n = in.read(buf)) >= 0) {
                    long total = totalUp.addAndGet(n);
                    long hold = holdAfter;
                    if (hold >= 0 && total > hold) {
                        holding.set(true);
                        released.await();
                    }
                    long budget = uploadBudget;
                    if (budget >= 0 && total > budget) {
                        if (upBase < 0) {
                            upBase = up;
                        }
                        if (up + n - upBase > uploadPerConnection) {
                            reset();
                            return;
                        }
                    }
                    up += n;
                    feedUp(buf, n, out);
                    out.flush();
                }
            } catch (IOException e) {
                // either side went away
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } finally {
                end();
            }
        }

        /**
         * Forwards what the client sent, reading requests' heads on the way: a head is held
         * until it is whole, then recorded and judged; bodies (by Content-Length) go through as
         * they come. A head it cannot follow (chunked bodies) turns the rest of the connection
         * into a plain pipe.
         */
        private void feedUp(byte[] buf, int n, OutputStream out) throws IOException {
            int i = 0;
            while (i < n) {
                if (passthrough) {
                    out.write(buf, i, n - i);
                    return;
                }
                if (bodyLeft > 0) {
                    int k = (int) Math.min(bodyLeft, n - i);
                    out.write(buf, i, k);
                    bodyLeft -= k;
                    i += k;
                    continue;
                }
                int start = i;
                while (i < n && headMatched < HEADER_END.length) {
                    byte b = buf[i++];
                    headMatched = b == HEADER_END[headMatched] ? headMatched + 1 : (b == '\r' ? 1 : 0);
                }
                head.write(buf, start, i - start);
                if (headMatched == HEADER_END.length) {
                    headMatched = 0;
                    byte[] h = head.toByteArray();
                    head.reset();
                    onRequestHead(h, out);
                } else if (head.size() > 64 * 1024) {
                    passthrough = true;
                    out.write(head.toByteArray());
                    head.reset();
                }
            }
        }

        private void onRequestHead(byte[] h, OutputStream out) throws IOException {
            String[] lines = new String(h, StandardCharsets.ISO_8859_1).split("\r\n");
            String[] requestLine = lines[0].split(" ");
            Map<String, String> headers = new TreeMap<>();
            for (int k = 1; k < lines.length; k++) {
                int colon = lines[k].indexOf(':');
                if (colon > 0) {
                    headers.put(lines[k].substring(0, colon).strip().toLowerCase(Locale.ROOT),
                            lines[k].substring(colon + 1).strip());
                }
            }
            Request r = new Request(id, requestLine[0], requestLine.length > 1 ? requestLine[1] : "", headers,
                    System.nanoTime());
            requests.add(r);
            if (headers.containsKey("transfer-encoding")) {
                passthrough = true; // chunked: no Content-Length to follow the body by
            } else if (headers.containsKey("content-length")) {
                bodyLeft = Long.parseLong(headers.get("content-length"));
            }
            Fault f = rule.apply(r);
            if (f.kind() == Fault.Kind.ANSWER) {
                if (bodyLeft > 0 || passthrough) {
                    throw new IOException("the fault proxy answers only requests without a body, got " + r);
                }
                answer(r, f);
                return;
            }
            armed = f.kind() == Fault.Kind.PASS ? null : new Armed(f);
            out.write(h);
        }

        /** An error of our own, as the store words it; the connection stays open (keep-alive). */
        private void answer(Request r, Fault f) throws IOException {
            int seq = answered.incrementAndGet();
            byte[] b = dialect.body(f, seq).getBytes(StandardCharsets.UTF_8);
            String headers = dialect.headers(f, seq, b.length);
            synchronized (clientWrite) {
                OutputStream o = client.getOutputStream();
                o.write(headers.getBytes(StandardCharsets.ISO_8859_1));
                if (!r.method().equals("HEAD")) {
                    o.write(b);
                }
                o.flush();
            }
        }

        private void pumpDown() {
            byte[] buf = new byte[64 * 1024];
            Armed current = null;
            int headerMatched = 0;
            boolean inBody = false;
            long body = 0;
            try (InputStream in = server.getInputStream(); OutputStream out = client.getOutputStream()) {
                int n;
                while ((n = in.read(buf)) >= 0) {
                    if (downLimit >= 0 && down + n > downLimit) {
                        write(out, buf, (int) (downLimit - down));
                        down = downLimit;
                        if (stall) {
                            stallHere();
                        } else {
                            reset();
                        }
                        return;
                    }
                    down += n;
                    Armed a = armed;
                    if (a != current) { // the answer to a new request starts here
                        current = a;
                        headerMatched = 0;
                        inBody = false;
                        body = 0;
                    }
                    if (current != null) {
                        int i = 0;
                        while (!inBody && i < n) {
                            byte b = buf[i++];
                            headerMatched = b == HEADER_END[headerMatched] ? headerMatched + 1 : (b == '\r' ? 1 : 0);
                            inBody = headerMatched == HEADER_END.length;
                        }
                        if (inBody) {
                            long allowed = current.fault().afterBodyBytes() - body;
                            if (n - i > allowed) {
                                write(out, buf, (int) (i + allowed));
                                act(current.fault());
                                return;
                            }
                            body += n - i;
                        }
                    }
                    write(out, buf, n);
                }
            } catch (IOException e) {
                // either side went away
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } finally {
                end();
            }
        }

        /**
         * Counted before the write: a client that has read these bytes may ask for the total at once, and must never
         * see less than it got. A write that fails takes its bytes back out.
         */
        private void write(OutputStream out, byte[] buf, int n) throws IOException {
            totalDown.addAndGet(n);
            try {
                synchronized (clientWrite) {
                    out.write(buf, 0, n);
                    out.flush();
                }
            } catch (IOException | RuntimeException e) {
                totalDown.addAndGet(-n);
                throw e;
            }
        }

        private void act(Fault f) throws IOException, InterruptedException {
            switch (f.kind()) {
                case STALL -> stallHere();
                case RESET -> reset();
                case DROP -> {
                    client.shutdownOutput(); // FIN after every byte forwarded
                    end();
                }
                default -> throw new IllegalStateException("not a body fault: " + f);
            }
        }

        /** Forwards nothing more until the client gives up or the proxy closes. */
        private void stallHere() throws InterruptedException {
            stalls.incrementAndGet();
            stalledNow.incrementAndGet();
            try {
                ended.await();
            } finally {
                stalledNow.decrementAndGet();
            }
        }

        /** RST to the client: SO_LINGER 0, then close. */
        private void reset() {
            resets.incrementAndGet();
            try {
                client.setSoLinger(true, 0);
            } catch (IOException ignored) {
                // closing anyway
            }
            end();
        }

        private void end() {
            closeQuietly(client);
            closeQuietly(server);
            ended.countDown();
            conns.remove(this);
        }
    }

    private static void closeQuietly(Socket s) {
        try {
            s.close();
        } catch (IOException ignored) {
            // nothing to do
        }
    }

    @Override
    public void close() throws IOException {
        if (closed.compareAndSet(false, true)) {
            released.countDown();
            listener.close();
            for (Conn c : conns) {
                c.end();
            }
        }
    }
}
