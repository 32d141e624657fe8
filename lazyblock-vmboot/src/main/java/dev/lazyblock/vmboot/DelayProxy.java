package dev.lazyblock.vmboot;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A TCP proxy in front of the store that puts the design brief's latency model on the wire: each
 * HTTP request's response starts {@code ttfb} after the request did and then flows at
 * {@code bytesPerSecond}, per request (as GCS serves each ranged GET), and counts the requests and
 * response bytes that pass, which are what a run fetched from the store.
 *
 * <p>It sees bytes, not HTTP: client bytes that arrive after the server has answered start a new
 * request. That holds for the clients here (one request at a time per connection, no pipelining;
 * nothing is uploaded through the proxy).
 */
public final class DelayProxy implements AutoCloseable {
    /** A time to first byte and a bandwidth per request; zero bandwidth means unlimited. */
    public record Model(String name, long ttfbNanos, long bytesPerSecond) {
        public static final Model NONE = new Model("none", 0, 0);
        /** The brief's GCS model: 20 ms to first byte, then 100 MB/s. */
        public static final Model GCS = new Model("GCS", 20_000_000, 100_000_000);
    }

    private static final Pattern RANGE = Pattern.compile("(?i)\r\nrange:\\s*bytes=(\\d+)-(\\d+)");

    private final InetSocketAddress target;
    private final ServerSocket listener;
    private final Set<Socket> sockets = ConcurrentHashMap.newKeySet();
    /** Read by every pump for each request; written by {@link #model(Model)} between runs. */
    private volatile Model model = Model.NONE;
    private final AtomicLong requests = new AtomicLong();
    private final AtomicLong responseBytes = new AtomicLong();
    private final AtomicLong rangeBytes = new AtomicLong();

    /**
     * Whether answers get an {@code Accept-Ranges: bytes} header when they lack one. S3 and GCS
     * send it; S3Proxy 4.1 does not, and nbdkit's curl plugin refuses a server without it.
     */
    private final boolean acceptRanges;

    public DelayProxy(URI target) throws IOException {
        this(target, false);
    }

    public DelayProxy(URI target, boolean acceptRanges) throws IOException {
        this.acceptRanges = acceptRanges;
        this.target = new InetSocketAddress(target.getHost(), target.getPort());
        this.listener = new ServerSocket(0, 64, InetAddress.getLoopbackAddress());
        Thread.ofPlatform().daemon().name("delay-proxy-accept").start(this::accept);
    }

    public URI uri() {
        return URI.create("http://127.0.0.1:" + listener.getLocalPort());
    }

    public void model(Model m) {
        this.model = m;
    }

    public Model model() {
        return model;
    }

    /** Requests, response bytes and requested range bytes since the last reset. */
    public record Counts(long requests, long responseBytes, long rangeBytes) {}

    public Counts counts() {
        return new Counts(requests.get(), responseBytes.get(), rangeBytes.get());
    }

    public void reset() {
        requests.set(0);
        responseBytes.set(0);
        rangeBytes.set(0);
    }

    private void accept() {
        while (!listener.isClosed()) {
            try {
                Socket client = listener.accept();
                Socket server = new Socket();
                server.connect(target, 10_000);
                client.setTcpNoDelay(true);
                server.setTcpNoDelay(true);
                sockets.add(client);
                sockets.add(server);
                Pair pair = new Pair(client, server);
                Thread.ofPlatform().daemon().name("delay-proxy-up").start(pair::up);
                Thread.ofPlatform().daemon().name("delay-proxy-down").start(pair::down);
            } catch (IOException e) {
                if (listener.isClosed()) {
                    return;
                }
            }
        }
    }

    /** One client connection and its server connection. */
    private final class Pair {
        private final Socket client;
        private final Socket server;
        /**
         * When the request now in flight started (nanoTime), and whether the server has answered
         * it yet. Written by the up pump when a request starts, by the down pump when the answer
         * starts; both volatile, so each pump sees the other's last write before its next read.
         */
        private volatile long requestAt;
        private volatile boolean answered = true;

        Pair(Socket client, Socket server) {
            this.client = client;
            this.server = server;
        }

        void up() {
            byte[] buf = new byte[64 << 10];
            try (InputStream in = client.getInputStream(); OutputStream out = server.getOutputStream()) {
                int n;
                while ((n = in.read(buf)) > 0) {
                    if (answered) {
                        requestAt = System.nanoTime();
                        answered = false;
                        requests.incrementAndGet();
                        Matcher m = RANGE.matcher(new String(buf, 0, Math.min(n, 8192), StandardCharsets.ISO_8859_1));
                        if (m.find()) {
                            rangeBytes.addAndGet(Long.parseLong(m.group(2)) - Long.parseLong(m.group(1)) + 1);
                        }
                    }
                    out.write(buf, 0, n);
                    out.flush();
                }
            } catch (IOException e) {
                // a side closed: close both below
            } finally {
                closeBoth();
            }
        }

        void down() {
            byte[] buf = new byte[64 << 10];
            long firstByteAt = 0;
            long sent = 0;
            try (InputStream in = server.getInputStream(); OutputStream out = client.getOutputStream()) {
                int n;
                while ((n = in.read(buf)) > 0) {
                    Model m = model;
                    if (!answered) {
                        answered = true;
                        firstByteAt = Math.max(System.nanoTime(), requestAt + m.ttfbNanos());
                        sent = 0;
                        sleepUntil(firstByteAt);
                        if (acceptRanges) {
                            byte[] fixed = withAcceptRanges(buf, n);
                            if (fixed != null) {
                                responseBytes.addAndGet(fixed.length);
                                out.write(fixed);
                                out.flush();
                                sent += fixed.length;
                                continue;
                            }
                        }
                    }
                    if (m.bytesPerSecond() > 0) {
                        // A piece leaves when its last byte is due: a response of L bytes ends at TTFB + L/bandwidth.
                        sleepUntil(firstByteAt + (sent + n) * 1_000_000_000L / m.bytesPerSecond());
                    }
                    // Counted before the write: whoever has read these bytes must never see a smaller total.
                    responseBytes.addAndGet(n);
                    out.write(buf, 0, n);
                    out.flush();
                    sent += n;
                }
            } catch (IOException e) {
                // a side closed
            } finally {
                closeBoth();
            }
        }

        private void closeBoth() {
            for (Socket s : new Socket[] {client, server}) {
                try {
                    s.close();
                } catch (IOException ignored) {
                    // closing
                }
                sockets.remove(s);
            }
        }
    }

    /** The response head in {@code buf} with Accept-Ranges added, and the body bytes after it; null if none needed. */
    private static byte[] withAcceptRanges(byte[] buf, int n) {
        String s = new String(buf, 0, n, StandardCharsets.ISO_8859_1);
        int end = s.indexOf("\r\n\r\n");
        if (!s.startsWith("HTTP/1.1 2") || end < 0 || s.substring(0, end).toLowerCase(java.util.Locale.ROOT)
                .contains("\r\naccept-ranges:")) {
            return null;
        }
        return (s.substring(0, end) + "\r\nAccept-Ranges: bytes" + s.substring(end)).getBytes(StandardCharsets.ISO_8859_1);
    }

    private static void sleepUntil(long deadline) {
        for (long left; (left = deadline - System.nanoTime()) > 0; ) {
            LockSupport.parkNanos(left);
        }
    }

    @Override
    public void close() throws IOException {
        listener.close();
        for (Socket s : sockets) {
            try {
                s.close();
            } catch (IOException ignored) {
                // closing
            }
        }
    }
}
