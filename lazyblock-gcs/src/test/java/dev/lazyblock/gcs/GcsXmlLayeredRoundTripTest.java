package dev.lazyblock.gcs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.device.LayeredRoundTripTest;
import java.nio.file.Path;
import org.gaul.s3proxy.junit.S3ProxyExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/** The layered round trip of the device package through gs:// and the XML API (S3Proxy). */
class GcsXmlLayeredRoundTripTest {
    @RegisterExtension
    final S3ProxyExtension server = TestGcs.server();

    @TempDir
    Path dir;

    @Test
    void threeLayersThroughTheXmlApiReadBackAsBasePlusEveryWrite() throws Exception {
        try (var s3 = TestGcs.admin(server.getUri())) {
            s3.createBucket(b -> b.bucket(TestGcs.BUCKET));
        }
        try (GcsXmlObjectStore store = GcsXmlObjectStore.open(TestGcs.xml(server.getUri()).build(), TestGcs.BUCKET,
                "tenants/t1")) {
            assertEquals("gs://" + TestGcs.BUCKET + "/tenants/t1", store.name());
            LayerExporter.Layer[] layers = LayeredRoundTripTest.roundTrip(store, dir, 2027);
            for (int g = 1; g <= 2; g++) {
                LayerExporter.Layer l = layers[g];
                assertTrue(store.exists(l.headerKey()), l.headerKey());
                assertTrue(l.diffKey() == null || store.exists(l.diffKey()));
                assertEquals(l.storedBlocks() * LayeredRoundTripTest.B, l.diffBytes());
            }
        }
    }
}
