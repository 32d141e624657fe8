package dev.lazyblock.daemon;

import static dev.lazyblock.daemon.DaemonFixture.ok;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.testing.Await;
import dev.lazyblock.testing.Tools;
import dev.lazyblock.testing.UpstreamReads;
import dev.lazyblock.upstream.DirectoryStore;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Closed builds' caches stay on disk for the next sandbox, within a budget, least recently used out first. */
class DiskBudgetTest {
    static final int SIZE = 8 << 20;

    @TempDir
    Path tmp;

    private static long cacheFiles(Path dir) throws Exception {
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> p.toString().endsWith(".cache")).count();
        }
    }

    private void copyAll(DaemonFixture f, JsonNode sb, byte[] expected) throws Exception {
        Path out = tmp.resolve(sb.get("id").asText() + ".out");
        Tools.run("nbdcopy", sb.get("nbdUri").asText(), out.toString()).ok();
        assertArrayEquals(expected, Files.readAllBytes(out));
    }

    @Test
    void aClosedBuildsCacheIsRemovedWhenTheDiskBudgetIsCrossedAndAnOpenOneNever() throws Exception {
        try (DaemonFixture f = new DaemonFixture(tmp, SIZE, c -> c.withMaxBuilds(1).withDiskBudget(12 << 20, 0))) {
            Path other = UpstreamReads.writeRandomFile(tmp, "other.raw", 77, SIZE);
            String otherHeader = publish(f, other);
            Path builds = f.root.resolve("state/builds");
            String a = Path.of(f.storeDir(), f.headerKey).toString();

            copyAll(f, f.create("a", a), f.template);
            ok(204, f.client.delete("/v1/sandboxes/a"));
            // The second template's build closes the first (maxBuilds 1); its cache stays until the
            // two pass 12 MiB (at the next enforcement: the timer's, or the delete's below).
            copyAll(f, f.create("b", otherHeader), Files.readAllBytes(other));
            ok(204, f.client.delete("/v1/sandboxes/b"));
            // 16 MiB > 12: the closed build's cache goes, the open (idle) one stays.
            assertEquals(1, cacheFiles(builds));
            JsonNode host = ok(200, f.client.get("/v1/host"));
            assertEquals(1, host.get("evictedCaches").asLong(), host.toString());
            assertEquals(12 << 20, host.get("diskBudgetBytes").asLong());

            // The evicted template still serves: fetched again.
            copyAll(f, f.create("a2", a), f.template);
        }
    }

    @Test
    void theBudgetIsEnforcedWhileAnOpenBuildsCacheGrowsNotOnlyAtCreateAndDelete() throws Exception {
        try (DaemonFixture f = new DaemonFixture(tmp, SIZE, c -> c.withMaxBuilds(1).withDiskBudget(12 << 20, 0))) {
            Path other = UpstreamReads.writeRandomFile(tmp, "other.raw", 78, SIZE);
            String otherHeader = publish(f, other);
            Path builds = f.root.resolve("state/builds");
            copyAll(f, f.create("a", Path.of(f.storeDir(), f.headerKey).toString()), f.template);
            ok(204, f.client.delete("/v1/sandboxes/a"));
            // b's create closes a's build (maxBuilds 1) while b's cache is still empty: under budget.
            JsonNode b = f.create("b", otherHeader);
            assertEquals(2, cacheFiles(builds));
            // Reading b fills its cache past the budget; b stays open: no create or delete follows.
            copyAll(f, b, Files.readAllBytes(other));
            Await.until(() -> {
                try {
                    return cacheFiles(builds) == 1;
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            }, Duration.ofSeconds(30),
                    () -> "the closed build's cache was removed while b ran");
            assertEquals(1, ok(200, f.client.get("/v1/host")).get("evictedCaches").asLong());
            copyAll(f, b, Files.readAllBytes(other)); // the open one stays and serves
        }
    }

    /** Publishes {@code raw} as a second template beside the fixture's; the path of its header. */
    private static String publish(DaemonFixture f, Path raw) throws Exception {
        try (DirectoryStore ds = new DirectoryStore(Path.of(f.storeDir()))) {
            return Path.of(f.storeDir(), LayerExporter.publishBase(raw, 4096, ds, "tpl2").headerKey()).toString();
        }
    }
}
