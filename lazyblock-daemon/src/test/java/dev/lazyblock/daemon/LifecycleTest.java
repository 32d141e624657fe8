package dev.lazyblock.daemon;

import static dev.lazyblock.daemon.DaemonFixture.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lazyblock.testing.Tools;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Sandboxes coming and going: nothing grows, metrics follow them, races leave a consistent daemon. */
class LifecycleTest {
    @TempDir
    Path tmp;

    private static long openFds() throws Exception {
        try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
            return s.count();
        }
    }

    private static int platformThreads() {
        return ManagementFactory.getThreadMXBean().getThreadCount();
    }

    @Test
    void createDeleteCyclesLeaveFdsThreadsAndBuildsFlat() throws Exception {
        try (DaemonFixture f = new DaemonFixture(tmp, 8 << 20, c -> c)) {
            String image = Path.of(f.storeDir(), f.headerKey).toString();
            for (int i = 0; i < 20; i++) { // warm-up: pools, class loading, the build's first open
                cycle(f, image, i);
            }
            long fds = openFds();
            int threads = platformThreads();
            int cycles = 300;
            for (int i = 0; i < cycles; i++) {
                cycle(f, image, i);
            }
            long fdsAfter = openFds();
            int threadsAfter = platformThreads();
            System.out.printf("%d create/read/delete cycles: fds %d -> %d, platform threads %d -> %d%n", cycles, fds,
                    fdsAfter, threads, threadsAfter);
            assertTrue(fdsAfter <= fds + 4, "fds grew from " + fds + " to " + fdsAfter + " over " + cycles + " cycles");
            assertTrue(threadsAfter <= threads + 2, "platform threads grew from " + threads + " to " + threadsAfter);
            assertEquals(1, f.daemon.builds().size());
            assertEquals(0, f.daemon.builds().getFirst().refs());
        }
    }

    private static void cycle(DaemonFixture f, String image, int i) throws Exception {
        String id = "c" + (i % 7);
        Daemon.SandboxInfo s = f.daemon.create(new Daemon.CreateRequest(id, image, null, null, null));
        assertEquals(8 << 20, s.size());
        f.daemon.delete(id);
    }

    @Test
    void aDeletedSandboxsSeriesLeaveTheMetrics() throws Exception {
        try (DaemonFixture f = new DaemonFixture(tmp, 1 << 20, c -> c)) {
            JsonNode sb = f.create("metered", f.templateUrl());
            Tools.run("nbdcopy", sb.get("nbdUri").asText(), tmp.resolve("m.out").toString()).ok();
            String scrape = f.client.get("/metrics").body();
            assertTrue(scrape.contains("lazyblock_sandbox_read_bytes_total{build=\"" + f.headerKey.substring(4,
                    f.headerKey.length() - ".header".length()) + "\",sandbox=\"metered\"} 1048576"), scrape);
            assertTrue(scrape.contains("lazyblock_daemon_sandboxes 1"), scrape);
            ok(204, f.client.delete("/v1/sandboxes/metered"));
            String after = f.client.get("/metrics").body();
            assertFalse(after.contains("sandbox=\"metered\""), after);
            assertTrue(after.contains("lazyblock_daemon_sandboxes 0"), after);
        }
    }

    @Test
    void concurrentCreatesDeletesAndPausesLeaveAConsistentDaemon() throws Exception {
        try (DaemonFixture f = new DaemonFixture(tmp, 1 << 20, c -> c.withMaxSandboxes(5))) {
            String image = Path.of(f.storeDir(), f.headerKey).toString();
            int threads = 8;
            CountDownLatch start = new CountDownLatch(1);
            Set<String> unexpected = ConcurrentHashMap.newKeySet();
            List<Thread> ts = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                long seed = 1000 + t;
                ts.add(Thread.ofPlatform().start(() -> {
                    Random rnd = new Random(seed);
                    try {
                        start.await();
                        for (int i = 0; i < 60; i++) {
                            String id = "r" + rnd.nextInt(8);
                            try {
                                switch (rnd.nextInt(4)) {
                                    case 0, 1 -> f.daemon.create(new Daemon.CreateRequest(id, image, null,
                                            rnd.nextBoolean(), null));
                                    case 2 -> f.daemon.delete(id);
                                    default -> {
                                        f.daemon.pause(id);
                                        f.daemon.resume(id);
                                    }
                                }
                            } catch (DaemonException e) {
                                if (e.status() != 404 && e.status() != 409 && e.status() != 429) {
                                    unexpected.add(e.status() + " " + e.getMessage());
                                }
                            }
                        }
                    } catch (Throwable e) {
                        unexpected.add(e.toString());
                    }
                }));
            }
            start.countDown();
            for (Thread t : ts) {
                assertTrue(t.join(java.time.Duration.ofSeconds(120)), "a worker is stuck");
            }
            assertEquals(Set.of(), unexpected);
            List<Daemon.SandboxInfo> left = f.daemon.list();
            assertTrue(left.size() <= 5, "at most maxSandboxes: " + left.size());
            assertEquals(left.size(), f.daemon.builds().getFirst().refs(), "one build reference per live sandbox");
            try (Stream<Path> dirs = Files.list(f.root.resolve("state/sandboxes"))) {
                assertEquals(left.stream().map(Daemon.SandboxInfo::id).sorted().toList(),
                        dirs.map(p -> p.getFileName().toString()).sorted().toList(),
                        "a directory for each live sandbox, none for the deleted");
            }
            for (Daemon.SandboxInfo s : left) {
                f.daemon.resume(s.id());
                String uri = f.daemon.get(s.id()).nbdUri();
                Tools.run("nbdinfo", "--size", uri).ok();
            }
        }
    }

    @Test
    void closingTheDaemonClosesEverySandboxAndKeepsItForTheNextStart() throws Exception {
        DaemonFixture f = new DaemonFixture(tmp, 1 << 20, c -> c);
        f.create("a", f.templateUrl());
        f.create("b", f.templateUrl());
        f.api.close();
        f.daemon.close();
        assertTrue(Files.exists(f.root.resolve("state/sandboxes/a/sandbox.json")));
        assertFalse(Files.exists(f.root.resolve("state/api.sock")));
        assertTrue(Tools.run("nbdinfo", "nbd+unix:///a?socket=" + f.root.resolve("state/sandboxes/a/nbd.sock"))
                .exit() != 0);
        // A new daemon on the same state directory brings them back and keeps the build's cache.
        try (Daemon d = new Daemon(DaemonConfig.defaults(f.root.resolve("state")), null)) {
            assertEquals(List.of("a", "b"), d.list().stream().map(Daemon.SandboxInfo::id).toList());
            assertTrue(Files.list(f.root.resolve("state/builds")).findAny().isPresent());
        } finally {
            f.http.close();
        }
    }

    @Test
    void aDaemonThatCannotStartGivesBackItsLockAndTheNextOneStarts() throws Exception {
        Path state = tmp.resolve("state");
        // The builds directory is a file: the start fails after the content cache took its lock.
        Files.createDirectories(state);
        Files.writeString(state.resolve("builds"), "not a directory");
        DaemonConfig config = DaemonConfig.defaults(state).withDiskBudget(1L << 30, 0);
        IOException e = org.junit.jupiter.api.Assertions.assertThrows(IOException.class, () -> new Daemon(config, null));
        assertTrue(e.getMessage().contains("builds"), e::toString);
        Files.delete(state.resolve("builds"));
        try (Daemon d = new Daemon(config, null)) { // the content cache's lock was given back
            assertEquals(List.of(), d.list());
        }
    }

    @Test
    void aDaemonStartedAgainOnOneRegistryReportsItsOwnHostSeries() throws Exception {
        PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
        Path raw = dev.lazyblock.testing.UpstreamReads.writeRandomFile(tmp, "disk.raw", 7, 1 << 20);
        try (Daemon first = new Daemon(DaemonConfig.defaults(tmp.resolve("one")), registry)) {
            first.create(new Daemon.CreateRequest("a", raw.toString(), false, false, null));
            assertEquals(1.0, registry.get("lazyblock.daemon.sandboxes").gauge().value());
        }
        assertEquals(null, registry.find("lazyblock.daemon.sandboxes").gauge(), "a closed daemon's series are gone");
        try (Daemon second = new Daemon(DaemonConfig.defaults(tmp.resolve("two")), registry)) {
            second.create(new Daemon.CreateRequest("b", raw.toString(), false, false, null));
            second.create(new Daemon.CreateRequest("c", raw.toString(), false, false, null));
            assertEquals(2.0, registry.get("lazyblock.daemon.sandboxes").gauge().value());
        }
    }
}
