package dev.lazyblock.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.upstream.FileUpstream;
import dev.lazyblock.upstream.SimulatedUpstream;
import dev.lazyblock.upstream.SimulatedUpstream.LatencyModel;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The cache file truncated under a running reader: reads through the mapping would SIGBUS. They
 * must end in a clear IOException, with the JVM alive, no wrong bytes and nothing marked present.
 */
class TruncatedCacheFileTest {
    @TempDir
    Path dir;

    private static final int SIZE = 12 << 20;

    /** The descriptor of an unlinked scratch cache file, as /proc shows it. */
    private static Path procFdOf(Path unlinked) throws IOException {
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
            return fds.filter(fd -> {
                try {
                    return Files.readSymbolicLink(fd).toString().equals(unlinked + " (deleted)");
                } catch (IOException e) {
                    return false; // a descriptor closed while we list
                }
            }).findFirst().orElseThrow(() -> new AssertionError("no descriptor of " + unlinked + " in /proc/self/fd"));
        }
    }

    private static void truncate(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.truncate(0);
        }
    }

    private Path image() throws IOException {
        byte[] b = new byte[SIZE];
        new SplittableRandom(31).nextBytes(b);
        return Files.write(dir.resolve("image.raw"), b);
    }

    @Test
    void aReadOfATruncatedCacheIsAClearErrorAndLaterCallsFailFast() throws Exception {
        Path file = dir.resolve("scratch.cache");
        try (SparseCache cache = SparseCache.create(file, SIZE)) {
            byte[] block = new byte[4096];
            java.util.Arrays.fill(block, (byte) 7);
            cache.writeAt(block, 0, block.length, 8192);
            cache.setIsCached(8192, 4096);
            truncate(procFdOf(file));

            UncheckedIOException e = assertThrows(UncheckedIOException.class,
                    () -> cache.readAt(new byte[4096], 0, 4096, 8192));
            assertEquals("cache file " + file + " was truncated or removed under us: expected " + SIZE
                    + " bytes, found 0", e.getCause().getMessage());
            assertThrows(UncheckedIOException.class, () -> cache.slice(8192, 4096), "fails fast from now on");
            assertThrows(UncheckedIOException.class, () -> cache.setIsCached(0, 4096), "nothing is marked any more");
            assertThrows(IOException.class, () -> cache.writeAt(block, 0, block.length, 0));
            assertFalse(cache.isCached(8192, 4096), "a failed cache vouches for nothing");
            assertEquals(e.getCause(), cache.failure());
        }
    }

    @Test
    void aChunkerOverATruncatedCacheFailsItsReadersAndFetchesNothingMore() throws Exception {
        Path image = image();
        Path file = dir.resolve("chunker.cache");
        try (SimulatedUpstream up = new SimulatedUpstream(new FileUpstream(image), LatencyModel.NONE);
             Chunker c = ChunkerKind.STREAMING.create(up, SparseCache.create(file, SIZE), ChunkerOptions.DEFAULTS)) {
            byte[] got = new byte[1 << 20];
            c.readAt(got, 0, got.length, 0);
            long requests = up.requestCount();
            truncate(procFdOf(file));

            IOException e = assertThrows(IOException.class, () -> c.readAt(new byte[4096], 0, 4096, 4096));
            assertTrue(e.getMessage().contains("was truncated or removed under us: expected " + SIZE + " bytes, found "),
                    e.getMessage());
            IOException again = assertThrows(IOException.class, () -> c.readAt(new byte[4096], 0, 4096, 8 << 20));
            // A stream of chunk 0 still in flight may have written past 0 before its size check:
            // "found" is whatever the file had when the truncation was seen, always short.
            assertTrue(again.getMessage().matches("cache file " + java.util.regex.Pattern.quote(file.toString())
                    + " was truncated or removed under us: expected " + SIZE + " bytes, found \\d+"), again.getMessage());
            assertEquals(requests, up.requestCount(), "nothing is fetched into a failed cache");
        }
    }

    @Test
    void aFetchAfterATruncationDoesNotGrowTheFileBackUnderPresentBlocks() throws Exception {
        Path image = image();
        Path file = dir.resolve("regrow.cache");
        try (SimulatedUpstream up = new SimulatedUpstream(new FileUpstream(image), LatencyModel.NONE);
             Chunker c = ChunkerKind.FULL_FETCH.create(up, SparseCache.create(file, SIZE), ChunkerOptions.DEFAULTS)) {
            c.readAt(new byte[4096], 0, 4096, 0); // chunk 0 present
            truncate(procFdOf(file));
            // A miss in the last chunk: its pwrite would extend the file to its full size again,
            // and chunk 0 would then read as zeros. The fetch sees the truncation first.
            IOException e = assertThrows(IOException.class, () -> c.readAt(new byte[4096], 0, 4096, SIZE - 4096));
            assertTrue(e.getMessage().contains("was truncated or removed under us"), e.getMessage());
            assertFalse(c.cache().isCached(SIZE - 4096, 4096), "the failed fetch marked nothing");
            IOException hit = assertThrows(IOException.class, () -> c.readAt(new byte[4096], 0, 4096, 0));
            assertTrue(hit.getMessage().contains("was truncated"), "chunk 0 is not served as zeros: " + hit);
        }
    }

    @Test
    void aTruncatedPersistentCacheKeepsNoJournalAndTheNextRunTrustsNothing() throws Exception {
        Path image = image();
        Path caches = dir.resolve("caches");
        try (SimulatedUpstream up = new SimulatedUpstream(new FileUpstream(image), LatencyModel.NONE)) {
            PersistentCache.Opened opened = PersistentCache.open(caches, "image-t", SIZE);
            try (Chunker c = ChunkerKind.REQUEST_FIRST.create(up, opened.cache(), ChunkerOptions.DEFAULTS)) {
                c.readAt(new byte[1 << 20], 0, 1 << 20, 0);
                truncate(caches.resolve(PersistentCache.key("image-t") + ".cache"));
                IOException e = assertThrows(IOException.class, () -> c.readAt(new byte[4096], 0, 4096, 0));
                // The rest of chunk 0 may still be streaming in and growing the file a little.
                assertTrue(e.getMessage().contains("was truncated or removed under us: expected " + SIZE + " bytes, found "),
                        e.getMessage());
            }
            assertTrue(opened.awaitReleased(Duration.ofSeconds(60)));
        }
        assertFalse(Files.exists(caches.resolve(PersistentCache.key("image-t") + ".journal")),
                "a failed cache keeps no journal");
        PersistentCache.Opened next = PersistentCache.open(caches, "image-t", SIZE);
        try (SparseCache c = next.cache()) {
            assertEquals(0, next.restoredBytes());
            assertFalse(c.isCached(0, 4096));
        }
    }
}
