package dev.lazyblock.content;

import static dev.lazyblock.content.ContentAddressedLayerTest.CHUNK;
import static dev.lazyblock.content.ContentAddressedLayerTest.image;
import static dev.lazyblock.content.ContentAddressedLayerTest.publish;
import static dev.lazyblock.content.ContentAddressedLayerTest.readAll;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.os.Libc;
import dev.lazyblock.testing.Seeds;
import dev.lazyblock.upstream.ObjectStore;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.UUID;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The host's chunk files by hash ({@link ContentCache}): builds that share chunks hold them once
 * (mapped, not copied: their own cache files stay holes), a build opened later or after a restart
 * maps them without a fetch, a bad file is caught by its checksum and replaced, and the bound
 * evicts least recently used files without changing what open builds read.
 */
class ContentCacheTest {
    @TempDir
    Path dir;

    Path file(String name, byte[] bytes) throws IOException {
        Path p = dir.resolve(name);
        Files.write(p, bytes);
        return p;
    }

    LayeredImage open(ObjectStore store, String header, ContentCache files) throws IOException {
        Path caches = Files.createDirectories(dir.resolve("caches"));
        return LayeredImage.open(store, header, ChunkerKind.REQUEST_FIRST,
                ChunkerOptions.DEFAULTS.withContentCache(files), (id, size, bs) ->
                        SparseCache.create(caches.resolve(UUID.randomUUID() + ".cache"), size, bs, bs), null);
    }

    /** Bytes the builds' own cache files occupy on disk. */
    static long ownBytes(LayeredImage img) throws IOException {
        long n = 0;
        for (Chunker c : img.chunkers()) {
            n += c.cache().fileSize();
        }
        return n;
    }

    /** {@code a}, with chunks 4 and 7 changed. */
    static byte[] derived(byte[] a) {
        byte[] b = a.clone();
        b[4 * CHUNK + 100] ^= 1;
        b[7 * CHUNK + 5] ^= 1;
        return b;
    }

    @Test
    void twoImagesThatShareChunksHoldThemOnceAndTheSecondMapsTheFirstsWithoutAFetch() throws Exception {
        int tail = 3 * 4096 + 77; // a short last chunk: mapped up to the page that holds the image's end
        byte[] a = image(1, 10, tail);
        byte[] b = derived(a);
        ObservedStore store = new ObservedStore(dir.resolve("store"));
        LayerExporter.Layer la = publish(store, file("a.raw", a));
        LayerExporter.Layer lb = publish(store, file("b.raw", b));
        try (ContentCache files = new ContentCache(dir.resolve("content"), 1L << 30);
             LayeredImage ia = open(store, la.headerKey(), files);
             LayeredImage ib = open(store, lb.headerKey(), files)) {
            assertArrayEquals(a, readAll(ia));
            assertEquals(10, store.chunkOpens.get(), "a's 10 stored chunks");
            assertArrayEquals(b, readAll(ib));
            assertEquals(12, store.chunkOpens.get(), "b fetched only its 2 chunks of its own");
            assertEquals(8, files.hits(), "b's 8 shared chunks mapped from a's files");
            assertEquals(12, files.chunks(), "each distinct non-zero chunk held once");
            assertEquals(11L * CHUNK + tail, files.bytes());
            assertEquals(0, ownBytes(ia), "a's own cache file holds nothing: its chunks are mapped");
            assertEquals(0, ownBytes(ib));
            // Read again through the mappings, at random ranges, against the model.
            SplittableRandom rnd = new SplittableRandom(Seeds.seeds(1).findFirst().getAsLong());
            for (int i = 0; i < 200; i++) {
                int off = rnd.nextInt(b.length);
                int len = rnd.nextInt(1, Math.min(2 * CHUNK, b.length - off) + 1);
                byte[] got = new byte[len];
                ib.readAt(got, 0, len, off);
                assertTrue(Arrays.equals(b, off, off + len, got, 0, len), "bytes differ in [" + off + ", +" + len + ")");
            }
        }
    }

    @Test
    void aRestartedHostMapsTheChunkFilesItFetchedBefore() throws Exception {
        byte[] a = image(2, 8, 0);
        ObservedStore store = new ObservedStore(dir.resolve("store"));
        LayerExporter.Layer la = publish(store, file("a.raw", a));
        try (ContentCache files = new ContentCache(dir.resolve("content"), 1L << 30);
             LayeredImage ia = open(store, la.headerKey(), files)) {
            assertArrayEquals(a, readAll(ia));
        }
        int fetched = store.chunkOpens.get();
        try (ContentCache files = new ContentCache(dir.resolve("content"), 1L << 30);
             LayeredImage ia = open(store, la.headerKey(), files)) {
            assertEquals(7, files.chunks(), "the files of the run before, found at start");
            assertArrayEquals(a, readAll(ia));
            assertEquals(fetched, store.chunkOpens.get(), "nothing fetched again");
            assertEquals(7, files.hits());
        }
    }

    @Test
    void aCorruptOrShortChunkFileIsCaughtRemovedAndFetchedAgain() throws Exception {
        byte[] a = image(3, 6, 0);
        ObservedStore store = new ObservedStore(dir.resolve("store"));
        LayerExporter.Layer la = publish(store, file("a.raw", a));
        ContentTable table = la.header().builds().getFirst().content();
        try (ContentCache files = new ContentCache(dir.resolve("content"), 1L << 30)) {
            try (LayeredImage ia = open(store, la.headerKey(), files)) {
                assertArrayEquals(a, readAll(ia));
            }
            Path flipped = files.file(table.key(1));
            try (FileChannel ch = FileChannel.open(flipped, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                ByteBuffer one = ByteBuffer.allocate(1);
                ch.read(one, 1000);
                one.put(0, (byte) (one.get(0) ^ 0x40)).rewind();
                ch.write(one, 1000); // same size, one bit wrong
            }
            Path cut = files.file(table.key(3));
            try (FileChannel ch = FileChannel.open(cut, StandardOpenOption.WRITE)) {
                ch.truncate(CHUNK / 2);
            }
            int before = store.chunkOpens.get();
            try (LayeredImage ia = open(store, la.headerKey(), files)) {
                assertArrayEquals(a, readAll(ia), "the right bytes, not the files'");
            }
            assertEquals(2, files.bad());
            assertEquals(before + 2, store.chunkOpens.get(), "the two bad chunks fetched again");
            assertEquals(CHUNK, Files.size(cut), "replaced by a whole file");
        }
    }

    @Test
    void theBoundEvictsLeastRecentlyUsedFilesAndOpenBuildsStillReadTheirMappedBytes() throws Exception {
        byte[] a = image(4, 12, 0);
        ObservedStore store = new ObservedStore(dir.resolve("store"));
        LayerExporter.Layer la = publish(store, file("a.raw", a));
        try (ContentCache files = new ContentCache(dir.resolve("content"), 3L * CHUNK);
             LayeredImage ia = open(store, la.headerKey(), files)) {
            assertArrayEquals(a, readAll(ia));
            assertEquals(3, files.chunks());
            assertEquals(3L * CHUNK, files.bytes());
            assertEquals(8, files.evicted(), "11 stored, 3 kept");
            try (var s = Files.walk(files.dir())) {
                assertEquals(3, s.filter(p -> p.toString().endsWith(".plain")).count(), "evicted files are gone");
            }
            assertArrayEquals(a, readAll(ia), "an evicted file stays mapped where it was mapped");
            assertEquals(11, store.chunkOpens.get(), "and nothing was fetched again");
        }
    }

    @Test
    void aDiskBudgetOverTheContentCacheRemovesItsLeastRecentlyUsedFilesWhenTheWholeIsOver() throws Exception {
        byte[] a = image(6, 12, 0);
        ObservedStore store = new ObservedStore(dir.resolve("store"));
        LayerExporter.Layer la = publish(store, file("a.raw", a));
        Path content = dir.resolve("content");
        try (ContentCache files = new ContentCache(content, 1L << 30);
             LayeredImage ia = open(store, la.headerKey(), files)) {
            assertArrayEquals(a, readAll(ia));
            assertEquals(11L * CHUNK, files.bytes());
            dev.lazyblock.chunker.DiskBudget budget = new dev.lazyblock.chunker.DiskBudget(4L * CHUNK, 0, content);
            budget.governContent(files);
            assertEquals(11L * CHUNK, budget.usedBytes(), "the chunk files count; the build's scratch cache is holes");
            budget.enforce();
            assertTrue(budget.usedBytes() <= 4L * CHUNK, "under the budget: " + budget.usedBytes());
            assertEquals(7, files.evicted());
            assertEquals(7L * CHUNK, budget.evictedBytes());
            assertArrayEquals(a, readAll(ia), "the open build still reads what it mapped");
            budget.close();
        }
    }

    @Test
    void aSecondCacheOnTheSameDirectoryIsRefusedClearly() throws Exception {
        try (ContentCache files = new ContentCache(dir.resolve("content"), 1 << 20)) {
            IOException e = assertThrows(ContentCache.InUseException.class,
                    () -> new ContentCache(dir.resolve("content"), 1 << 20));
            assertTrue(e.getMessage().contains("in use"), e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> new ContentCache(dir.resolve("other"), 0));
    }

    @Test
    void mapFromRefusesAKeptCacheAndAMisalignedRange() throws Exception {
        Path src = file("src", new byte[CHUNK]);
        try (SparseCache scratch = SparseCache.create(dir.resolve("s.cache"), 4L * CHUNK)) {
            int fd = Libc.open(src.toString(), Libc.O_RDONLY, 0);
            try {
                assertThrows(IllegalArgumentException.class, () -> scratch.mapFrom(4096, CHUNK, fd, s -> true));
                assertThrows(IndexOutOfBoundsException.class, () -> scratch.mapFrom(4L * CHUNK, CHUNK, fd, s -> true));
                assertTrue(!scratch.mapFrom(0, CHUNK, fd, s -> false), "a check that says no leaves the range its own");
                assertEquals(0, scratch.sliceDirect(0, 1).get(java.lang.foreign.ValueLayout.JAVA_BYTE, 0));
            } finally {
                Libc.close(fd);
            }
        }
        try (SparseCache kept = dev.lazyblock.cache.PersistentCache.open(dir.resolve("kept"), "id", 4L * CHUNK).cache()) {
            int fd = Libc.open(src.toString(), Libc.O_RDONLY, 0);
            try {
                assertThrows(IllegalStateException.class, () -> kept.mapFrom(0, CHUNK, fd, s -> true));
            } finally {
                Libc.close(fd);
            }
        }
    }

    /**
     * Threads open and close three images that share most chunks, read random ranges and compare
     * them with the model, while a bound of a few chunks keeps evicting the files they map.
     */
    @Test
    void manyThreadsReadingImagesThatShareChunksUnderEvictionReadTheRightBytes() throws Exception {
        byte[] a = image(5, 16, 0);
        byte[] b = derived(a);
        byte[] c = derived(b);
        c[12 * CHUNK] ^= 1;
        byte[][] models = {a, b, c};
        ObservedStore store = new ObservedStore(dir.resolve("store"));
        List<String> headers = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            headers.add(publish(store, file(i + ".raw", models[i])).headerKey());
        }
        for (long seed : Seeds.seeds(2).toArray()) {
            Seeds.replayable(seed, () -> {
            try (ContentCache files = new ContentCache(dir.resolve("content-" + seed), 5L * CHUNK)) {
                ConcurrentLinkedQueue<Throwable> failures = new ConcurrentLinkedQueue<>();
                int threads = 8;
                CountDownLatch done = new CountDownLatch(threads);
                for (int t = 0; t < threads; t++) {
                    SplittableRandom rnd = new SplittableRandom(seed * 31 + t);
                    Thread.ofPlatform().daemon().start(() -> {
                        try {
                            for (int round = 0; round < 6; round++) {
                                int which = rnd.nextInt(3);
                                byte[] m = models[which];
                                try (LayeredImage img = open(store, headers.get(which), files)) {
                                    for (int r = 0; r < 40; r++) {
                                        int off = rnd.nextInt(m.length);
                                        int len = rnd.nextInt(1, Math.min(2 * CHUNK, m.length - off) + 1);
                                        byte[] got = new byte[len];
                                        img.readAt(got, 0, len, off);
                                        if (!Arrays.equals(m, off, off + len, got, 0, len)) {
                                            throw new AssertionError("image " + which + ": bytes differ in [" + off
                                                    + ", +" + len + ")");
                                        }
                                    }
                                }
                            }
                        } catch (Throwable e) {
                            failures.add(e);
                        } finally {
                            done.countDown();
                        }
                    });
                }
                assertTrue(done.await(120, TimeUnit.SECONDS), "readers did not finish in 120 s");
                if (!failures.isEmpty()) {
                    throw new AssertionError(failures.peek());
                }
                assertTrue(files.bytes() <= 5L * CHUNK, files.toString());
                assertTrue(files.evicted() > 0, "the bound was exercised: " + files);
                assertEquals(0, files.bad(), files.toString());
            }
            });
        }
    }
}
