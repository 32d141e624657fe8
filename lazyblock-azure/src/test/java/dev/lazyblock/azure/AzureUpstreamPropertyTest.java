package dev.lazyblock.azure;

import com.azure.core.util.BinaryData;
import dev.lazyblock.testing.Seeds;
import dev.lazyblock.testing.UpstreamReads;
import dev.lazyblock.upstream.Upstream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Random ranged reads of a real blob (in Azurite), through both read paths, against the bytes put there. */
class AzureUpstreamPropertyTest {
    /** Not a multiple of anything: the last chunk is odd-sized. */
    private static final int SIZE = (3 << 20) + 12_345;

    @RegisterExtension
    static final Azurite server = new Azurite();

    private AzureConfig config;
    private String container;
    private byte[] object;

    @BeforeEach
    void upload() {
        config = server.config().build();
        container = server.newContainer();
        object = UpstreamReads.randomBytes(7, SIZE);
        config.clients(null, container).sync().getBlobClient("images/a.img").upload(BinaryData.fromBytes(object));
    }

    @Test
    void randomRangesMatchTheBlob() throws Exception {
        for (long seed : Seeds.seeds(4).toArray()) {
            // A fresh upstream per seed: the first read finds the size from a Content-Range.
            Seeds.replayable(seed, () -> {
                try (Upstream up = AzureBlobUpstream.open(config, new AzureLocation(container, "images/a.img"))) {
                    UpstreamReads.assertRandomRangesMatch(up, object, seed, 40);
                }
            });
        }
    }
}
