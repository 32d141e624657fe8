package dev.lazyblock.content;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.ChunkTier;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.device.LayerExporter.ContentAddressing;
import dev.lazyblock.device.LayerHeader;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.device.Overlay;
import dev.lazyblock.testing.Seeds;
import dev.lazyblock.upstream.DirectoryStore;
import dev.lazyblock.upstream.ObjectStore;
import dev.lazyblock.upstream.Upstream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.LongConsumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Content-addressed layers on a directory store: published and exported builds upload only the
 * chunks the store lacks, read back byte for byte (random ranges against an in-memory model),
 * a corrupted chunk object is caught by its hash and marks nothing, and a second image's shared
 * chunks come from this host (another open build's cache, or the tier keyed by hash) instead of
 * the store.
 */
class ContentAddressedLayerTest {
    static final int B = 4096;
    static final int CHUNK = 64 << 10;
    static final LongConsumer NONE = n -> { };

    @TempDir
    Path dir;

    /** {@code chunks} chunks of random bytes, with chunk 2 all zeros. */
    static byte[] image(long seed, int chunks, int tail) {
        byte[] b = new byte[chunks * CHUNK + tail];
        new SplittableRandom(seed).nextBytes(b);
        Arrays.fill(b, 2 * CHUNK, 3 * CHUNK, (byte) 0);
        return b;
    }

    Path file(String name, byte[] bytes) throws IOException {
        Path p = dir.resolve(name);
        Files.write(p, bytes);
        return p;
    }

    static LayerExporter.Layer publish(ObjectStore store, Path raw) throws IOException {
        return LayerExporter.publishBase(raw, B, store, "img", NONE, LayerExporter.Compression.NONE,
                ContentAddressing.of(CHUNK));
    }

    LayeredImage open(ObjectStore store, String header, ChunkerOptions options, ChunkTier tier) throws IOException {
        Path caches = Files.createDirectories(dir.resolve("caches"));
        return LayeredImage.open(store, header, ChunkerKind.REQUEST_FIRST, options, (id, size, bs) ->
                SparseCache.create(caches.resolve(UUID.randomUUID() + ".cache"), size, bs, bs), tier);
    }

    @Test
    void aContentAddressedBaseReadsBackAtRandomRangesAndItsZeroChunkIsAHole() throws Exception {
        byte[] model = image(1, 12, 3 * B + 77);
        ObservedStore store = new ObservedStore(dir.resolve("store"));
        LayerExporter.Layer base = publish(store, file("a.raw", model));
        assertNull(base.diffKey(), "a content-addressed build has no diff object");
        assertEquals(LayerHeader.VERSION_CONTENT, base.header().version());
        assertEquals(13, base.content().chunks());
        assertEquals(1, base.content().zeroChunks());
        assertEquals(12, base.content().uploadedChunks());
        assertEquals(13, store.puts.get(), "12 chunk objects, then the header");
        LayerHeader parsed = LayeredImage.readHeader(store, base.headerKey());
        assertEquals(base.header(), parsed);
        Seeds.replayable(Seeds.seeds(1).findFirst().getAsLong(), () -> {
            try (LayeredImage img = open(store, base.headerKey(), ChunkerOptions.DEFAULTS, null)) {
                assertTrue(img.isZero(2 * CHUNK, CHUNK), "the zero chunk is a zero mapping");
                SplittableRandom rnd = new SplittableRandom(7);
                for (int i = 0; i < 300; i++) {
                    int off = rnd.nextInt(model.length);
                    int len = rnd.nextInt(1, Math.min(3 * CHUNK, model.length - off) + 1);
                    byte[] got = new byte[len];
                    img.readAt(got, 0, len, off);
                    if (!Arrays.equals(model, off, off + len, got, 0, len)) {
                        throw new AssertionError("bytes differ in [" + off + ", +" + len + ")");
                    }
                }
            }
        });
        assertEquals(12, store.chunkOpens.get(), "each stored chunk fetched once, the zero chunk never");
    }

    @Test
    void aSecondImageUploadsOnlyTheChunksThatDiffer() throws Exception {
        byte[] a = image(1, 10, 0);
        byte[] b = a.clone();
        for (int c : new int[] {4, 7}) { // two chunks changed
            b[c * CHUNK + 100] ^= 1;
        }
        byte[] extra = new byte[CHUNK];
        new SplittableRandom(3).nextBytes(extra);
        b = Arrays.copyOf(b, b.length + CHUNK); // and one chunk added
        System.arraycopy(extra, 0, b, a.length, CHUNK);
        ObservedStore store = new ObservedStore(dir.resolve("store"));
        LayerExporter.Layer la = publish(store, file("a.raw", a));
        LayerExporter.Layer lb = publish(store, file("b.raw", b));
        assertEquals(9, la.content().uploadedChunks());
        assertEquals(3, lb.content().uploadedChunks(), lb.content().toString());
        assertEquals(7, lb.content().presentChunks());
        assertEquals(3L * CHUNK, lb.content().uploadedBytes());
        try (LayeredImage ia = open(store, la.headerKey(), ChunkerOptions.DEFAULTS, null);
             LayeredImage ib = open(store, lb.headerKey(), ChunkerOptions.DEFAULTS, null)) {
            assertArrayEquals(a, readAll(ia));
            assertArrayEquals(b, readAll(ib));
        }
    }

    @Test
    void aRepeatedChunkIsUploadedOnce() throws Exception {
        byte[] one = new byte[CHUNK];
        new SplittableRandom(5).nextBytes(one);
        byte[] img = new byte[4 * CHUNK];
        for (int i = 0; i < 4; i++) {
            System.arraycopy(one, 0, img, i * CHUNK, CHUNK);
        }
        ObservedStore store = new ObservedStore(dir.resolve("store"));
        LayerExporter.Layer l = publish(store, file("r.raw", img));
        assertEquals(1, l.content().uploadedChunks());
        assertEquals(3, l.content().repeatedChunks());
        try (LayeredImage i = open(store, l.headerKey(), ChunkerOptions.DEFAULTS, null)) {
            assertArrayEquals(img, readAll(i));
        }
    }

    @Test
    void aCorruptedChunkObjectIsCaughtByItsHashAndMarksNothing() throws Exception {
        byte[] model = image(2, 4, 0);
        ObservedStore store = new ObservedStore(dir.resolve("store"));
        LayerExporter.Layer l = publish(store, file("a.raw", model));
        ContentKey key = l.header().builds().getFirst().content().key(1);
        Path object = dir.resolve("store").resolve(key.objectKey("img"));
        byte[] good = Files.readAllBytes(object);
        byte[] bad = good.clone();
        bad[12345] ^= 0x40;
        Files.write(object, bad);
        try (LayeredImage img = open(store, l.headerKey(), ChunkerOptions.DEFAULTS, null)) {
            byte[] got = new byte[B];
            IOException e = assertThrows(IOException.class, () -> img.readAt(got, 0, B, CHUNK + B));
            assertTrue(e instanceof CorruptChunkException || e.getCause() instanceof CorruptChunkException, e.toString());
            assertTrue(e.getMessage().contains(key.hex()) && e.getMessage().contains("not to their name"),
                    e.getMessage());
            SparseCache cache = img.chunkers().getFirst().cache();
            assertFalse(cache.isCached(CHUNK, B), "nothing of the bad chunk is marked");
            Files.write(object, good);
            img.readAt(got, 0, B, CHUNK + B);
            assertArrayEquals(Arrays.copyOfRange(model, CHUNK + B, CHUNK + 2 * B), got, "the next read fetches again");
        }
    }

    @Test
    void aSecondImagesSharedChunksComeFromTheFirstImagesOpenCache() throws Exception {
        byte[] a = image(3, 8, 0);
        byte[] b = a.clone();
        b[5 * CHUNK] ^= 1; // chunk 5 differs
        ObservedStore store = new ObservedStore(dir.resolve("store"));
        LayerExporter.Layer la = publish(store, file("a.raw", a));
        LayerExporter.Layer lb = publish(store, file("b.raw", b));
        ContentIndex index = new ContentIndex();
        ChunkerOptions options = ChunkerOptions.DEFAULTS.withContentIndex(index);
        try (LayeredImage ia = open(store, la.headerKey(), options, null)) {
            assertArrayEquals(a, readAll(ia));
            assertEquals(7, store.chunkOpens.get());
            assertEquals(7, index.chunks());
            try (LayeredImage ib = open(store, lb.headerKey(), options, null)) {
                assertArrayEquals(b, readAll(ib));
            }
            assertEquals(8, store.chunkOpens.get(), "only the chunk that differs came from the store");
            assertEquals(6, index.hits());
            assertEquals(7, index.chunks(), "the closed image's chunks left the index");
        }
        assertEquals(0, index.chunks(), "an index holds only open caches' chunks");
    }

    @Test
    void aSecondImagesSharedChunksComeFromTheTierKeyedByHash() throws Exception {
        byte[] a = image(4, 6, 0);
        byte[] b = a.clone();
        b[0] ^= 1;
        ObservedStore store = new ObservedStore(dir.resolve("store"));
        LayerExporter.Layer la = publish(store, file("a.raw", a));
        LayerExporter.Layer lb = publish(store, file("b.raw", b));
        try (ChunkTier tier = new ChunkTier(dir.resolve("tier"))) {
            try (LayeredImage ia = open(store, la.headerKey(), ChunkerOptions.DEFAULTS, tier)) {
                assertArrayEquals(a, readAll(ia));
            }
            tier.awaitWrites(10_000);
            assertEquals(5, tier.written());
            assertEquals(5, store.chunkOpens.get());
            try (LayeredImage ib = open(store, lb.headerKey(), ChunkerOptions.DEFAULTS, tier)) {
                assertArrayEquals(b, readAll(ib));
            }
            assertEquals(6, store.chunkOpens.get(), "the second image fetched only its own chunk");
            assertEquals(4, tier.hits());
            // A corrupt tier copy is ignored and refetched.
            ContentKey k = lb.header().builds().getFirst().content().key(1);
            Path f = tier.file(k);
            byte[] bytes = Files.readAllBytes(f);
            bytes[10] ^= 1;
            Files.write(f, bytes);
            try (LayeredImage ib = open(store, lb.headerKey(), ChunkerOptions.DEFAULTS, tier)) {
                assertArrayEquals(b, readAll(ib));
            }
            assertEquals(1, tier.bad());
        }
    }

    @Test
    void anOverlayExportedContentAddressedStoresOnlyNewChunksAndReadsBack() throws Exception {
        byte[] model = image(5, 8, 0);
        ObservedStore store = new ObservedStore(dir.resolve("store"));
        LayerExporter.Layer base = publish(store, file("a.raw", model));
        Path caches = Files.createDirectories(dir.resolve("ovl"));
        LayerExporter.Layer layer;
        SplittableRandom rnd = new SplittableRandom(11);
        try (LayeredImage parent = open(store, base.headerKey(), ChunkerOptions.DEFAULTS, null);
             Overlay ov = new Overlay(parent, SparseCache.create(caches.resolve("ov"), model.length))) {
            for (int i = 0; i < 40; i++) {
                int off = rnd.nextInt(model.length - 2 * B);
                byte[] data = new byte[rnd.nextInt(1, 2 * B)];
                rnd.nextBytes(data);
                ov.writeAt(data, 0, data.length, off);
                System.arraycopy(data, 0, model, off, data.length);
            }
            layer = LayerExporter.export(ov, parent.header(), store, "img", dir, NONE, LayerExporter.Compression.NONE,
                    ContentAddressing.of(CHUNK));
        }
        assertNull(layer.diffKey());
        assertTrue(layer.content().uploadedChunks() > 0);
        assertEquals(layer.content().chunks() - layer.content().zeroChunks() - layer.content().repeatedChunks(),
                layer.content().uploadedChunks() + layer.content().presentChunks());
        try (LayeredImage fresh = open(store, layer.headerKey(), ChunkerOptions.DEFAULTS, null)) {
            assertArrayEquals(model, readAll(fresh));
        }
    }

    @Test
    void aChunkSizeThatIsNotAPowerOfTwoOrBelowTheBlockSizeIsRefused() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ContentAddressing.of(100_000));
        assertTrue(e.getMessage().contains("power of two"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ContentAddressing.of(32 << 10));
    }

    static byte[] readAll(LayeredImage img) throws IOException {
        byte[] all = new byte[(int) img.size()];
        assertEquals(all.length, img.readAt(all, 0, all.length, 0));
        return all;
    }
}
