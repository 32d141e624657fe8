package dev.lazyblock.compress;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.device.LayerExporter.Compression;
import dev.lazyblock.device.LayerHeader;
import dev.lazyblock.device.LayerHeader.Build;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.frame.CorruptFrameException;
import dev.lazyblock.frame.FrameCodecs;
import dev.lazyblock.frame.FrameTable;
import dev.lazyblock.s3.S3ObjectStore;
import dev.lazyblock.testing.Seeds;
import dev.lazyblock.upstream.DirectoryStore;
import dev.lazyblock.upstream.ObjectStore;
import dev.lazyblock.s3.TestS3;
import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CyclicBarrier;
import org.gaul.s3proxy.junit.S3ProxyExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * No byte of a bad frame is ever served or marked present: every single-byte corruption of a
 * stored frame is caught, each reader gets a "corrupt frame" error naming the build, the frame
 * and its offsets, and once the object is good again the same read returns the right bytes.
 */
class CorruptFramePropertyTest {
    static final int B = 4096;
    /** Small frames so that "every byte" is a few thousand reads. */
    static final int FRAME = 4096;

    @RegisterExtension
    final S3ProxyExtension server = TestS3.server();

    @TempDir
    Path dir;

    record Published(LayerExporter.Layer layer, byte[] src, Path object) {}

    private Published publish(ObjectStore store, Path storeRoot, String codec, long seed, int frames) throws Exception {
        byte[] src = Images.diskLike(seed, frames * FRAME - 100);
        Path raw = Files.write(dir.resolve("src-" + seed + "-" + codec), src);
        LayerExporter.Layer layer = LayerExporter.publishBase(raw, B, store, "img", n -> { },
                new Compression(FrameCodecs.byName(codec), FRAME, 2, dir));
        return new Published(layer, src, storeRoot == null ? null : storeRoot.resolve(layer.diffKey()));
    }

    /** Every byte of every stored frame, flipped by a seeded random non-zero mask: caught, then recovered. */
    @ParameterizedTest
    @ValueSource(strings = {"zstd", "lz4"})
    void everySingleByteCorruptionIsCaught(String codec) throws Exception {
        for (long seed : Seeds.seeds(2).toArray()) {
            Seeds.replayable(seed, () -> {
                Path root = Files.createDirectories(dir.resolve("store-" + codec + "-" + seed));
                DirectoryStore store = new DirectoryStore(root);
                Published p = publish(store, root, codec, seed, 3);
                FrameTable t = p.layer().header().builds().getFirst().frames();
                String build = p.layer().header().buildId().toString();
                Random r = new Random(seed);
                int caught = 0;
                try (LayeredImage img = LayeredImage.open(store, p.layer().headerKey(), dir, ChunkerKind.FULL_FETCH,
                        ChunkerOptions.DEFAULTS);
                     RandomAccessFile obj = new RandomAccessFile(p.object().toFile(), "rw")) {
                    for (long pos = 0; pos < t.compressedSize(); pos++) {
                        int frame = frameAt(t, pos);
                        obj.seek(pos);
                        int original = obj.read();
                        obj.seek(pos);
                        obj.write(original ^ (1 + r.nextInt(255)));
                        long uoff = t.uncompressedOffset(frame);
                        byte[] got = new byte[t.uncompressedSize(frame)];
                        CorruptFrameException e = assertThrows(CorruptFrameException.class,
                                () -> img.readAt(MemorySegment.ofArray(got), uoff), "byte " + pos + " of frame " + frame);
                        assertTrue(e.getMessage().contains("corrupt frame " + frame + " of build " + build)
                                && e.getMessage().contains("compressed [" + t.compressedOffset(frame) + ", +"), e.getMessage());
                        assertEquals(frame, e.frame());
                        assertFalse(img.chunkers().getFirst().cache().isCached(uoff, 1), "frame " + frame + " marked present");
                        caught++;
                        obj.seek(pos);
                        obj.write(original);
                    }
                    // Good again: every frame reads right (the failed fetches left nothing behind).
                    byte[] all = new byte[p.src().length];
                    img.readAt(MemorySegment.ofArray(all), 0);
                    assertArrayEquals(p.src(), all);
                }
                assertEquals(t.compressedSize(), caught);
            });
        }
    }

    private static int frameAt(FrameTable t, long pos) {
        for (int f = t.frames() - 1; f >= 0; f--) {
            if (t.compressedOffset(f) <= pos) {
                return f;
            }
        }
        throw new AssertionError(pos);
    }

    /** Many readers of one corrupt frame: each gets its own "corrupt frame" error; then all read right. */
    @Test
    void everyWaiterOfACorruptFrameGetsTheError() throws Exception {
        Path root = Files.createDirectories(dir.resolve("store"));
        DirectoryStore store = new DirectoryStore(root);
        Published p = publish(store, root, "zstd", 11, 4);
        FrameTable t = p.layer().header().builds().getFirst().frames();
        int threads = 16;
        try (LayeredImage img = LayeredImage.open(store, p.layer().headerKey(), dir, ChunkerKind.STREAMING,
                ChunkerOptions.DEFAULTS);
             RandomAccessFile obj = new RandomAccessFile(p.object().toFile(), "rw")) {
            long pos = t.compressedOffset(2) + t.compressedSize(2) / 2;
            obj.seek(pos);
            int original = obj.read();
            obj.seek(pos);
            obj.write(~original);
            for (int round = 0; round < 20; round++) {
                CyclicBarrier start = new CyclicBarrier(threads);
                List<Thread> ts = new ArrayList<>();
                Throwable[] outcome = new Throwable[threads];
                for (int i = 0; i < threads; i++) {
                    int id = i;
                    ts.add(Thread.ofPlatform().start(() -> {
                        try {
                            start.await();
                            img.readAt(MemorySegment.ofArray(new byte[B]), t.uncompressedOffset(2) + (long) (id % 4) * 512);
                            outcome[id] = new AssertionError("reader " + id + " was served a corrupt frame");
                        } catch (Throwable e) {
                            outcome[id] = e;
                        }
                    }));
                }
                for (Thread th : ts) {
                    th.join();
                }
                for (Throwable e : outcome) {
                    assertTrue(e instanceof CorruptFrameException c && c.frame() == 2, String.valueOf(e));
                }
                assertFalse(img.chunkers().getFirst().cache().isCached(t.uncompressedOffset(2), 1));
            }
            obj.seek(pos);
            obj.write(original);
            byte[] got = new byte[t.uncompressedSize(2)];
            img.readAt(MemorySegment.ofArray(got), t.uncompressedOffset(2));
            assertArrayEquals(Arrays.copyOfRange(p.src(), (int) t.uncompressedOffset(2),
                    (int) t.uncompressedOffset(2) + got.length), got);
        }
    }

    /**
     * A frame whose stored bytes match the header's checksum but do not decompress (a header
     * written over garbage): still a corrupt frame, never served.
     */
    @ParameterizedTest
    @ValueSource(strings = {"zstd", "lz4"})
    void aFrameThatDoesNotDecompressIsCorrupt(String codec) throws Exception {
        Path root = Files.createDirectories(dir.resolve("store"));
        DirectoryStore store = new DirectoryStore(root);
        Published p = publish(store, root, codec, 12, 2);
        LayerHeader h = p.layer().header();
        Build b = h.builds().getFirst();
        FrameTable t = b.frames();
        byte[] stored = Files.readAllBytes(p.object());
        byte[] garbage = new byte[t.compressedSize(0)];
        new Random(12).nextBytes(garbage);
        System.arraycopy(garbage, 0, stored, 0, garbage.length);
        Files.write(p.object(), stored);
        int[] crcC = new int[t.frames()];
        int[] crcU = new int[t.frames()];
        long[] offs = new long[t.frames()];
        int[] sizes = new int[t.frames()];
        for (int f = 0; f < t.frames(); f++) {
            crcC[f] = t.compressedCrc(f);
            crcU[f] = t.uncompressedCrc(f);
            offs[f] = t.compressedOffset(f);
            sizes[f] = t.compressedSize(f);
        }
        crcC[0] = FrameTable.crc(ByteBuffer.wrap(garbage));
        FrameTable forged = new FrameTable(t.codec(), t.frameSize(), t.size(), offs, sizes, crcC, crcU);
        LayerHeader bad = new LayerHeader(h.imageSize(), h.blockSize(), h.buildId(), h.parentId(), h.generation(),
                List.of(new Build(b.id(), b.size(), b.sha256(), forged)), h.mappings());
        store.put(p.layer().headerKey(), bad.toBytes());
        try (LayeredImage img = LayeredImage.open(store, p.layer().headerKey(), dir, ChunkerKind.FULL_FETCH,
                ChunkerOptions.DEFAULTS)) {
            CorruptFrameException e = assertThrows(CorruptFrameException.class,
                    () -> img.readAt(MemorySegment.ofArray(new byte[B]), 0));
            assertTrue(e.getMessage().contains("could not decompress") || e.getMessage().contains("decompressed"),
                    e.getMessage());
            assertFalse(img.chunkers().getFirst().cache().isCached(0, 1));
            byte[] second = new byte[B];
            img.readAt(MemorySegment.ofArray(second), FRAME); // frame 1 is untouched
            assertArrayEquals(Arrays.copyOfRange(p.src(), FRAME, FRAME + B), second);
        }
    }

    /** The same property through S3: sampled single-byte corruptions of the object in S3Proxy are caught. */
    @Test
    void corruptionsInS3AreCaught() throws Exception {
        TestS3.createBucket(server.getUri());
        try (S3ObjectStore store = TestS3.store(server.getUri(), "c")) {
            Published p = publish(store, null, "zstd", 13, 3);
            FrameTable t = p.layer().header().builds().getFirst().frames();
            byte[] good;
            try (var up = store.open(p.layer().diffKey())) {
                ByteBuffer bb = ByteBuffer.allocate((int) up.size());
                up.readFully(0, bb);
                good = bb.array();
            }
            Random r = new Random(13);
            // The S3 upstream pins the object's ETag when the image opens (a replaced object is
            // refused as "changed"), so each corruption is met by a freshly opened image.
            for (int i = 0; i < 12; i++) {
                int pos = r.nextInt(good.length);
                int frame = frameAt(t, pos);
                byte[] bad = good.clone();
                bad[pos] ^= (byte) (1 + r.nextInt(255));
                store.put(p.layer().diffKey(), bad);
                try (LayeredImage img = LayeredImage.open(store, p.layer().headerKey(), dir, ChunkerKind.REQUEST_FIRST,
                        ChunkerOptions.DEFAULTS)) {
                    CorruptFrameException e = assertThrows(CorruptFrameException.class,
                            () -> img.readAt(MemorySegment.ofArray(new byte[1]), t.uncompressedOffset(frame)));
                    assertEquals(frame, e.frame(), e.getMessage());
                    assertFalse(img.chunkers().getFirst().cache().isCached(t.uncompressedOffset(frame), 1));
                }
            }
            store.put(p.layer().diffKey(), good);
            try (LayeredImage img = LayeredImage.open(store, p.layer().headerKey(), dir, ChunkerKind.REQUEST_FIRST,
                    ChunkerOptions.DEFAULTS)) {
                byte[] all = new byte[p.src().length];
                img.readAt(MemorySegment.ofArray(all), 0);
                assertArrayEquals(p.src(), all);
            }
        }
    }
}
