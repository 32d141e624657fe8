package dev.lazyblock.cli;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Executors;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** A real HTTP server (the JDK's) serving a directory's files with HEAD and single-range GETs. */
final class RangeHttpServer implements AutoCloseable {
    private static final Pattern RANGE = Pattern.compile("bytes=(\\d+)-(\\d+)");
    private final HttpServer server;
    private final Path root;
    /** Ranged GETs answered: the requests that fetch bytes (HEADs only ask the size). */
    final java.util.concurrent.atomic.AtomicInteger gets = new java.util.concurrent.atomic.AtomicInteger();

    RangeHttpServer(Path root) throws IOException {
        this.root = root.toAbsolutePath().normalize();
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 64);
        server.setExecutor(Executors.newVirtualThreadPerTaskExecutor());
        server.createContext("/", this::handle);
        server.start();
    }

    String url(String path) {
        return "http://127.0.0.1:" + server.getAddress().getPort() + "/" + path;
    }

    private void handle(HttpExchange x) throws IOException {
        try (x) {
            Path p = root.resolve(x.getRequestURI().getPath().substring(1)).normalize();
            if (!p.startsWith(root) || !Files.isRegularFile(p)) {
                x.sendResponseHeaders(404, -1);
                return;
            }
            long size = Files.size(p);
            if (x.getRequestMethod().equals("HEAD")) {
                x.getResponseHeaders().set("Content-Length", Long.toString(size));
                x.sendResponseHeaders(200, -1);
                return;
            }
            String range = x.getRequestHeaders().getFirst("Range");
            Matcher m = range == null ? null : RANGE.matcher(range);
            if (m == null || !m.matches()) {
                x.sendResponseHeaders(400, -1);
                return;
            }
            long from = Long.parseLong(m.group(1));
            long to = Math.min(Long.parseLong(m.group(2)), size - 1);
            if (from >= size) {
                x.getResponseHeaders().set("Content-Range", "bytes */" + size);
                x.sendResponseHeaders(416, -1);
                return;
            }
            gets.incrementAndGet();
            byte[] body = new byte[(int) (to - from + 1)];
            try (var ch = java.nio.channels.FileChannel.open(p)) {
                java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(body);
                while (b.hasRemaining() && ch.read(b, from + b.position()) > 0) {
                    // keep reading
                }
            }
            x.getResponseHeaders().set("Content-Range", "bytes " + from + "-" + to + "/" + size);
            x.sendResponseHeaders(206, body.length);
            try (OutputStream out = x.getResponseBody()) {
                out.write(body);
            }
        }
    }

    @Override
    public void close() {
        server.stop(0);
    }
}
