package dev.lazyblock.metrics.micrometer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import dev.lazyblock.testing.Await;
import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.upstream.FileUpstream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MetricsServerTest {
    @TempDir
    Path dir;

    private static double value(String scrape, String series) {
        Matcher m = Pattern.compile("(?m)^" + Pattern.quote(series) + " ([0-9.eE+-]+)$").matcher(scrape);
        assertTrue(m.find(), "no series " + series + " in:\n" + scrape);
        return Double.parseDouble(m.group(1));
    }

    @Test
    void readsAndFetchesShowUpOnTheMetricsEndpoint() throws Exception {
        byte[] image = new byte[8 << 20];
        new Random(3).nextBytes(image);
        Path file = Files.write(dir.resolve("image.raw"), image);
        try (MetricsServer server = new MetricsServer(new InetSocketAddress("127.0.0.1", 0));
             FileUpstream up = new FileUpstream(file);
             Chunker chunker = ChunkerKind.FULL_FETCH.create(up, SparseCache.create(dir.resolve("c"), image.length),
                     ChunkerOptions.DEFAULTS.withMetrics(new MicrometerMetrics(server.registry())))) {
            CacheGauges.register(server.registry(), "image", chunker.cache());
            byte[] buf = new byte[4096];
            chunker.readAt(buf, 0, buf.length, 0);          // a miss: one 4 MiB fetch
            // The chunk is marked just after its readers go.
            Await.until(() -> chunker.cache().isCached(0, 4 << 20), Duration.ofSeconds(30), () -> "chunk marked present");
            for (int i = 1; i <= 5; i++) {
                chunker.readAt(buf, 0, buf.length, i * 4096L); // hits
            }
            assertTrue(server.address().getAddress().isLoopbackAddress());
            HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                    URI.create("http://127.0.0.1:" + server.address().getPort() + "/metrics")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, r.statusCode());
            String body = r.body();
            assertEquals(5, value(body, "lazyblock_cache_reads_total{result=\"hit\"}"));
            assertEquals(1, value(body, "lazyblock_cache_reads_total{result=\"miss\"}"));
            String upstream = "upstream=\"" + file + "\"";
            assertEquals(1, value(body, "lazyblock_remote_requests_total{" + upstream + "}"));
            assertEquals(4 << 20, value(body, "lazyblock_remote_bytes_total{" + upstream + "}"));
            assertEquals(1, value(body, "lazyblock_fetch_latency_seconds_count{" + upstream + "}"));
            assertEquals(1024, value(body, "lazyblock_cache_present_granules{cache=\"image\"}"));
            assertTrue(value(body, "lazyblock_cache_file_allocated_bytes{cache=\"image\"}") >= 4 << 20);
            assertTrue(body.contains("lazyblock_fetch_latency_seconds_bucket{" + upstream + ",le="), "a latency histogram");
        }
    }
}
