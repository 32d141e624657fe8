package dev.lazyblock.content;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.device.LayerExporter.ContentAddressing;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.testing.Seeds;
import dev.lazyblock.upstream.DirectoryStore;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Many threads open, read and close images that share most of their chunks, all through one
 * {@link ContentIndex}: a chunk is copied from another thread's open cache while that cache may
 * be closing under it. Every byte read must equal the model's, every stale hint must fall back
 * to the store, and once all images are closed the index must be empty.
 */
class ContentIndexStressTest {
    static final int CHUNK = 64 << 10;
    static final int CHUNKS = 24;

    @TempDir
    Path dir;

    @Test
    void readersOpeningAndClosingImagesThatShareChunksAlwaysReadTheRightBytes() throws Exception {
        for (long seed : Seeds.seeds(2).toArray()) {
            Seeds.replayable(seed, () -> run(seed));
        }
    }

    private void run(long seed) throws Exception {
        SplittableRandom setup = new SplittableRandom(seed);
        byte[] base = new byte[CHUNKS * CHUNK];
        setup.nextBytes(base);
        Path work = Files.createDirectories(dir.resolve("s" + seed));
        DirectoryStore store = new DirectoryStore(work.resolve("store"));
        int images = 3;
        byte[][] models = new byte[images][];
        String[] headers = new String[images];
        for (int i = 0; i < images; i++) {
            models[i] = base.clone();
            for (int k = 0; k < 4; k++) { // each image changes a few chunks of its own
                models[i][setup.nextInt(CHUNKS) * CHUNK + setup.nextInt(CHUNK)] ^= (byte) (i + 1);
            }
            Path raw = Files.write(work.resolve("img" + i + ".raw"), models[i]);
            headers[i] = LayerExporter.publishBase(raw, 4096, store, "t", n -> { }, LayerExporter.Compression.NONE,
                    ContentAddressing.of(CHUNK)).headerKey();
        }
        ContentIndex index = new ContentIndex();
        ChunkerOptions options = ChunkerOptions.DEFAULTS.withContentIndex(index);
        Path caches = Files.createDirectories(work.resolve("caches"));
        AtomicReference<Throwable> failure = new AtomicReference<>();
        List<Thread> threads = new ArrayList<>();
        for (int t = 0; t < 8; t++) {
            SplittableRandom rnd = new SplittableRandom(seed * 31 + t);
            threads.add(Thread.ofPlatform().name("stress-" + t).start(() -> {
                try {
                    for (int round = 0; round < 12 && failure.get() == null; round++) {
                        int which = rnd.nextInt(images);
                        try (LayeredImage img = LayeredImage.open(store, headers[which], ChunkerKind.FULL_FETCH, options,
                                (id, size, bs) -> SparseCache.create(caches.resolve(UUID.randomUUID() + ".cache"), size,
                                        bs, bs), null)) {
                            for (int r = 0; r < 1 + rnd.nextInt(12); r++) {
                                int off = rnd.nextInt(models[which].length);
                                int len = rnd.nextInt(1, Math.min(2 * CHUNK, models[which].length - off) + 1);
                                byte[] got = new byte[len];
                                img.readAt(got, 0, len, off);
                                if (!Arrays.equals(models[which], off, off + len, got, 0, len)) {
                                    throw new AssertionError("image " + which + " differs in [" + off + ", +" + len + ")");
                                }
                            }
                        }
                    }
                } catch (Throwable e) {
                    failure.compareAndSet(null, e);
                }
            }));
        }
        for (Thread t : threads) {
            t.join(TimeUnit.MINUTES.toMillis(2));
            assertTrue(!t.isAlive(), t.getName() + " still running after 2 minutes");
        }
        if (failure.get() != null) {
            throw new AssertionError("a reader failed", failure.get());
        }
        assertTrue(index.hits() > 0, "images opened at once shared chunks: " + index);
        assertEquals(0, index.chunks(), "all images closed: the index holds nothing");
    }
}
