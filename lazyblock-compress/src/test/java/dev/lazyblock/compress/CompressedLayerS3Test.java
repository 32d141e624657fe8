package dev.lazyblock.compress;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.device.LayerExporter.Compression;
import dev.lazyblock.device.LayerHeader;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.device.Overlay;
import dev.lazyblock.frame.FrameCodecs;
import dev.lazyblock.s3.S3ObjectStore;
import dev.lazyblock.testing.Seeds;
import dev.lazyblock.upstream.UpstreamException;
import dev.lazyblock.s3.TestS3;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import org.gaul.s3proxy.junit.S3ProxyExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Compressed layers end to end on a real S3 server (S3Proxy): a random disk-like image published
 * as a base with zstd, LZ4 or no compression, opened from S3, read at random offsets and lengths
 * from many threads and compared with the source; then writes over it exported as a compressed
 * layer and read back.
 */
class CompressedLayerS3Test {
    static final int B = 4096;

    @RegisterExtension
    final S3ProxyExtension server = TestS3.server();

    @TempDir
    Path dir;

    @ParameterizedTest
    @ValueSource(strings = {"zstd", "lz4", "none"})
    void randomImagesReadBackThroughS3(String codecName) throws Exception {
        TestS3.createBucket(server.getUri());
        try (S3ObjectStore store = TestS3.store(server.getUri(), "fleet")) {
            for (long seed : Seeds.seeds(3).toArray()) {
                Seeds.replayable(seed, () -> roundTrip(store, codecName, seed));
            }
        }
    }

    private void roundTrip(S3ObjectStore store, String codecName, long seed) throws Exception {
        Random r = new Random(seed);
        int size = (3 << 20) + r.nextInt(6 << 20); // not a multiple of the frame, nor always of the block
        byte[] src = Images.diskLike(seed, size);
        Path raw = Files.write(dir.resolve("img-" + seed + ".raw"), src);
        Compression c = Compression.of(FrameCodecs.byName(codecName), dir);
        LayerExporter.Layer base = LayerExporter.publishBase(raw, B, store, "base-" + codecName, n -> { }, c);
        LayerHeader h = base.header();
        boolean compressed = !codecName.equals("none");
        assertEquals(compressed ? LayerHeader.VERSION_FRAMES : LayerHeader.VERSION, h.version());
        assertEquals(compressed, h.builds().getFirst().compressed());
        if (compressed) {
            assertTrue(base.storedBytes() < size * 7L / 10, codecName + " stored " + base.storedBytes() + " of " + size
                    + " bytes of a disk-like image: expected under 70%");
        }
        // The stored header parses to the same thing, frame table and all.
        assertEquals(h, LayeredImage.readHeader(store, base.headerKey()));

        Path caches = Files.createDirectories(dir.resolve("cache-" + seed + "-" + codecName));
        try (LayeredImage img = LayeredImage.open(store, base.headerKey(), caches, ChunkerKind.REQUEST_FIRST,
                ChunkerOptions.DEFAULTS)) {
            assertEquals(size, img.size());
            readRandomly(img, src, seed, 16, 40);
            byte[] all = new byte[size];
            img.readAt(java.lang.foreign.MemorySegment.ofArray(all), 0);
            assertArrayEquals(src, all, "whole image after random reads");

            // A compressed layer over it: random writes exported, read back through a fresh image.
            byte[] expect = src.clone();
            Path layerDir = Files.createDirectories(dir.resolve("layer-" + seed + "-" + codecName));
            LayerExporter.Layer layer;
            try (Overlay ov = new Overlay(img, SparseCache.create(layerDir.resolve("ov"), size, B, B))) {
                for (int i = 0; i < 50; i++) {
                    int off = r.nextInt(size);
                    byte[] data = i % 5 == 0 ? new byte[1 + r.nextInt(3 * B)] : Images.diskLike(r.nextLong(), 1 + r.nextInt(3 * B));
                    int len = Math.min(data.length, size - off);
                    ov.writeAt(data, 0, len, off);
                    System.arraycopy(data, 0, expect, off, len);
                }
                layer = LayerExporter.export(ov, h, store, "base-" + codecName, layerDir, n -> { }, c);
            }
            assertEquals(compressed && layer.storedBlocks() > 0, layer.header().builds().getLast().compressed(),
                    layer.header().toString());
            try (LayeredImage top = LayeredImage.open(store, layer.headerKey(), layerDir, ChunkerKind.STREAMING,
                    ChunkerOptions.DEFAULTS)) {
                readRandomly(top, expect, seed + 1, 8, 30);
                byte[] got = new byte[size];
                top.readAt(java.lang.foreign.MemorySegment.ofArray(got), 0);
                assertArrayEquals(expect, got, "layer over the base: base + every write");
            }
        }
    }

    /** {@code threads} readers, each {@code reads} random (offset, length) reads compared with {@code src}. */
    static void readRandomly(LayeredImage img, byte[] src, long seed, int threads, int reads) throws Exception {
        Thread[] ts = new Thread[threads];
        Throwable[] errors = new Throwable[threads];
        for (int t = 0; t < threads; t++) {
            int id = t;
            ts[t] = Thread.ofPlatform().start(() -> {
                Random r = new Random(seed * 31 + id);
                try {
                    for (int i = 0; i < reads; i++) {
                        int off = r.nextInt(src.length);
                        int len = Math.min(src.length - off, 1 + r.nextInt(r.nextBoolean() ? B : 5 << 20));
                        byte[] got = new byte[len];
                        img.readAt(java.lang.foreign.MemorySegment.ofArray(got), off);
                        if (!Arrays.equals(got, 0, len, src, off, off + len)) {
                            throw new AssertionError("read [" + off + ", +" + len + ") differs from the source at +"
                                    + Arrays.mismatch(got, 0, len, src, off, off + len));
                        }
                    }
                } catch (Throwable e) {
                    errors[id] = e;
                }
            });
        }
        for (Thread t : ts) {
            t.join();
        }
        for (Throwable e : errors) {
            if (e != null) {
                throw new AssertionError(e.getMessage(), e);
            }
        }
    }

    /** A diff object shorter than the frame table says is refused when the image opens, saying so. */
    @Test
    void truncatedObjectIsRefusedAtOpen() throws Exception {
        TestS3.createBucket(server.getUri());
        try (S3ObjectStore store = TestS3.store(server.getUri(), "t")) {
            byte[] src = Images.diskLike(7, 5 << 20);
            Path raw = Files.write(dir.resolve("img.raw"), src);
            LayerExporter.Layer base = LayerExporter.publishBase(raw, B, store, "img", n -> { },
                    Compression.of(FrameCodecs.byName("zstd"), dir));
            Path stored = dir.resolve("stored");
            try (var up = store.open(base.diffKey())) {
                java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate((int) up.size() - 1);
                up.readFully(0, b);
                Files.write(stored, b.array());
            }
            store.put(base.diffKey(), stored);
            UpstreamException e = assertThrows(UpstreamException.class,
                    () -> LayeredImage.open(store, base.headerKey(), dir, ChunkerKind.FULL_FETCH, ChunkerOptions.DEFAULTS));
            assertTrue(e.getMessage().contains("stores " + base.storedBytes() + " bytes of compressed frames")
                    && e.getMessage().contains("has " + (base.storedBytes() - 1)), e.getMessage());
        }
    }

    /**
     * A diff object truncated under an open image (after the size check at open): S3 refuses the
     * read (the upstream pins the object's ETag: "the object changed"), nothing is marked present,
     * and once the original object is back (same bytes, same ETag) the same read succeeds.
     */
    @Test
    void objectTruncatedUnderAnOpenImageFailsTheReadAndRecovers() throws Exception {
        TestS3.createBucket(server.getUri());
        try (S3ObjectStore store = TestS3.store(server.getUri(), "t2")) {
            byte[] src = Images.diskLike(8, 6 << 20);
            Path raw = Files.write(dir.resolve("img.raw"), src);
            LayerExporter.Layer base = LayerExporter.publishBase(raw, B, store, "img", n -> { },
                    Compression.of(FrameCodecs.byName("lz4"), dir));
            Path whole = dir.resolve("whole");
            Path half = dir.resolve("half");
            try (var up = store.open(base.diffKey())) {
                java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate((int) up.size());
                up.readFully(0, b);
                Files.write(whole, b.array());
                Files.write(half, Arrays.copyOf(b.array(), b.capacity() / 2));
            }
            try (LayeredImage img = LayeredImage.open(store, base.headerKey(), dir, ChunkerKind.FULL_FETCH,
                    ChunkerOptions.DEFAULTS)) {
                store.put(base.diffKey(), half);
                long lastFrame = src.length - 1;
                byte[] got = new byte[1];
                Exception e = assertThrows(java.io.IOException.class,
                        () -> img.readAt(java.lang.foreign.MemorySegment.ofArray(got), lastFrame));
                assertTrue(e.getMessage().contains("changed") || e.getMessage().contains("short"), e.getMessage());
                assertFalse(img.chunkers().getFirst().cache().isCached(lastFrame, 1), "nothing marked after " + e);
                store.put(base.diffKey(), whole);
                img.readAt(java.lang.foreign.MemorySegment.ofArray(got), lastFrame);
                assertEquals(src[src.length - 1], got[0]);
            }
        }
    }

    @Test
    void codecsAreFoundByServiceLoader() {
        assertEquals(ZstdFrameCodec.class, FrameCodecs.byName("zstd").getClass());
        assertEquals(Lz4FrameCodec.class, FrameCodecs.byId(Lz4FrameCodec.ID).getClass());
    }
}
