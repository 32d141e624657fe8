package dev.lazyblock.metrics.micrometer;

import com.sun.net.httpserver.HttpServer;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Executors;

/**
 * {@code GET /metrics} in Prometheus text format, on the JDK's HTTP server. Binds where it is
 * told: the CLI defaults to loopback.
 */
public final class MetricsServer implements AutoCloseable {
    private final PrometheusMeterRegistry registry;
    private final HttpServer server;

    public MetricsServer(InetSocketAddress address) throws IOException {
        this(new PrometheusMeterRegistry(PrometheusConfig.DEFAULT), address);
    }

    public MetricsServer(PrometheusMeterRegistry registry, InetSocketAddress address) throws IOException {
        this.registry = registry;
        this.server = HttpServer.create(address, 16);
        server.createContext("/metrics", exchange -> {
            try (exchange) {
                if (!exchange.getRequestMethod().equals("GET")) {
                    exchange.sendResponseHeaders(405, -1);
                    return;
                }
                byte[] body = registry.scrape().getBytes(StandardCharsets.UTF_8);
                exchange.getResponseHeaders().set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
                exchange.sendResponseHeaders(200, body.length);
                try (OutputStream out = exchange.getResponseBody()) {
                    out.write(body);
                }
            }
        });
        server.setExecutor(Executors.newSingleThreadExecutor(Thread.ofPlatform().daemon().name("lazyblock-metrics").factory()));
        server.start();
    }

    public PrometheusMeterRegistry registry() {
        return registry;
    }

    /** The address it listens on (the port resolved if 0 was asked). */
    public InetSocketAddress address() {
        return server.getAddress();
    }

    @Override
    public void close() {
        server.stop(0);
    }
}
