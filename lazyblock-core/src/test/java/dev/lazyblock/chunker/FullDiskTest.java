package dev.lazyblock.chunker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.time.Duration;
import dev.lazyblock.testing.Await;
import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.upstream.FileUpstream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.io.TempDir;

/**
 * The cache's file system fills up mid-fetch (a small tmpfs the test mounts, as root): the read
 * fails with a clear error, nothing that was not written is marked present, and what was
 * fetched before still reads back right.
 */
class FullDiskTest {
    static final int CHUNK = 4 << 20;

    @TempDir
    Path dir;

    private static boolean run(String... cmd) throws Exception {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        p.getInputStream().readAllBytes();
        return p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0;
    }

    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.EnumSource(ChunkerKind.class)
    void aFullCacheDiskIsAClearErrorAndMarksNothingPresent(ChunkerKind kind) throws Exception {
        // A file system of its own per run: a closed cache's space comes back only once its last
        // fetch lets go, and the next run must not depend on when that is.
        Path mnt = Files.createDirectories(dir.resolve("small"));
        assumeTrue(run("mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", mnt.toString()),
                "mounting a 6 MiB tmpfs needs root (CI runs as root)");
        try {
            byte[] image = new byte[3 * CHUNK];
            new Random(6).nextBytes(image);
            Path file = Files.write(dir.resolve("image.raw"), image);
            {
                dev.lazyblock.metrics.CountingMetrics m = new dev.lazyblock.metrics.CountingMetrics();
                try (FileUpstream up = new FileUpstream(file);
                     Chunker c = kind.create(up, SparseCache.create(mnt.resolve("cache-" + kind), image.length),
                             ChunkerOptions.DEFAULTS.withMetrics(m))) {
                    byte[] got = new byte[4096];
                    c.readAt(got, 0, got.length, 100); // the first chunk fits in 6 MiB
                    Await.until(() -> c.cache().isCached(0, CHUNK), Duration.ofSeconds(30),
                            () -> kind + ": first chunk landed");
                    long last = 3L * CHUNK - 4096; // the third chunk's last block: past where the disk fills
                    if (kind == ChunkerKind.REQUEST_FIRST) {
                        // Its own block comes in a small request of its own while the streams for the
                        // rest fill the disk: whichever ends first decides. Either outcome is right;
                        // wrong bytes never are.
                        try {
                            c.readAt(got, 0, got.length, last);
                            assertArrayEquals(Arrays.copyOfRange(image, (int) last, (int) last + 4096), got);
                        } catch (IOException e) {
                            assertTrue(String.valueOf(e.getMessage()).contains("No space left on device"), e.toString());
                        }
                    } else {
                        IOException e = assertThrows(IOException.class, () -> c.readAt(got, 0, got.length, last),
                                kind + ": the third chunk cannot fit");
                        assertTrue(String.valueOf(e.getMessage()).contains("No space left on device")
                                || String.valueOf(e.getCause()).contains("No space left on device"), kind + ": " + e);
                    }
                    Await.until(() -> m.snapshot().fetchErrors() > 0, Duration.ofSeconds(30),
                            () -> kind + ": the fetch failed");
                    assertFalse(c.cache().isCached(2L * CHUNK, CHUNK), kind + ": nothing half-written is marked present");
                    c.readAt(got, 0, got.length, 5000);
                    assertArrayEquals(Arrays.copyOfRange(image, 5000, 5000 + 4096), got, kind + ": earlier bytes intact");
                }
            }
        } finally {
            run("umount", "-l", mnt.toString()); // lazy: a fetch thread may still hold its file a moment
        }
    }
}
