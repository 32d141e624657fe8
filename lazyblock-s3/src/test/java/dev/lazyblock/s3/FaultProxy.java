package dev.lazyblock.s3;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A TCP proxy on loopback between the S3 client and S3Proxy that forwards bytes faithfully until
 * told to break: reset a connection (RST) after so many bytes of the server's answer, stall one
 * (stop forwarding, keep it open), or reset uploads once a byte budget has gone through. It
 * knows nothing of HTTP; the breakage is at the TCP level, as a real network's is.
 */
final class FaultProxy implements AutoCloseable {
    private final ServerSocket listener;
    private final InetSocketAddress target;
    private final Set<Conn> conns = ConcurrentHashMap.newKeySet();
    private final AtomicLong accepted = new AtomicLong();
    private final AtomicLong totalUp = new AtomicLong();
    private final AtomicInteger resets = new AtomicInteger();
    private final AtomicInteger stalls = new AtomicInteger();
    private final AtomicBoolean closed = new AtomicBoolean();

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

    FaultProxy(URI target) throws IOException {
        this.target = new InetSocketAddress(target.getHost(), target.getPort());
        this.listener = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        Thread t = new Thread(this::acceptLoop, "fault-proxy-accept");
        t.setDaemon(true);
        t.start();
    }

    URI uri() {
        return URI.create("http://127.0.0.1:" + listener.getLocalPort());
    }

    /** The next {@code connections} connections are reset after {@code bytes} bytes of answer. */
    void resetAnswersAfter(long bytes, int connections) {
        stallInsteadOfReset = false;
        downLimit = bytes;
        faultyConnections.set(connections);
    }

    /** The next {@code connections} connections stop forwarding after {@code bytes} bytes of answer. */
    void stallAnswersAfter(long bytes, int connections) {
        stallInsteadOfReset = true;
        downLimit = bytes;
        faultyConnections.set(connections);
    }

    /**
     * After {@code budget} bytes have gone upstream (all connections together), any connection
     * that carries more than {@code perConnection} further bytes is reset: uploads of large parts
     * fail from then on, small requests still pass.
     */
    void failUploadsAfter(long budget, long perConnection) {
        uploadPerConnection = perConnection;
        uploadBudget = budget;
    }

    /** Stops forwarding uploads once {@code budget} bytes have gone upstream, until {@link #release()}. */
    void holdUploadsAfter(long budget) {
        holdAfter = budget;
    }

    /** Whether an upload is being held. */
    boolean holding() {
        return holding.get();
    }

    void release() {
        holdAfter = -1;
        released.countDown();
    }

    long acceptedConnections() {
        return accepted.get();
    }

    int resets() {
        return resets.get();
    }

    int stalls() {
        return stalls.get();
    }

    private void acceptLoop() {
        while (!closed.get()) {
            Socket client;
            try {
                client = listener.accept();
            } catch (IOException e) {
                return; // closed
            }
            accepted.incrementAndGet();
            long limit = -1;
            boolean stall = stallInsteadOfReset;
            if (downLimit >= 0 && faultyConnections.getAndUpdate(n -> Math.max(0, n - 1)) > 0) {
                limit = downLimit;
            }
            try {
                Socket server = new Socket();
                server.connect(target, 5_000);
                Conn c = new Conn(client, server, limit, stall);
                conns.add(c);
                c.start();
            } catch (IOException e) {
                closeQuietly(client);
            }
        }
    }

    private final class Conn {
        final Socket client;
        final Socket server;
        final long downLimit;
        final boolean stall;
        final CountDownLatch ended = new CountDownLatch(1);
        long up;
        long upBase = -1;
        long down;

        Conn(Socket client, Socket server, long downLimit, boolean stall) {
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
                    out.write(buf, 0, n);
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

        private void pumpDown() {
            byte[] buf = new byte[64 * 1024];
            try (InputStream in = server.getInputStream(); OutputStream out = client.getOutputStream()) {
                int n;
                while ((n = in.read(buf)) >= 0) {
                    if (downLimit >= 0 && down + n > downLimit) {
                        out.write(buf, 0, (int) (downLimit - down));
                        out.flush();
                        down = downLimit;
                        if (stall) {
                            stalls.incrementAndGet();
                            ended.await(); // until the client gives up, or the proxy closes
                        } else {
                            reset();
                        }
                        return;
                    }
                    down += n;
                    out.write(buf, 0, n);
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
