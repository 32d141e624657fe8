package dev.lazyblock.daemon;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.testing.JettyFileServer;
import dev.lazyblock.testing.UpstreamReads;
import dev.lazyblock.upstream.DirectoryStore;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.function.UnaryOperator;

/**
 * A daemon with its control API on a Unix socket in a temporary state directory, and a template
 * (a random raw image published as a base layer) served over real HTTP, which counts its GETs.
 */
final class DaemonFixture implements AutoCloseable {
    static final ObjectMapper JSON = new ObjectMapper();

    final Path root;
    final byte[] template;
    final Path templateFile;
    final String headerKey;
    final JettyFileServer http;
    final PrometheusMeterRegistry prometheus = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    final Daemon daemon;
    final ControlServer api;
    final DaemonClient client;

    DaemonFixture(Path root, int templateBytes, UnaryOperator<DaemonConfig> config) throws Exception {
        this.root = root;
        Path store = Files.createDirectories(root.resolve("store"));
        templateFile = UpstreamReads.writeRandomFile(root, "template.raw", 42, templateBytes);
        template = Files.readAllBytes(templateFile);
        try (DirectoryStore ds = new DirectoryStore(store)) {
            headerKey = LayerExporter.publishBase(templateFile, 4096, ds, "tpl").headerKey();
        }
        http = new JettyFileServer(store);
        daemon = new Daemon(config.apply(DaemonConfig.defaults(root.resolve("state"))), prometheus);
        api = ControlServer.start(daemon, prometheus, root.resolve("state/api.sock"), null);
        client = new DaemonClient(api.socket(), Duration.ofSeconds(60));
    }

    /** The template's header over HTTP. */
    String templateUrl() {
        return http.uri("/" + headerKey).toString();
    }

    String storeDir() {
        return root.resolve("store").toString();
    }

    JsonNode create(String id, String image) throws IOException {
        return ok(201, client.post("/v1/sandboxes", "{\"id\":\"" + id + "\",\"image\":\"" + image + "\"}"));
    }

    static JsonNode ok(int status, DaemonClient.Reply r) {
        assertEquals(status, r.status(), () -> "expected " + status + ", got " + r.status() + ": " + r.body());
        return parse(r);
    }

    static JsonNode parse(DaemonClient.Reply r) {
        try {
            return r.body().isEmpty() ? JSON.nullNode() : JSON.readTree(r.body());
        } catch (IOException e) {
            throw new UncheckedIOException("reply is not JSON: " + r.body(), e);
        }
    }

    /** Asserts the reply is the error {@code status} with {@code code}. */
    static JsonNode error(int status, String code, DaemonClient.Reply r) {
        JsonNode n = ok(status, r);
        assertEquals(code, n.path("error").path("code").asText(), r.body());
        return n;
    }

    @Override
    public void close() throws Exception {
        api.close();
        daemon.close();
        http.close();
    }
}
