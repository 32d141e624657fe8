package dev.lazyblock.content;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.device.LayerExporter.ContentAddressing;
import dev.lazyblock.device.LayerHeader;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.testing.Await;
import dev.lazyblock.upstream.DirectoryStore;
import dev.lazyblock.upstream.ObjectStore;
import dev.lazyblock.upstream.Upstream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Garbage collection of content-addressed chunks: it deletes exactly the chunks no header
 * references, keeps young ones for the grace period, deletes nothing when a header does not
 * parse, and never races an export: a collection that finds an export running gives up, and an
 * export that finds a collection running waits for it, so every header's chunks exist.
 */
class ContentCollectorTest {
    static final int CHUNK = 64 << 10;
    static final Duration TTL = Duration.ofMinutes(10);

    @TempDir
    Path dir;

    /** Not the common pool: on 2 cores it has one thread, which a held collection would keep. */
    private static void onItsOwnThread(Runnable r) {
        Thread.ofPlatform().daemon().start(r);
    }

    /** Publishes {@code raw} content-addressed on a thread of its own. */
    private static CompletableFuture<LayerExporter.Layer> exportAsync(ObjectStore store, Path raw) {
        return CompletableFuture.supplyAsync(() -> {
            try {
                return publish(store, raw);
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        }, ContentCollectorTest::onItsOwnThread);
    }

    private Path raw(String name, byte[] bytes) throws IOException {
        return Files.write(dir.resolve(name), bytes);
    }

    private static LayerExporter.Layer publish(ObjectStore store, Path raw) throws IOException {
        return LayerExporter.publishBase(raw, 4096, store, "t", n -> { }, LayerExporter.Compression.NONE,
                ContentAddressing.of(CHUNK));
    }

    private static Set<ContentKey> keys(LayerHeader h) {
        return new HashSet<>(h.builds().getFirst().content().keys());
    }

    private static byte[][] images() {
        byte[] a = new byte[10 * CHUNK];
        new SplittableRandom(1).nextBytes(a);
        byte[] b = a.clone();
        for (int c : new int[] {1, 4, 8}) {
            b[c * CHUNK + 9] ^= 1;
        }
        return new byte[][] {a, b};
    }

    private void assertReadsBack(ObjectStore store, String header, byte[] model) throws IOException {
        Path caches = Files.createDirectories(dir.resolve("caches"));
        try (LayeredImage img = LayeredImage.open(store, header, ChunkerKind.FULL_FETCH, ChunkerOptions.DEFAULTS,
                (id, size, bs) -> SparseCache.create(caches.resolve(UUID.randomUUID() + ".cache"), size, bs, bs), null)) {
            byte[] all = new byte[model.length];
            img.readAt(all, 0, all.length, 0);
            assertArrayEquals(model, all);
        }
    }

    private int chunkObjects(ObjectStore store) throws IOException {
        return store.list("t/chunks/").size();
    }

    @Test
    void itDeletesExactlyTheChunksNoHeaderReferences() throws Exception {
        byte[][] img = images();
        ObservedStore store = new ObservedStore(dir.resolve("store"));
        LayerExporter.Layer a = publish(store, raw("a", img[0]));
        LayerExporter.Layer b = publish(store, raw("b", img[1]));
        Set<ContentKey> onlyB = keys(b.header());
        onlyB.removeAll(keys(a.header()));
        assertEquals(13, chunkObjects(store));
        store.delete(b.headerKey());
        ContentCollector.Result dry = ContentCollector.collect(store, "t", Duration.ZERO, TTL, true);
        assertEquals(onlyB.size(), dry.deleted());
        assertEquals(13, chunkObjects(store), "a dry run deletes nothing");
        ContentCollector.Result r = ContentCollector.collect(store, "t", Duration.ZERO, TTL, false);
        assertEquals(1, r.headers());
        assertEquals(onlyB.size(), r.deleted(), r.toString());
        assertEquals(3L * CHUNK, r.deletedBytes());
        assertEquals(10, r.live());
        assertEquals(10, chunkObjects(store));
        for (ContentKey k : keys(a.header())) {
            assertTrue(store.exists(k.objectKey("t")), "a live chunk was kept: " + k);
        }
        assertReadsBack(store, a.headerKey(), img[0]);
        assertEquals(0, ContentCollector.collect(store, "t", Duration.ZERO, TTL, false).deleted());
        assertTrue(store.list("t/locks/").isEmpty(), "no lock left behind");
    }

    @Test
    void theGracePeriodKeepsYoungUnreferencedChunks() throws Exception {
        byte[][] img = images();
        ObservedStore store = new ObservedStore(dir.resolve("store"));
        publish(store, raw("a", img[0]));
        LayerExporter.Layer b = publish(store, raw("b", img[1]));
        store.delete(b.headerKey());
        ContentCollector.Result r = ContentCollector.collect(store, "t", Duration.ofHours(1), TTL, false);
        assertEquals(0, r.deleted());
        assertEquals(3, r.keptByGrace());
        assertEquals(13, chunkObjects(store));
    }

    @Test
    void aHeaderThatDoesNotParseMeansNothingIsDeleted() throws Exception {
        byte[][] img = images();
        ObservedStore store = new ObservedStore(dir.resolve("store"));
        LayerExporter.Layer b = publish(store, raw("b", img[1]));
        store.delete(b.headerKey());
        store.put("t/broken.header", new byte[100]);
        IOException e = assertThrows(IOException.class,
                () -> ContentCollector.collect(store, "t", Duration.ZERO, TTL, false));
        assertTrue(e.getMessage().contains("t/broken.header") && e.getMessage().contains("nothing deleted"),
                e.getMessage());
        assertEquals(10, chunkObjects(store));
        assertTrue(store.list("t/locks/").isEmpty(), "the collection's lock is removed");
    }

    @Test
    void aCollectionDuringAnExportGivesUpAndDeletesNothing() throws Exception {
        byte[][] img = images();
        ObservedStore store = new ObservedStore(dir.resolve("store"));
        LayerExporter.Layer a = publish(store, raw("a", img[0]));
        store.delete(a.headerKey()); // all of A's chunks are now garbage, and B reuses most of them
        store.putGate = new CountDownLatch(1);
        Path rb = raw("b", img[1]);
        CompletableFuture<LayerExporter.Layer> export = exportAsync(store, rb);
        assertTrue(store.putHeld.await(30, TimeUnit.SECONDS), "the export reached its first upload");
        ContentCollector.BusyException busy = assertThrows(ContentCollector.BusyException.class,
                () -> ContentCollector.collect(store, "t", Duration.ZERO, TTL, false));
        assertTrue(busy.getMessage().contains("in progress") && busy.getMessage().contains("nothing deleted"),
                busy.getMessage());
        assertEquals(10, chunkObjects(store), "the chunks the export found present are all still there");
        store.putGate.countDown();
        LayerExporter.Layer b = export.get(60, TimeUnit.SECONDS);
        assertEquals(7, b.content().presentChunks());
        assertReadsBack(store, b.headerKey(), img[1]);
        // The export is done: now A's chunks that B does not use go.
        assertEquals(3, ContentCollector.collect(store, "t", Duration.ZERO, TTL, false).deleted());
        assertReadsBack(store, b.headerKey(), img[1]);
    }

    @Test
    void anExportDuringACollectionWaitsForItAndUploadsWhatItDeleted() throws Exception {
        byte[][] img = images();
        ObservedStore store = new ObservedStore(dir.resolve("store"));
        LayerExporter.Layer a = publish(store, raw("a", img[0]));
        store.delete(a.headerKey());
        store.deleteGate = new CountDownLatch(1);
        CompletableFuture<ContentCollector.Result> gc = CompletableFuture.supplyAsync(() -> {
            try {
                return ContentCollector.collect(store, "t", Duration.ZERO, TTL, false);
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        }, ContentCollectorTest::onItsOwnThread);
        assertTrue(store.deleteHeld.await(30, TimeUnit.SECONDS), "the collection reached its first delete");
        Path rb = raw("b", img[1]);
        int listedBefore = store.lockListings.get();
        CompletableFuture<LayerExporter.Layer> export = exportAsync(store, rb);
        // The export looks at the locks again and again: it is waiting for the collection.
        Await.until(() -> store.lockListings.get() >= listedBefore + 5, Duration.ofSeconds(30),
                () -> "the export polls the collection's lock");
        assertFalse(export.isDone(), "the export waits while the collection runs");
        store.deleteGate.countDown();
        assertEquals(10, gc.get(60, TimeUnit.SECONDS).deleted());
        LayerExporter.Layer b = export.get(60, TimeUnit.SECONDS);
        assertEquals(10, b.content().uploadedChunks(), "it found nothing present, so it uploaded every chunk");
        assertReadsBack(store, b.headerKey(), img[1]);
    }
}
