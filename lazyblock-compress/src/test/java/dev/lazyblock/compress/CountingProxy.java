package dev.lazyblock.compress;

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

/**
 * A TCP proxy on loopback in front of S3Proxy that counts, on the server's side of the client,
 * the GET requests and the bytes answered: what a host cost the bucket. It sees bytes, not HTTP:
 * client bytes arriving after the server has answered start a new request, which holds for the
 * AWS SDK (no pipelining). Uploads do not go through it.
 */
final class CountingProxy implements AutoCloseable {
    private final InetSocketAddress target;
    private final ServerSocket listener;
    private final Set<Socket> sockets = ConcurrentHashMap.newKeySet();
    private final AtomicLong gets = new AtomicLong();
    private final AtomicLong responseBytes = new AtomicLong();

    CountingProxy(URI target) throws IOException {
        this.target = new InetSocketAddress(target.getHost(), target.getPort());
        this.listener = new ServerSocket(0, 64, InetAddress.getLoopbackAddress());
        Thread.ofPlatform().daemon().name("counting-proxy-accept").start(this::accept);
    }

    URI uri() {
        return URI.create("http://127.0.0.1:" + listener.getLocalPort());
    }

    long gets() {
        return gets.get();
    }

    long responseBytes() {
        return responseBytes.get();
    }

    private void accept() {
        while (!listener.isClosed()) {
            try {
                Socket client = listener.accept();
                Socket server = new Socket();
                server.connect(target, 10_000);
                sockets.add(client);
                sockets.add(server);
                Pair p = new Pair(client, server);
                Thread.ofPlatform().daemon().name("counting-proxy-up").start(p::up);
                Thread.ofPlatform().daemon().name("counting-proxy-down").start(p::down);
            } catch (IOException e) {
                if (listener.isClosed()) {
                    return;
                }
            }
        }
    }

    private final class Pair {
        private final Socket client;
        private final Socket server;
        /** Whether the request in flight has been answered: written by both pumps, hence volatile. */
        private volatile boolean answered = true;

        Pair(Socket client, Socket server) {
            this.client = client;
            this.server = server;
        }

        void up() {
            byte[] buf = new byte[64 << 10];
            try (InputStream in = client.getInputStream(); OutputStream out = server.getOutputStream()) {
                for (int n; (n = in.read(buf)) > 0; ) {
                    if (answered) {
                        answered = false;
                        if (new String(buf, 0, Math.min(n, 4), StandardCharsets.ISO_8859_1).equals("GET ")) {
                            gets.incrementAndGet();
                        }
                    }
                    out.write(buf, 0, n);
                    out.flush();
                }
            } catch (IOException e) {
                // a side closed
            } finally {
                closeBoth();
            }
        }

        void down() {
            byte[] buf = new byte[64 << 10];
            try (InputStream in = server.getInputStream(); OutputStream out = client.getOutputStream()) {
                for (int n; (n = in.read(buf)) > 0; ) {
                    answered = true;
                    // Counted before the write: a client that has its bytes must never see a smaller total.
                    responseBytes.addAndGet(n);
                    out.write(buf, 0, n);
                    out.flush();
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

    @Override
    public void close() throws IOException {
        listener.close();
        for (Socket s : sockets) {
            s.close();
        }
    }
}
