package dev.lazyblock.cache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.testing.Await;
import dev.lazyblock.upstream.FileUpstream;
import dev.lazyblock.upstream.SimulatedUpstream;
import dev.lazyblock.upstream.SimulatedUpstream.LatencyModel;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PersistentCacheTest {
    @TempDir
    Path dir;

    private static final int SIZE = 10 * (1 << 20) + 12345; // three chunks and a short one

    private Path image() throws IOException {
        byte[] b = new byte[SIZE];
        new SplittableRandom(11).nextBytes(b);
        return Files.write(dir.resolve("image.raw"), b);
    }

    /** Reads the whole image through a chunker over {@code up} and a persistent cache in {@code caches}. */
    private static byte[] readAll(Path caches, SimulatedUpstream up, String identity) throws Exception {
        PersistentCache.Opened opened = PersistentCache.open(caches, identity, up.size());
        byte[] all = new byte[(int) up.size()];
        try (Chunker c = ChunkerKind.REQUEST_FIRST.create(up, opened.cache(), ChunkerOptions.DEFAULTS)) {
            for (int off = 0; off < all.length; off += 1 << 20) {
                c.readAt(all, off, Math.min(1 << 20, all.length - off), off);
            }
            // A reader is released before its chunk is marked; a close in between loses the mark.
            Await.until(() -> opened.cache().isCached(0, all.length), Duration.ofSeconds(60),
                    () -> "every chunk marked present");
        }
        assertTrue(opened.awaitReleased(Duration.ofSeconds(60)), "fetches in flight did not end");
        return all;
    }

    @Test
    void aWarmedCacheReopenedAnswersEveryReadWithoutTheUpstream() throws Exception {
        Path image = image();
        Path caches = dir.resolve("caches");
        try (SimulatedUpstream cold = new SimulatedUpstream(new FileUpstream(image), LatencyModel.NONE)) {
            assertArrayEquals(Files.readAllBytes(image), readAll(caches, cold, "image-a"));
            assertTrue(cold.requestCount() > 0);
        }
        String key = PersistentCache.key("image-a");
        assertTrue(Files.exists(caches.resolve(key + ".journal")), "the presence is journaled");

        try (SimulatedUpstream warm = new SimulatedUpstream(new FileUpstream(image), LatencyModel.NONE)) {
            PersistentCache.Opened opened = PersistentCache.open(caches, "image-a", SIZE);
            assertEquals(SIZE, opened.restoredBytes());
            assertNull(opened.discarded());
            byte[] all = new byte[SIZE];
            try (Chunker c = ChunkerKind.STREAMING.create(warm, opened.cache(), ChunkerOptions.DEFAULTS)) {
                c.readAt(all, 0, SIZE, 0);
            }
            assertTrue(opened.awaitReleased(Duration.ofSeconds(60)));
            assertArrayEquals(Files.readAllBytes(image), all);
            assertEquals(0, warm.requestCount(), "every read was a hit");
        }
    }

    @Test
    void aRunKilledMidFetchKeepsWhatItCommittedAndNeverTrustsBytesItHadNotMarked() throws Exception {
        Path image = image();
        Path caches = dir.resolve("caches");
        try (SimulatedUpstream up = new SimulatedUpstream(new FileUpstream(image), LatencyModel.NONE)) {
            readAll(caches, up, "image-b"); // a clean run: everything present
        }
        // Give back the second half, as if it had never been fetched: a fresh journal of the first.
        int half = 5 << 20;
        PersistentCache.Opened reopened = PersistentCache.open(caches, "image-b", SIZE);
        reopened.cache().close();
        assertTrue(reopened.awaitReleased(Duration.ofSeconds(10)));
        Files.delete(caches.resolve(PersistentCache.key("image-b") + ".journal"));
        try (SparseCache c = PersistentCache.open(caches, "image-b", SIZE).cache()) {
            byte[] first = java.util.Arrays.copyOf(Files.readAllBytes(image), half);
            c.writeAt(first, 0, half, 0);
            c.setIsCached(0, half);
        }

        String java = ProcessHandle.current().info().command().orElseThrow();
        Process child = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED", "-cp",
                System.getProperty("java.class.path"), CrashingCacheUser.class.getName(), caches.toString(),
                "image-b", Integer.toString(SIZE), image.toString(), Integer.toString(half))
                .redirectError(ProcessBuilder.Redirect.DISCARD).start();
        try {
            BufferedReader out = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
            String ready = out.readLine(); // bounded: the child either says it or dies (EOF)
            assertEquals("ready " + half, ready, "the child trusted the clean run's journal");
            IOException busy = assertThrows(IOException.class, () -> PersistentCache.open(caches, "image-b", SIZE));
            assertTrue(busy.getMessage().contains("in use by another process"), busy.getMessage());
        } finally {
            child.destroyForcibly(); // SIGKILL: no close
            assertTrue(child.waitFor(60, TimeUnit.SECONDS), "the child did not die");
        }

        try (SimulatedUpstream up = new SimulatedUpstream(new FileUpstream(image), LatencyModel.NONE)) {
            PersistentCache.Opened opened = PersistentCache.open(caches, "image-b", SIZE);
            assertEquals(half + 4096, opened.restoredBytes(), "what it had committed is kept");
            assertTrue(opened.cache().isCached(half, 4096), "the block it fetched and flushed");
            assertFalse(opened.cache().isCached(half + 4096, 4096), "the block it wrote junk into and never marked");
            byte[] all = new byte[SIZE];
            try (Chunker c = ChunkerKind.FULL_FETCH.create(up, opened.cache(), ChunkerOptions.DEFAULTS)) {
                c.readAt(all, 0, SIZE, 0);
            }
            assertArrayEquals(Files.readAllBytes(image), all, "the child's junk is never served");
            assertTrue(up.requestCount() > 0);
        }
    }

    @Test
    void aMapSavedForAnotherSizeIsDiscardedWithItsReason() throws Exception {
        Path caches = dir.resolve("caches");
        try (SparseCache c = PersistentCache.open(caches, "image-c", 1 << 20).cache()) {
            c.writeAt(new byte[4096], 0, 4096, 0);
            c.setIsCached(0, 4096);
        }
        PersistentCache.Opened opened = PersistentCache.open(caches, "image-c", 2 << 20);
        try (SparseCache c = opened.cache()) {
            assertEquals(0, opened.restoredBytes());
            assertNotNull(opened.discarded());
            assertTrue(opened.discarded().contains("written for an image of 1048576 bytes, the image now has 2097152"),
                    opened.discarded());
            assertFalse(c.isCached(0, 4096));
            assertEquals(2 << 20, c.size());
        }
    }

    @Test
    void aMapSavedForAnotherVersionOfTheImageIsDiscardedEvenAtTheSameSize() throws Exception {
        Path caches = dir.resolve("caches");
        try (SparseCache c = PersistentCache.open(caches, "image-v", "\"etag-1\"", 1 << 20, 4096, 4096).cache()) {
            c.writeAt(new byte[4096], 0, 4096, 0);
            c.setIsCached(0, 4096);
        }
        // The same version: trusted.
        PersistentCache.Opened same = PersistentCache.open(caches, "image-v", "\"etag-1\"", 1 << 20, 4096, 4096);
        try (SparseCache c = same.cache()) {
            assertNull(same.discarded());
            assertEquals(4096, same.restoredBytes());
            assertTrue(c.isCached(0, 4096));
        }
        // Rewritten under the same name and size: not.
        PersistentCache.Opened changed = PersistentCache.open(caches, "image-v", "\"etag-2\"", 1 << 20, 4096, 4096);
        try (SparseCache c = changed.cache()) {
            assertEquals("the image changed: the journal was written for version '\"etag-1\"', the store now says "
                    + "version '\"etag-2\"'", changed.discarded());
            assertEquals(0, changed.restoredBytes());
            assertFalse(c.isCached(0, 4096));
            c.writeAt(new byte[4096], 0, 4096, 0);
            c.setIsCached(0, 4096);
        }
        // A store that stopped telling versions cannot vouch for the saved bytes either.
        PersistentCache.Opened unknown = PersistentCache.open(caches, "image-v", null, 1 << 20, 4096, 4096);
        try (SparseCache c = unknown.cache()) {
            assertEquals("the image changed: the journal was written for version '\"etag-2\"', the store now says "
                    + "no version", unknown.discarded());
            assertFalse(c.isCached(0, 4096));
        }
    }

    @Test
    void aMapSavedBeforeVersionsWereKeptIsDiscardedAndRemoved() throws Exception {
        Path caches = dir.resolve("caches");
        try (SparseCache c = PersistentCache.open(caches, "image-old", 1 << 20).cache()) {
            c.writeAt(new byte[4096], 0, 4096, 0);
            c.setIsCached(0, 4096);
        }
        String key = PersistentCache.key("image-old");
        Files.delete(caches.resolve(key + ".journal"));
        Path map = caches.resolve(key + ".presence");
        Files.write(map, "LBPMAP01 whatever followed".getBytes(StandardCharsets.US_ASCII));
        PersistentCache.Opened opened = PersistentCache.open(caches, "image-old", 1 << 20);
        try (SparseCache c = opened.cache()) {
            assertEquals("it was saved by an earlier lazyblock, which kept no version of the image", opened.discarded());
            assertFalse(c.isCached(0, 4096));
            assertFalse(Files.exists(map), "read once, then gone");
        }
    }

    @Test
    void aCorruptJournalHeaderIsDiscarded() throws Exception {
        Path caches = dir.resolve("caches");
        try (SparseCache c = PersistentCache.open(caches, "image-d", 1 << 20).cache()) {
            c.writeAt(new byte[4096], 0, 4096, 0);
            c.setIsCached(0, 4096);
        }
        Path journal = caches.resolve(PersistentCache.key("image-d") + ".journal");
        byte[] b = Files.readAllBytes(journal);
        b[14] ^= 1; // inside the identity
        Files.write(journal, b);
        PersistentCache.Opened opened = PersistentCache.open(caches, "image-d", 1 << 20);
        try (SparseCache c = opened.cache()) {
            assertTrue(opened.discarded().contains("header is corrupt"), opened.discarded());
            assertFalse(c.isCached(0, 4096));
        }
    }

    @Test
    void aJournalTailTornByACrashIsIgnoredAndWhatCameBeforeItKept() throws Exception {
        Path caches = dir.resolve("caches");
        try (SparseCache c = PersistentCache.open(caches, "image-t", 1 << 20).cache()) {
            for (int block : new int[] {0, 2, 4}) {
                c.writeAt(new byte[4096], 0, 4096, block * 4096L);
                c.setIsCached(block * 4096L, 4096);
                c.flush(); // one record each
            }
        }
        Path journal = caches.resolve(PersistentCache.key("image-t") + ".journal");
        byte[] b = Files.readAllBytes(journal);
        // The clean close left runs {0}, {2}, {4} after the header (the rewrite at open compacts).
        b[b.length - 1] ^= 1; // the last record's CRC: torn
        Files.write(journal, java.util.Arrays.copyOf(b, b.length + 7)); // and a partial record after it
        PersistentCache.Opened opened = PersistentCache.open(caches, "image-t", 1 << 20);
        try (SparseCache c = opened.cache()) {
            assertNull(opened.discarded());
            assertEquals(2 * 4096, opened.restoredBytes());
            assertEquals(PresenceJournal.RECORD + 7, opened.droppedJournalBytes());
            assertTrue(c.isCached(0, 4096));
            assertTrue(c.isCached(2 * 4096, 4096));
            assertFalse(c.isCached(4 * 4096, 4096), "the torn record's block is fetched again");
        }
    }

    @Test
    void anOverlayWhoseJournalDoesNotMatchIsRefusedNotDiscarded() throws Exception {
        Path state = dir.resolve("overlay");
        try (SparseCache c = PersistentCache.openOverlay(state, "overlay of disk", "build-1", 1 << 20, 4096).cache()) {
            c.writeAt(new byte[4096], 0, 4096, 8192);
            c.setIsCached(8192, 4096);
        }
        IOException e = assertThrows(IOException.class,
                () -> PersistentCache.openOverlay(state, "overlay of disk", "build-2", 1 << 20, 4096));
        assertTrue(e.getMessage().contains("cannot be reopened: the image changed"), e.getMessage());
        assertTrue(e.getMessage().contains("move " + state + " away"), e.getMessage());
        PersistentCache.Opened again = PersistentCache.openOverlay(state, "overlay of disk", "build-1", 1 << 20, 4096);
        try (SparseCache c = again.cache()) {
            assertTrue(c.isCached(8192, 4096), "the refused open changed nothing");
            assertEquals(4096, again.restoredBytes());
        }
    }

    @Test
    void aNewOverlaysBarrierRunsOnceBeforeItsFirstFlushReturnsAndAFailedOneFailsTheFlush() throws Exception {
        Path state = dir.resolve("barrier");
        java.util.concurrent.atomic.AtomicInteger runs = new java.util.concurrent.atomic.AtomicInteger();
        java.util.concurrent.atomic.AtomicBoolean fail = new java.util.concurrent.atomic.AtomicBoolean(true);
        PersistentCache.Opened opened = PersistentCache.openOverlay(state, "overlay of sandbox x", "build-1", 1 << 20,
                4096, () -> {
                    runs.incrementAndGet();
                    if (fail.get()) {
                        throw new IOException("injected: the record could not be synced");
                    }
                });
        try (SparseCache c = opened.cache()) {
            c.flush();
            assertEquals(0, runs.get(), "nothing written: nothing to vouch for, no barrier");
            c.writeAt(new byte[4096], 0, 4096, 8192);
            c.setIsCached(8192, 4096);
            IOException e = assertThrows(IOException.class, c::flush);
            assertTrue(e.getMessage().contains("injected"), e.getMessage());
            assertEquals(0, opened.durableBytes(), "a flush whose barrier failed vouches for nothing");
            fail.set(false);
            c.flush();
            assertEquals(4096, opened.durableBytes());
            c.writeAt(new byte[4096], 0, 4096, 0);
            c.setIsCached(0, 4096);
            c.flush();
            assertEquals(2, runs.get(), "run until it succeeded once, then never again");
        }
        // Reopened, the journal vouches for its blocks at once: its barrier runs at open, once.
        PersistentCache.Opened again = PersistentCache.openOverlay(state, "overlay of sandbox x", "build-1", 1 << 20,
                4096, () -> runs.addAndGet(100));
        assertEquals(102, runs.get());
        try (SparseCache c = again.cache()) {
            assertEquals(8192, again.restoredBytes());
            c.writeAt(new byte[4096], 0, 4096, 12288);
            c.setIsCached(12288, 4096);
            c.flush();
        }
        assertEquals(102, runs.get());
    }

    @Test
    void aFlushMakesMarksDurableAtOnce() throws Exception {
        Path caches = dir.resolve("caches");
        PersistentCache.Opened opened = PersistentCache.open(caches, "image-f", null, 1 << 20, 4096, 4096,
                Duration.ofHours(1)); // no background commit within the test
        try (SparseCache c = opened.cache()) {
            c.writeAt(new byte[8192], 0, 8192, 0);
            c.setIsCached(0, 8192);
            assertEquals(0, opened.durableBytes(), "not committed yet");
            c.flush();
            assertEquals(8192, opened.durableBytes());
        }
    }

    @Test
    void marksCommitInTheBackgroundWithinTheInterval() throws Exception {
        Path caches = dir.resolve("caches");
        PersistentCache.Opened opened = PersistentCache.open(caches, "image-g", null, 1 << 20, 4096, 4096,
                Duration.ofMillis(20));
        try (SparseCache c = opened.cache()) {
            c.writeAt(new byte[4096], 0, 4096, 4096);
            c.setIsCached(4096, 4096);
            Await.until(() -> opened.durableBytes() == 4096, Duration.ofSeconds(10), () -> "the mark committed");
            Await.until(() -> Thread.getAllStackTraces().keySet().stream()
                            .noneMatch(t -> t.getName().startsWith("lazyblock-journal ")), Duration.ofSeconds(10),
                    () -> "the syncer gone once idle");
        }
    }

    @Test
    void aSecondOpenOfTheSameCacheFailsUntilTheFirstCloses() throws Exception {
        Path caches = dir.resolve("caches");
        SparseCache first = PersistentCache.open(caches, "image-e", 1 << 20).cache();
        IOException e = assertThrows(IOException.class, () -> PersistentCache.open(caches, "image-e", 1 << 20));
        assertTrue(e.getMessage().contains("already open in this process"), e.getMessage());
        assertTrue(e.getMessage().contains(PersistentCache.key("image-e") + ".lock"), e.getMessage());
        first.close();
        try (SparseCache again = PersistentCache.open(caches, "image-e", 1 << 20).cache()) {
            assertEquals(1 << 20, again.size());
        }
    }
}
