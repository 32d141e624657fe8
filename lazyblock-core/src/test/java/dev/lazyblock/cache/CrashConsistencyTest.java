package dev.lazyblock.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.lazyblock.testing.Await;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Kills a real process ({@code kill -9}) that is fetching into a kept cache, at random moments,
 * round after round on the same cache directory, and checks after each: the restart keeps at least
 * what the dead process had reported durable, and every byte it trusts equals the image's.
 */
class CrashConsistencyTest {
    @TempDir
    Path dir;

    private static final int SIZE = 48 << 20; // 12 chunks of 4 MiB
    private static final int ROUNDS = 50;

    @Test
    void killedAtRandomMomentsTheCacheKeepsWhatWasDurableAndTrustsNothingWrong() throws Exception {
        byte[] truth = new byte[SIZE];
        new SplittableRandom(2026).nextBytes(truth);
        Path image = Files.write(dir.resolve("image.raw"), truth);
        Path caches = dir.resolve("caches");
        SplittableRandom random = new SplittableRandom(16);
        String java = ProcessHandle.current().info().command().orElseThrow();
        String[] kinds = {"request-first", "streaming", "full-fetch"};
        long everKept = 0;
        int midFill = 0;
        long keptTotal = 0, reportedTotal = 0;
        for (int round = 0; round < ROUNDS; round++) {
            if (round % 5 == 0) {
                // Start over now and then, so most rounds kill a cache that is still filling.
                deleteTree(caches);
            }
            String kind = kinds[round % kinds.length];
            Process child = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED", "-cp",
                    System.getProperty("java.class.path"), FetchingCacheUser.class.getName(), caches.toString(),
                    "image", image.toString(), Integer.toString(round), kind)
                    .redirectError(ProcessBuilder.Redirect.DISCARD).start();
            AtomicLong durable = new AtomicLong(-1);
            ConcurrentLinkedQueue<String> odd = new ConcurrentLinkedQueue<>();
            Thread reader = Thread.ofPlatform().start(() -> {
                try (BufferedReader out = new BufferedReader(new InputStreamReader(child.getInputStream(),
                        StandardCharsets.UTF_8))) {
                    for (String line; (line = out.readLine()) != null; ) {
                        if (line.startsWith("durable ")) {
                            durable.set(Long.parseLong(line.substring(8)));
                        } else if (!line.startsWith("restored ")) {
                            odd.add(line);
                        }
                    }
                } catch (Exception ignored) {
                    // the child is gone
                }
            });
            try {
                Await.until(() -> durable.get() >= 0 || !child.isAlive(), Duration.ofSeconds(60),
                        () -> "the child started fetching");
                // A random moment within the next ~0.5 s of fetching: early, mid-chunk, mid-commit.
                long until = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(random.nextInt(500));
                Await.until(() -> System.nanoTime() >= until || !child.isAlive(), Duration.ofSeconds(10),
                        () -> "the moment to kill");
            } finally {
                child.destroyForcibly(); // SIGKILL
                assertTrue(child.waitFor(60, TimeUnit.SECONDS), "the child did not die");
                reader.join(Duration.ofSeconds(10));
            }
            if (!odd.isEmpty()) {
                fail("round " + round + " (" + kind + "): the child saw " + odd);
            }
            long reported = Math.max(0, durable.get());
            PersistentCache.Opened opened = PersistentCache.open(caches, "image", null, SIZE, 4096, 4096);
            try (SparseCache c = opened.cache()) {
                assertTrue(opened.restoredBytes() >= reported, "round " + round + " (" + kind + "): restored "
                        + opened.restoredBytes() + " bytes, the dead process had reported " + reported + " durable");
                PresenceBitmap p = c.presence();
                MemorySegment want = MemorySegment.ofArray(truth);
                for (long g = p.nextSet(0); g >= 0; ) {
                    long end = p.nextClear(g);
                    long off = g * 4096, len = Math.min(SIZE, end * 4096) - off;
                    long at = MemorySegment.mismatch(c.slice(off, len), 0, len, want, off, off + len);
                    assertEquals(-1, at, "round " + round + " (" + kind + "): a trusted byte differs from the "
                            + "image at " + (at < 0 ? at : off + at));
                    g = end < p.granules() ? p.nextSet(end) : -1;
                }
                everKept = Math.max(everKept, opened.restoredBytes());
                midFill += opened.restoredBytes() < SIZE ? 1 : 0;
                keptTotal += opened.restoredBytes();
                reportedTotal += reported;
            }
            assertTrue(opened.awaitReleased(Duration.ofSeconds(30)));
        }
        System.out.printf("crash rounds: %d, %d killed mid-fill; kept %,d bytes against %,d reported durable%n",
                ROUNDS, midFill, keptTotal, reportedTotal);
        assertTrue(everKept > 0, "no round kept anything: the harness killed too early to test anything");
        assertTrue(midFill >= ROUNDS / 2, "only " + midFill + " rounds killed a cache still filling");
    }

    private static void deleteTree(Path p) throws java.io.IOException {
        if (!Files.exists(p)) {
            return;
        }
        try (var s = Files.walk(p)) {
            for (Path q : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.delete(q);
            }
        }
    }
}
