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
        assertTrue(Files.exists(caches.resolve(key + ".presence")), "a clean close saves the map");

        try (SimulatedUpstream warm = new SimulatedUpstream(new FileUpstream(image), LatencyModel.NONE)) {
            PersistentCache.Opened opened = PersistentCache.open(caches, "image-a", SIZE);
            assertEquals(SIZE, opened.restoredBytes());
            assertNull(opened.discarded());
            assertFalse(Files.exists(caches.resolve(key + ".presence")), "the map is consumed before serving");
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
    void aRunThatCrashesLeavesNothingTrustedAndTheBytesStillRight() throws Exception {
        Path image = image();
        Path caches = dir.resolve("caches");
        try (SimulatedUpstream up = new SimulatedUpstream(new FileUpstream(image), LatencyModel.NONE)) {
            readAll(caches, up, "image-b"); // a clean run: the map says everything is present
        }
        String java = ProcessHandle.current().info().command().orElseThrow();
        Process child = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED", "-cp",
                System.getProperty("java.class.path"), CrashingCacheUser.class.getName(), caches.toString(),
                "image-b", Integer.toString(SIZE)).redirectError(ProcessBuilder.Redirect.DISCARD).start();
        try {
            BufferedReader out = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
            String ready = out.readLine(); // bounded: the child either says it or dies (EOF)
            assertEquals("ready " + SIZE, ready, "the child trusted the clean run's map");
            IOException busy = assertThrows(IOException.class, () -> PersistentCache.open(caches, "image-b", SIZE));
            assertTrue(busy.getMessage().contains("in use by another process"), busy.getMessage());
        } finally {
            child.destroyForcibly(); // SIGKILL: no close, no map saved
            assertTrue(child.waitFor(60, TimeUnit.SECONDS), "the child did not die");
        }

        try (SimulatedUpstream up = new SimulatedUpstream(new FileUpstream(image), LatencyModel.NONE)) {
            PersistentCache.Opened opened = PersistentCache.open(caches, "image-b", SIZE);
            assertEquals(0, opened.restoredBytes(), "a crashed run's cache is not trusted");
            assertFalse(opened.cache().isCached(0, 1));
            assertEquals(0, opened.cache().fileSize(), "its blocks are given back");
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
            assertTrue(opened.discarded().contains("saved for an image of 1048576 bytes, the image now has 2097152"),
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
            assertEquals("the image changed: the map was saved for version '\"etag-1\"', the store now says version "
                    + "'\"etag-2\"'", changed.discarded());
            assertEquals(0, changed.restoredBytes());
            assertFalse(c.isCached(0, 4096));
            c.writeAt(new byte[4096], 0, 4096, 0);
            c.setIsCached(0, 4096);
        }
        // A store that stopped telling versions cannot vouch for the saved bytes either.
        PersistentCache.Opened unknown = PersistentCache.open(caches, "image-v", null, 1 << 20, 4096, 4096);
        try (SparseCache c = unknown.cache()) {
            assertEquals("the image changed: the map was saved for version '\"etag-2\"', the store now says no version",
                    unknown.discarded());
            assertFalse(c.isCached(0, 4096));
        }
    }

    @Test
    void aMapSavedBeforeVersionsWereKeptIsDiscarded() throws Exception {
        Path caches = dir.resolve("caches");
        try (SparseCache c = PersistentCache.open(caches, "image-old", 1 << 20).cache()) {
            c.writeAt(new byte[4096], 0, 4096, 0);
            c.setIsCached(0, 4096);
        }
        Path map = caches.resolve(PersistentCache.key("image-old") + ".presence");
        byte[] b = Files.readAllBytes(map);
        b[7] = '1'; // LBPMAP02 -> LBPMAP01
        Files.write(map, b);
        PersistentCache.Opened opened = PersistentCache.open(caches, "image-old", 1 << 20);
        try (SparseCache c = opened.cache()) {
            assertEquals("it was saved by an earlier lazyblock, which kept no version of the image", opened.discarded());
            assertFalse(c.isCached(0, 4096));
        }
    }

    @Test
    void aCorruptMapIsDiscarded() throws Exception {
        Path caches = dir.resolve("caches");
        try (SparseCache c = PersistentCache.open(caches, "image-d", 1 << 20).cache()) {
            c.writeAt(new byte[4096], 0, 4096, 0);
            c.setIsCached(0, 4096);
        }
        Path map = caches.resolve(PersistentCache.key("image-d") + ".presence");
        byte[] b = Files.readAllBytes(map);
        b[b.length / 2] ^= 1;
        Files.write(map, b);
        PersistentCache.Opened opened = PersistentCache.open(caches, "image-d", 1 << 20);
        try (SparseCache c = opened.cache()) {
            assertTrue(opened.discarded().contains("corrupt"), opened.discarded());
            assertFalse(c.isCached(0, 4096));
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
