package dev.lazyblock.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.upstream.DirectoryStore;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.UUID;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Layered images whose builds come from a {@link LayeredImage.BuildOpener}: one chunker per build, shared. */
class SharedBuildsTest {
    private static final int B = LayeredRoundTripTest.B;

    @TempDir
    Path dir;

    @Test
    void twoImagesOverOneBuildShareItsChunkerAndEachCloseIsARelease() throws IOException {
        byte[] model = new byte[2 * (4 << 20) + 3 * B];
        new SplittableRandom(5).nextBytes(model);
        Path raw = dir.resolve("base.raw");
        Files.write(raw, model);
        DirectoryStore store = new DirectoryStore(Files.createDirectories(dir.resolve("store")));
        LayerExporter.Layer base = LayerExporter.publishBase(raw, B, store, "img");

        Map<String, LayeredImage.OpenedBuild> opened = new HashMap<>();
        List<String> released = new ArrayList<>();
        LayeredImage.BuildOpener shared = (s, diffKey, build, blockSize) -> {
            LayeredImage.OpenedBuild o = opened.get(diffKey);
            if (o == null) {
                o = LayeredImage.openBuild(s, diffKey, build, blockSize, ChunkerKind.FULL_FETCH, ChunkerOptions.DEFAULTS,
                        (id, size, bs) -> SparseCache.create(dir.resolve(UUID.randomUUID() + ".cache"), size, bs, bs),
                        null);
                opened.put(diffKey, o);
            }
            return new Reference(o.chunker(), () -> released.add(diffKey));
        };
        try (LayeredImage a = LayeredImage.open(store, base.headerKey(), shared);
             LayeredImage b = LayeredImage.open(store, base.headerKey(), shared)) {
            assertEquals(1, opened.size(), "the build was opened once for both images");
            LayeredRoundTripTest.assertImage(a, model);
            LayeredRoundTripTest.assertImage(b, model);
            SparseCache cache = opened.values().iterator().next().chunker().cache();
            assertTrue(cache.isCached(0, model.length), "one cache holds what both read");
        }
        assertEquals(2, released.size(), "each image gave its reference back: " + released);
        assertTrue(!opened.values().iterator().next().chunker().cache().isClosed(),
                "the shared chunker is the opener's to close, not the images'");
        opened.values().forEach(LayeredImage.OpenedBuild::close);
    }

    @Test
    void aChunkerOfAnotherSizeThanTheHeaderSaysIsRefusedAndGivenBack() throws IOException {
        DirectoryStore store = new DirectoryStore(Files.createDirectories(dir.resolve("store2")));
        LayerExporter.Layer small = publish(store, "small", 4 << 20, 6);
        LayerExporter.Layer large = publish(store, "large", (4 << 20) + B, 7);
        LayerHeader.Build largeBuild = LayeredImage.readHeader(store, large.headerKey()).builds().get(0);
        LayeredImage.OpenedBuild wrong = LayeredImage.openBuild(store, LayeredImage.diffKey("large", largeBuild.id()),
                largeBuild, B, ChunkerKind.FULL_FETCH, ChunkerOptions.DEFAULTS,
                (id, size, bs) -> SparseCache.create(dir.resolve(UUID.randomUUID() + ".cache"), size, bs, bs), null);
        List<String> released = new ArrayList<>();
        try {
            IOException e = assertThrows(IOException.class, () -> LayeredImage.open(store, small.headerKey(),
                    (s, diffKey, build, blockSize) -> new Reference(wrong.chunker(), () -> released.add(diffKey))));
            assertTrue(e.getMessage().contains("holds " + ((4 << 20) + B) + " bytes, the header says " + (4 << 20)),
                    e.getMessage());
            assertEquals(1, released.size(), "the refused chunker was given back");
        } finally {
            wrong.close();
        }
    }

    private LayerExporter.Layer publish(DirectoryStore store, String name, int size, long seed) throws IOException {
        byte[] model = new byte[size];
        new SplittableRandom(seed).nextBytes(model);
        Path raw = dir.resolve(name + ".raw");
        Files.write(raw, model);
        return LayerExporter.publishBase(raw, B, store, name);
    }

    /** A reference to a chunker: reads go through, close runs {@code onClose} instead of closing it. */
    private record Reference(Chunker chunker, Runnable onClose) implements Chunker {
        @Override
        public java.lang.foreign.MemorySegment slice(long off, long len) throws IOException {
            return chunker.slice(off, len);
        }

        @Override
        public SparseCache cache() {
            return chunker.cache();
        }

        @Override
        public long size() {
            return chunker.size();
        }

        @Override
        public int blockSize() {
            return chunker.blockSize();
        }

        @Override
        public long readAt(java.lang.foreign.MemorySegment dst, long off) throws IOException {
            return chunker.readAt(dst, off);
        }

        @Override
        public void close() {
            onClose.run();
        }
    }
}
