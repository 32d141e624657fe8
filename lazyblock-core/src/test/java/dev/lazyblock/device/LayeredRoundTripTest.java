package dev.lazyblock.device;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.upstream.DirectoryStore;
import dev.lazyblock.upstream.ObjectStore;
import dev.lazyblock.upstream.Upstream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Base image -> layered image -> overlay -> writes -> export -> a fresh layered image of the
 * new layer reads back exactly base + writes; then a third layer on top. Against a directory
 * store here; the same round trip runs against S3 in lazyblock-s3.
 */
public class LayeredRoundTripTest {
    public static final int B = 4096;
    static final int CHUNK = 4 << 20;

    @TempDir
    Path dir;

    /** Applies random writes of every kind to the overlay and the model alike. */
    static void scribble(Overlay ov, byte[] model, SplittableRandom rnd, int writes) throws IOException {
        int size = model.length;
        for (int i = 0; i < writes; i++) {
            int kind = rnd.nextInt(5);
            long off = switch (kind) {
                case 0 -> (long) rnd.nextInt(size / B) * B;                                     // aligned block
                case 1 -> (long) rnd.nextInt(1, size / CHUNK + 1) * CHUNK - rnd.nextInt(1, 3 * B); // spans chunks
                default -> rnd.nextInt(size - 1);                                               // unaligned
            };
            int len = (int) Math.min(size - off, kind == 0 ? B : rnd.nextInt(1, 3 * B));
            byte[] data = new byte[len];
            switch (kind) {
                case 2 -> { } // zeros
                case 3 -> System.arraycopy(model, (int) off, data, 0, len); // the bytes already there
                default -> rnd.nextBytes(data);
            }
            ov.writeAt(data, 0, len, off);
            System.arraycopy(data, 0, model, (int) off, len);
        }
    }

    static void assertImage(Device image, byte[] model) throws IOException {
        byte[] all = new byte[model.length];
        assertEquals(model.length, image.readAt(all, 0, all.length, 0));
        for (int i = 0; i < model.length; i += B) {
            int len = Math.min(B, model.length - i);
            if (!Arrays.equals(model, i, i + len, all, i, i + len)) {
                throw new AssertionError("block at " + i + " differs from the model");
            }
        }
    }

    /** Runs the whole round trip against {@code store}; returns the layers made. */
    public static LayerExporter.Layer[] roundTrip(ObjectStore store, Path work, long seed) throws IOException {
        SplittableRandom rnd = new SplittableRandom(seed);
        int size = 3 * CHUNK + 5 * B + 123; // a short last block
        byte[] model = new byte[size];
        rnd.nextBytes(model);
        Arrays.fill(model, CHUNK, CHUNK + 64 * B, (byte) 0); // a zero region in the base
        Path raw = work.resolve("base.raw");
        Files.write(raw, model);
        Path caches = Files.createDirectories(work.resolve("caches"));
        LayerExporter.Layer base = LayerExporter.publishBase(raw, B, store, "images/vm1");
        LayerExporter.Layer[] layers = new LayerExporter.Layer[3];
        layers[0] = base;
        String headerKey = base.headerKey();
        for (int generation = 1; generation <= 2; generation++) {
            LayerExporter.Layer layer;
            try (LayeredImage parent = LayeredImage.open(store, headerKey, caches, ChunkerKind.REQUEST_FIRST,
                    ChunkerOptions.DEFAULTS);
                 Overlay ov = new Overlay(parent, SparseCache.create(caches.resolve("overlay-" + generation), size))) {
                assertImage(parent, model);
                scribble(ov, model, rnd, 200);
                assertImage(ov, model);
                layer = LayerExporter.export(ov, parent.header(), store, "images/vm1", work);
            }
            layers[generation] = layer;
            assertEquals(generation, layer.header().generation());
            try (LayeredImage fresh = LayeredImage.open(store, layer.headerKey(), caches, ChunkerKind.STREAMING,
                    ChunkerOptions.DEFAULTS)) {
                assertImage(fresh, model);
            }
            headerKey = layer.headerKey();
        }
        return layers;
    }

    @Test
    void threeLayersReadBackAsBasePlusEveryWrite() throws Exception {
        try (DirectoryStore store = new DirectoryStore(dir.resolve("store"))) {
            LayerExporter.Layer[] layers = roundTrip(store, dir, 42);
            for (int g = 1; g <= 2; g++) {
                LayerExporter.Layer l = layers[g];
                assertTrue(l.unchangedBlocks() > 0, "blocks rewritten with their own bytes are recognized");
                assertTrue(l.zeroBlocks() > 0, "zero blocks are recorded");
                assertEquals(l.storedBlocks() * B, l.diffBytes(), "only stored blocks take space");
                assertEquals(layers[g - 1].header().buildId(), l.header().parentId());
                assertTrue(l.header().mappings().stream().anyMatch(LayerHeader.Mapping::isZero));
                assertTrue(store.exists(l.headerKey()));
            }
        }
    }

    @Test
    void aFailedHeaderUploadLeavesNeitherHeaderNorDiff() throws Exception {
        byte[] base = new byte[2 * CHUNK];
        new SplittableRandom(1).nextBytes(base);
        Path raw = dir.resolve("base.raw");
        Files.write(raw, base);
        DirectoryStore real = new DirectoryStore(dir.resolve("store"));
        LayerExporter.Layer baseLayer = LayerExporter.publishBase(raw, B, real, "img");
        ObjectStore failingHeaders = new ObjectStore() {
            @Override public String name() { return real.name(); }
            @Override public Upstream open(String key) throws IOException { return real.open(key); }
            @Override public void put(String key, Path file) throws IOException { real.put(key, file); }
            @Override public void put(String key, byte[] bytes) throws IOException {
                throw new IOException("injected: header upload failed");
            }
            @Override public boolean exists(String key) throws IOException { return real.exists(key); }
            @Override public void delete(String key) throws IOException { real.delete(key); }
            @Override public void close() { }
        };
        try (LayeredImage parent = LayeredImage.open(real, baseLayer.headerKey(), dir, ChunkerKind.FULL_FETCH,
                ChunkerOptions.DEFAULTS);
             Overlay ov = new Overlay(parent, SparseCache.create(dir.resolve("ov"), base.length))) {
            ov.writeAt(new byte[] {1, 2, 3}, 0, 3, 5000);
            IOException e = assertThrows(IOException.class,
                    () -> LayerExporter.export(ov, parent.header(), failingHeaders, "img", dir));
            assertTrue(e.getMessage().contains("injected"));
        }
        try (var files = Files.list(dir.resolve("store/img"))) {
            assertEquals(2, files.count(), "only the base's diff and header remain");
        }
        assertFalse(Files.list(dir).anyMatch(p -> p.toString().endsWith(".diff")), "no scratch diff left");
    }

    @Test
    void anOverlayWithNothingChangedExportsAHeaderOnly() throws Exception {
        byte[] base = new byte[CHUNK];
        new SplittableRandom(2).nextBytes(base);
        Path raw = dir.resolve("base.raw");
        Files.write(raw, base);
        try (DirectoryStore store = new DirectoryStore(dir.resolve("store"))) {
            LayerExporter.Layer b = LayerExporter.publishBase(raw, B, store, "img");
            try (LayeredImage parent = LayeredImage.open(store, b.headerKey(), dir, ChunkerKind.STREAMING,
                    ChunkerOptions.DEFAULTS);
                 Overlay ov = new Overlay(parent, SparseCache.create(dir.resolve("ov"), base.length))) {
                ov.writeAt(Arrays.copyOfRange(base, 0, 3 * B), 0, 3 * B, 0); // the same bytes
                LayerExporter.Layer l = LayerExporter.export(ov, parent.header(), store, "img", dir);
                assertEquals(0, l.storedBlocks());
                assertEquals(3, l.unchangedBlocks());
                assertEquals(null, l.diffKey());
                assertEquals(parent.header().mappings(), l.header().mappings());
                assertEquals(parent.header().builds(), l.header().builds());
            }
        }
    }

    @Test
    void aHeaderWhoseDiffIsTheWrongSizeIsRefused() throws Exception {
        byte[] base = new byte[CHUNK];
        Path raw = dir.resolve("base.raw");
        Files.write(raw, base);
        try (DirectoryStore store = new DirectoryStore(dir.resolve("store"))) {
            LayerExporter.Layer b = LayerExporter.publishBase(raw, B, store, "img");
            store.put(b.diffKey(), new byte[100]); // the diff object was replaced
            IOException e = assertThrows(IOException.class, () -> LayeredImage.open(store, b.headerKey(), dir,
                    ChunkerKind.STREAMING, ChunkerOptions.DEFAULTS));
            assertTrue(e.getMessage().contains("has " + CHUNK + " bytes, its diff object has 100"), e.getMessage());
        }
    }

    @Test
    void exportedSizesForAMeasuredCase() throws Exception {
        // 1 GiB base, 1,000 random 4 KiB writes: what a layer costs (printed for the record).
        int size = 1 << 30;
        Path raw = dir.resolve("base.raw");
        try (var ch = java.nio.channels.FileChannel.open(raw, java.nio.file.StandardOpenOption.CREATE_NEW,
                java.nio.file.StandardOpenOption.WRITE)) {
            ch.truncate(size);
            ch.write(java.nio.ByteBuffer.wrap(new byte[] {1}), size - 1);
        }
        SplittableRandom rnd = new SplittableRandom(7);
        try (DirectoryStore store = new DirectoryStore(dir.resolve("store"))) {
            LayerExporter.Layer b = LayerExporter.publishBase(raw, B, store, "img");
            try (LayeredImage parent = LayeredImage.open(store, b.headerKey(), dir, ChunkerKind.REQUEST_FIRST,
                    ChunkerOptions.DEFAULTS);
                 Overlay ov = new Overlay(parent, SparseCache.create(dir.resolve("ov"), size))) {
                byte[] block = new byte[B];
                for (int i = 0; i < 1000; i++) {
                    rnd.nextBytes(block);
                    ov.writeAt(block, 0, B, (long) rnd.nextInt(size / B) * B);
                }
                LayerExporter.Layer l = LayerExporter.export(ov, parent.header(), store, "img", dir);
                System.out.printf("layer over a %d MiB base after 1,000 random 4 KiB writes: %,d blocks stored, diff %,d "
                        + "bytes, header %,d bytes (%d mappings)%n", size >> 20, l.storedBlocks(), l.diffBytes(),
                        l.headerBytes(), l.header().mappings().size());
                assertEquals(l.storedBlocks() * B, l.diffBytes());
                assertTrue(l.storedBlocks() <= 1000 && l.storedBlocks() > 950);
            }
        }
    }
}
