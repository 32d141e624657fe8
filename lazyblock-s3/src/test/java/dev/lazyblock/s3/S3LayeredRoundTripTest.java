package dev.lazyblock.s3;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.device.LayeredRoundTripTest;
import java.nio.file.Path;
import org.gaul.s3proxy.junit.S3ProxyExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The layered round trip of the device package, on a real S3 server: a base image in S3 ->
 * layered image -> overlay -> random writes (aligned, unaligned, spanning chunks, zeros, the
 * same bytes again) -> export -> upload -> a fresh layered image of the new layer reads back
 * base + writes; then a third layer on top, read again.
 */
class S3LayeredRoundTripTest {
    @RegisterExtension
    final S3ProxyExtension server = TestS3.server();

    @TempDir
    Path dir;

    @Test
    void threeLayersOnS3ReadBackAsBasePlusEveryWrite() throws Exception {
        try (var direct = TestS3.config(server.getUri()).build().newClient()) {
            direct.createBucket(b -> b.bucket(TestS3.BUCKET));
        }
        try (S3ObjectStore store = S3ObjectStore.open(TestS3.config(server.getUri()).partSize(5 << 20)
                .multipartThreshold(5 << 20).build(), TestS3.BUCKET, "tenants/t1")) {
            LayerExporter.Layer[] layers = LayeredRoundTripTest.roundTrip(store, dir, 2026);
            for (int g = 1; g <= 2; g++) {
                LayerExporter.Layer l = layers[g];
                assertTrue(store.exists(l.headerKey()), l.headerKey());
                assertTrue(l.diffKey() == null || store.exists(l.diffKey()));
                assertEquals(l.storedBlocks() * LayeredRoundTripTest.B, l.diffBytes());
                assertTrue(l.zeroBlocks() > 0 && l.unchangedBlocks() > 0, l.toString());
            }
            System.out.printf("S3 round trip: base %s; layer 1 %d blocks stored, %d zero, %d unchanged, header %d B; "
                    + "layer 2 %d stored, header %d B, %d mappings%n", layers[0].headerKey(), layers[1].storedBlocks(),
                    layers[1].zeroBlocks(), layers[1].unchangedBlocks(), layers[1].headerBytes(),
                    layers[2].storedBlocks(), layers[2].headerBytes(), layers[2].header().mappings().size());
        }
    }
}
