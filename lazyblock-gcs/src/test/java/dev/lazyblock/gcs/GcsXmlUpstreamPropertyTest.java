package dev.lazyblock.gcs;

import dev.lazyblock.testing.Seeds;
import dev.lazyblock.testing.UpstreamReads;
import dev.lazyblock.upstream.Upstream;
import org.gaul.s3proxy.junit.S3ProxyExtension;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Random ranged reads of a gs:// object through the XML API (served by S3Proxy), both read paths, against the bytes put there. */
class GcsXmlUpstreamPropertyTest {
    /** Not a multiple of anything: the last chunk is odd-sized. */
    private static final int SIZE = (3 << 20) + 12_345;

    @RegisterExtension
    final S3ProxyExtension server = TestGcs.server();

    private GcsConfig config;
    private byte[] object;

    @BeforeEach
    void upload() {
        config = TestGcs.xml(server.getUri()).build();
        object = UpstreamReads.randomBytes(7, SIZE);
        try (var s3 = TestGcs.admin(server.getUri())) {
            s3.createBucket(b -> b.bucket(TestGcs.BUCKET));
            s3.putObject(b -> b.bucket(TestGcs.BUCKET).key("images/a.img"),
                    software.amazon.awssdk.core.sync.RequestBody.fromBytes(object));
        }
    }

    @Test
    void randomRangesMatchTheObject() throws Exception {
        for (long seed : Seeds.seeds(4).toArray()) {
            // A fresh upstream per seed: the first read finds the size from a Content-Range.
            Seeds.replayable(seed, () -> {
                try (Upstream up = GcsXmlUpstream.open(config, new GcsLocation(TestGcs.BUCKET, "images/a.img"))) {
                    UpstreamReads.assertRandomRangesMatch(up, object, seed, 40);
                }
            });
        }
    }
}
