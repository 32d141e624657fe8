package dev.lazyblock.s3;

import dev.lazyblock.testing.Seeds;
import dev.lazyblock.testing.UpstreamReads;
import dev.lazyblock.upstream.Upstream;
import org.gaul.s3proxy.junit.S3ProxyExtension;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.services.s3.S3Client;

/** Random ranged reads of a real object, through both read paths, against the bytes put there. */
class S3UpstreamPropertyTest {
    /** Not a multiple of anything: the last chunk is odd-sized. */
    private static final int SIZE = (3 << 20) + 12_345;

    @RegisterExtension
    final S3ProxyExtension server = TestS3.server();

    private S3Client s3;
    private byte[] object;

    @BeforeEach
    void upload() {
        s3 = TestS3.config(server.getUri()).build().newClient();
        s3.createBucket(b -> b.bucket(TestS3.BUCKET));
        object = UpstreamReads.randomBytes(7, SIZE);
        s3.putObject(b -> b.bucket(TestS3.BUCKET).key("images/a.img"), RequestBody.fromBytes(object));
    }

    @AfterEach
    void closeClient() {
        s3.close();
    }

    @Test
    void randomRangesMatchTheObject() throws Exception {
        for (long seed : Seeds.seeds(4).toArray()) {
            // A fresh upstream per seed: the first read finds the size from a Content-Range.
            Seeds.replayable(seed, () -> {
                try (Upstream up = new S3Upstream(s3, new S3Location(TestS3.BUCKET, "images/a.img"))) {
                    UpstreamReads.assertRandomRangesMatch(up, object, seed, 40);
                }
            });
        }
    }
}
