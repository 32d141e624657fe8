package dev.lazyblock.azure;

import dev.lazyblock.testing.UpstreamReads;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.device.LayeredRoundTripTest;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The layered round trip of the device package on Azurite: a base image in a container ->
 * layered image -> overlay -> random writes -> export -> upload (in blocks) -> a fresh layered
 * image of the new layer reads back base + writes; then a third layer on top, read again.
 */
class AzureLayeredRoundTripTest {
    @RegisterExtension
    static final Azurite server = new Azurite();

    @TempDir
    Path dir;

    @Test
    void threeLayersInAzureReadBackAsBasePlusEveryWrite() throws Exception {
        String container = server.newContainer();
        // Small blocks and threshold: the diffs go up as staged blocks and a committed block list.
        AzureConfig config = server.config().blockSize(256 << 10).singleUploadThreshold(256 << 10).build();
        try (AzureObjectStore store = AzureObjectStore.open(config, null, container, "tenants/t1")) {
            LayerExporter.Layer[] layers = LayeredRoundTripTest.roundTrip(store, dir, 2026);
            for (int g = 1; g <= 2; g++) {
                LayerExporter.Layer l = layers[g];
                assertTrue(store.exists(l.headerKey()), l.headerKey());
                assertTrue(l.diffKey() == null || store.exists(l.diffKey()));
                assertEquals(l.storedBlocks() * LayeredRoundTripTest.B, l.diffBytes());
                assertTrue(l.zeroBlocks() > 0 && l.unchangedBlocks() > 0, l.toString());
            }
            assertEquals("az://" + container + "/tenants/t1", store.name());
            System.out.printf("Azure round trip: layer 1 %d blocks stored, %d zero, %d unchanged; layer 2 %d stored%n",
                    layers[1].storedBlocks(), layers[1].zeroBlocks(), layers[1].unchangedBlocks(),
                    layers[2].storedBlocks());
        }
    }

    @Test
    void aFileInBlocksRoundTripsAndDeleteIsIdempotent() throws Exception {
        String container = server.newContainer();
        AzureConfig config = server.config().blockSize(1 << 20).singleUploadThreshold(1 << 20).uploadConcurrency(3)
                .build();
        byte[] bytes = UpstreamReads.randomBytes(5, (5 << 20) + 777);
        Path file = dir.resolve("layer.diff");
        Files.write(file, bytes);
        try (AzureObjectStore store = AzureObjectStore.open(config, null, container, "")) {
            store.put("a/layer.diff", file);
            assertTrue(store.exists("a/layer.diff"));
            var blocks = config.clients(null, container).sync().getBlobClient("a/layer.diff").getBlockBlobClient()
                    .listBlocks(com.azure.storage.blob.models.BlockListType.COMMITTED).getCommittedBlocks();
            assertEquals(6, blocks.size(), "a 5 MiB + 777 B file in 1 MiB blocks");
            try (var up = store.open("a/layer.diff")) {
                assertEquals(bytes.length, up.size());
                java.nio.ByteBuffer all = java.nio.ByteBuffer.allocate(bytes.length);
                up.readFully(0, all);
                org.junit.jupiter.api.Assertions.assertArrayEquals(bytes, all.array());
            }
            store.delete("a/layer.diff");
            assertFalse(store.exists("a/layer.diff"));
            store.delete("a/layer.diff");
        }
    }

    /** Content-addressed layers under a prefix: the second uploads only its new chunk, and gc (listing the container) takes it once its header is gone. */
    @Test
    void contentAddressedChunksAreSharedAndCollectedInAzure() throws Exception {
        String container = server.newContainer();
        int chunk = 64 << 10;
        byte[] a = UpstreamReads.randomBytes(7, 6 * chunk);
        byte[] b = a.clone();
        b[2 * chunk + 5] ^= 1;
        try (AzureObjectStore store = AzureObjectStore.open(server.config().build(), null, container, "tenants/t1")) {
            var cas = LayerExporter.ContentAddressing.of(chunk);
            LayerExporter.Layer la = LayerExporter.publishBase(Files.write(dir.resolve("a"), a), 4096, store, "img",
                    n -> { }, LayerExporter.Compression.NONE, cas);
            LayerExporter.Layer lb = LayerExporter.publishBase(Files.write(dir.resolve("b"), b), 4096, store, "img",
                    n -> { }, LayerExporter.Compression.NONE, cas);
            assertEquals(1, lb.content().uploadedChunks());
            assertEquals(7, store.list("img/chunks/").size());
            assertTrue(store.list("img/").stream().anyMatch(o -> o.key().equals(la.headerKey())),
                    "listed keys are relative to the store's prefix");
            store.delete(lb.headerKey());
            var gc = dev.lazyblock.content.ContentCollector.collect(store, "img", java.time.Duration.ZERO,
                    dev.lazyblock.content.ContentLocks.DEFAULT_TTL, false);
            assertEquals(1, gc.deleted(), gc.toString());
            assertEquals(6, store.list("img/chunks/").size());
            assertTrue(store.list("img/locks/").isEmpty());
        }
    }
}
