package dev.lazyblock.daemon;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.URI;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.LinkedHashMap;
import java.util.Map;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.io.Content;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.HttpConfiguration;
import org.eclipse.jetty.server.HttpConnectionFactory;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.unixdomain.server.UnixDomainServerConnector;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.thread.QueuedThreadPool;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The daemon's HTTP/JSON face ({@code openapi.yaml} in this module): on a Unix socket only the
 * daemon's user may open (mode 0600), and optionally on a TCP address (loopback unless told
 * otherwise). Requests run on a small fixed pool, so a flood of API calls queues instead of
 * growing threads; bodies over {@link #MAX_BODY} are refused before they are read.
 */
public final class ControlServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ControlServer.class);
    static final int MAX_BODY = 64 * 1024;
    private static final int MAX_THREADS = 12;

    private final Daemon daemon;
    private final PrometheusMeterRegistry prometheus;
    private final ObjectMapper json = JsonMapper.builder()
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
            .disable(StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION)
            .build();
    private final Server server;
    private final Path socket;
    private final ServerConnector tcp;

    private ControlServer(Daemon daemon, PrometheusMeterRegistry prometheus, Path socket, InetSocketAddress tcpAddress)
            throws IOException {
        this.daemon = daemon;
        this.prometheus = prometheus;
        this.socket = socket.toAbsolutePath();
        QueuedThreadPool pool = new QueuedThreadPool(MAX_THREADS, 2);
        pool.setName("lazyblockd-api");
        pool.setDaemon(true);
        this.server = new Server(pool);
        HttpConfiguration http = new HttpConfiguration();
        http.setSendServerVersion(false);
        http.setSendDateHeader(false);
        replaceStaleSocket(this.socket);
        UnixDomainServerConnector unix = new UnixDomainServerConnector(server, 1, 1, new HttpConnectionFactory(http));
        unix.setUnixDomainPath(this.socket);
        server.addConnector(unix);
        if (tcpAddress != null) {
            tcp = new ServerConnector(server, 1, 1, new HttpConnectionFactory(http));
            tcp.setHost(tcpAddress.getHostString());
            tcp.setPort(tcpAddress.getPort());
            server.addConnector(tcp);
        } else {
            tcp = null;
        }
        server.setHandler(new Api());
        try {
            server.start();
            Files.setPosixFilePermissions(this.socket, PosixFilePermissions.fromString("rw-------"));
        } catch (Exception e) {
            close();
            throw e instanceof IOException io ? io : new IOException("starting the control API on " + this.socket
                    + " failed: " + e, e);
        }
        log.info("control API on unix:{}{}", this.socket, tcp == null ? "" : " and http://" + tcpAddress.getHostString()
                + ":" + tcp.getLocalPort());
    }

    /**
     * Serves {@code daemon}'s API on {@code socket} and, when {@code tcp} is not null, on that
     * address; {@code prometheus}, when not null, is scraped at {@code GET /metrics}.
     */
    public static ControlServer start(Daemon daemon, PrometheusMeterRegistry prometheus, Path socket,
                                      InetSocketAddress tcp) throws IOException {
        return new ControlServer(daemon, prometheus, socket, tcp);
    }

    public Path socket() {
        return socket;
    }

    /** The TCP base URI, or null when the API is on the Unix socket only. */
    public URI tcpUri() {
        return tcp == null ? null : URI.create("http://" + tcp.getHost() + ":" + tcp.getLocalPort());
    }

    /** Stops accepting and closes open API connections; the daemon itself is the caller's to close. */
    @Override
    public void close() {
        try {
            server.stop();
        } catch (Exception e) {
            log.warn("stopping the control API: {}", e.toString());
        }
        try {
            Files.deleteIfExists(socket);
        } catch (IOException e) {
            log.warn("removing {}: {}", socket, e.toString());
        }
    }

    /**
     * A socket file left by a daemon that died is removed; one a live daemon still accepts on is
     * refused (two daemons on one state would fight over it), and so is any file that is not a socket.
     */
    private static void replaceStaleSocket(Path p) throws IOException {
        if (!Files.exists(p, LinkOption.NOFOLLOW_LINKS)) {
            Files.createDirectories(p.toAbsolutePath().getParent());
            return;
        }
        Object type = Files.getAttribute(p, "unix:mode", LinkOption.NOFOLLOW_LINKS);
        if (!(type instanceof Integer mode) || (mode & 0170000) != 0140000) {
            throw new IOException("control socket path " + p + " exists and is not a socket: refusing to replace it");
        }
        try (SocketChannel c = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            c.connect(UnixDomainSocketAddress.of(p));
            throw new IOException("another daemon is listening on " + p + ": stop it or choose another --socket");
        } catch (IOException e) {
            if (e.getMessage() != null && e.getMessage().startsWith("another daemon")) {
                throw e;
            }
            log.info("removing stale control socket {}", p);
            Files.delete(p);
        }
    }

    private final class Api extends Handler.Abstract {
        @Override
        public boolean handle(Request request, Response response, Callback callback) {
            int status;
            Object body;
            try {
                String method = request.getMethod();
                String path = request.getHttpURI().getPath();
                Route route = route(method, path == null ? "/" : path);
                if (route.metrics) {
                    if (prometheus == null) {
                        throw DaemonException.notFound("no metrics registry on this daemon");
                    }
                    byte[] text = prometheus.scrape().getBytes(StandardCharsets.UTF_8);
                    response.setStatus(200);
                    response.getHeaders().put(HttpHeader.CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
                    response.write(true, ByteBuffer.wrap(text), callback);
                    return true;
                }
                byte[] in = body(request);
                Object out = route.call(in);
                status = route.status;
                body = out;
            } catch (DaemonException e) {
                if (e.status() >= 500) {
                    log.warn("{} {}: {}", request.getMethod(), Daemon.printable(String.valueOf(request.getHttpURI().getPath())),
                            e.getMessage(), e.getCause());
                }
                status = e.status();
                body = error(e.code(), e.getMessage());
            } catch (JacksonException e) {
                status = 400;
                body = error("malformed_json", "the body is not the JSON this call takes: " + e.getOriginalMessage());
            } catch (RuntimeException e) {
                log.error("{} {} failed", request.getMethod(), request.getHttpURI().getPath(), e);
                status = 500;
                body = error("internal", e.toString());
            }
            byte[] bytes;
            try {
                bytes = body == null ? new byte[0] : json.writerWithDefaultPrettyPrinter().writeValueAsBytes(body);
            } catch (IOException e) {
                status = 500;
                bytes = ("{\"error\":{\"code\":\"internal\",\"message\":\"could not write the reply\"}}")
                        .getBytes(StandardCharsets.UTF_8);
            }
            response.setStatus(status);
            if (bytes.length > 0) {
                response.getHeaders().put(HttpHeader.CONTENT_TYPE, "application/json");
            }
            response.write(true, ByteBuffer.wrap(bytes), callback);
            return true;
        }
    }

    private static Map<String, Object> error(String code, String message) {
        Map<String, Object> e = new LinkedHashMap<>();
        e.put("code", code);
        e.put("message", message);
        return Map.of("error", e);
    }

    private static byte[] body(Request request) {
        long declared = request.getLength();
        if (declared > MAX_BODY) {
            throw new DaemonException(413, "body_too_large", "request bodies are at most " + MAX_BODY
                    + " bytes, this one declares " + declared);
        }
        try (InputStream in = Content.Source.asInputStream(request)) {
            byte[] b = in.readNBytes(MAX_BODY + 1);
            if (b.length > MAX_BODY) {
                throw new DaemonException(413, "body_too_large", "request bodies are at most " + MAX_BODY + " bytes");
            }
            return b;
        } catch (IOException e) {
            throw new DaemonException(400, "bad_body", "reading the request body failed: " + e.getMessage(), e);
        }
    }

    /** One matched call: what runs, and the status it answers with when it succeeds. */
    private record Route(int status, boolean metrics, Call call) {
        Object call(byte[] body) throws JacksonException {
            return call.run(body);
        }
    }

    @FunctionalInterface
    private interface Call {
        Object run(byte[] body) throws JacksonException;
    }

    private Route route(String method, String path) {
        String[] p = path.replaceAll("/+$", "").split("/");
        // p[0] is "" (the path starts with '/').
        if (p.length == 2 && p[1].equals("metrics")) {
            requireMethod(method, "GET", path);
            return new Route(200, true, null);
        }
        if (p.length < 3 || !p[1].equals("v1")) {
            throw new DaemonException(404, "no_route", "no call at " + Daemon.printable(path)
                    + ": the API is under /v1 (see openapi.yaml)");
        }
        String what = p[2];
        switch (p.length) {
            case 3 -> {
                switch (what) {
                    case "host" -> {
                        requireMethod(method, "GET", path);
                        return new Route(200, false, b -> daemon.host());
                    }
                    case "builds" -> {
                        requireMethod(method, "GET", path);
                        return new Route(200, false, b -> Map.of("builds", daemon.builds()));
                    }
                    case "sandboxes" -> {
                        if (method.equals("GET")) {
                            return new Route(200, false, b -> Map.of("sandboxes", daemon.list()));
                        }
                        requireMethod(method, "POST", path);
                        return new Route(201, false, b -> daemon.create(parse(b, Daemon.CreateRequest.class)));
                    }
                    default -> {
                    }
                }
            }
            case 4 -> {
                if (what.equals("sandboxes")) {
                    String id = p[3];
                    if (method.equals("GET")) {
                        return new Route(200, false, b -> daemon.get(id));
                    }
                    requireMethod(method, "DELETE", path);
                    return new Route(204, false, b -> {
                        daemon.delete(id);
                        return null;
                    });
                }
            }
            case 5 -> {
                if (what.equals("sandboxes")) {
                    String id = p[3];
                    switch (p[4]) {
                        case "pause" -> {
                            requireMethod(method, "POST", path);
                            return new Route(200, false, b -> daemon.pause(id));
                        }
                        case "resume" -> {
                            requireMethod(method, "POST", path);
                            return new Route(200, false, b -> daemon.resume(id));
                        }
                        case "export" -> {
                            requireMethod(method, "POST", path);
                            return new Route(200, false, b -> daemon.export(id));
                        }
                        default -> {
                        }
                    }
                }
            }
            default -> {
            }
        }
        throw new DaemonException(404, "no_route", "no call at " + Daemon.printable(path) + " (see openapi.yaml)");
    }

    private static void requireMethod(String method, String expected, String path) {
        if (!method.equals(expected)) {
            throw new DaemonException(405, "method_not_allowed", Daemon.printable(path) + " takes " + expected
                    + ", not " + Daemon.printable(method));
        }
    }

    private <T> T parse(byte[] body, Class<T> type) throws JacksonException {
        if (body.length == 0) {
            throw DaemonException.badRequest("this call takes a JSON body (" + type.getSimpleName() + ")");
        }
        try {
            T t = json.readValue(body, type);
            if (t == null) {
                throw DaemonException.badRequest("this call takes a JSON object, found null");
            }
            return t;
        } catch (JacksonException e) {
            throw e;
        } catch (IOException e) {
            throw new DaemonException(400, "bad_body", e.getMessage(), e);
        }
    }
}
