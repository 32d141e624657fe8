package dev.lazyblock.s3;

import dev.lazyblock.testing.UpstreamReads;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.UpstreamProvider;
import dev.lazyblock.upstream.Upstreams;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Map;
import java.util.ServiceLoader;
import org.gaul.s3proxy.junit.S3ProxyExtension;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * {@code Upstreams.open("s3://...")} through the ServiceLoader, configured the way a user
 * would: lazyblock's settings and the SDK's own credentials properties, nothing passed in code.
 */
class UpstreamsProviderTest {
    @RegisterExtension
    final S3ProxyExtension server = TestS3.server();

    private Map<String, String> properties;

    @BeforeEach
    void configure() {
        properties = Map.of(
                S3Config.Setting.ENDPOINT.property(), server.getUri().toString(),
                S3Config.Setting.REGION.property(), "us-east-1",
                S3Config.Setting.PATH_STYLE.property(), "true",
                "aws.accessKeyId", TestS3.ACCESS_KEY,
                "aws.secretAccessKey", TestS3.SECRET);
        properties.forEach(System::setProperty);
    }

    @AfterEach
    void unconfigure() {
        properties.keySet().forEach(System::clearProperty);
    }

    @Test
    void theProviderIsFoundAndOpensS3Urls() throws Exception {
        UpstreamProvider provider = ServiceLoader.load(UpstreamProvider.class).stream()
                .map(ServiceLoader.Provider::get)
                .filter(p -> p.schemes().contains("s3"))
                .findFirst().orElseThrow();
        assertInstanceOf(S3UpstreamProvider.class, provider);

        byte[] bytes = UpstreamReads.randomBytes(41, 300_000);
        UpstreamProvider.StoreAndKey sk = provider.store("s3://lazyblock-test/images/base.img");
        try (var store = sk.store()) {
            assertEquals("images/base.img", sk.key());
            assertEquals("s3://lazyblock-test", store.name());
            try (var admin = S3Config.fromEnvironment().newClient()) {
                admin.createBucket(b -> b.bucket(TestS3.BUCKET));
            }
            store.put(sk.key(), bytes);
        }

        try (Upstream up = Upstreams.open("s3://lazyblock-test/images/base.img")) {
            assertInstanceOf(S3Upstream.class, up);
            assertEquals("s3://lazyblock-test/images/base.img", up.name());
            assertEquals(bytes.length, up.size());
            ByteBuffer dst = ByteBuffer.allocate(1000);
            up.readFully(bytes.length - 1000, dst);
            assertArrayEquals(Arrays.copyOfRange(bytes, bytes.length - 1000, bytes.length), dst.array());
        }
    }

    @Test
    void badS3UrlsFailBeforeAnyClientIsBuilt() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Upstreams.open("s3://Bad_Bucket/k"));
        assertTrue(e.getMessage().contains("bucket name 'Bad_Bucket'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Upstreams.open("s3://bucket/a/../b"));
        assertTrue(e.getMessage().contains("'..' segment"), e.getMessage());
    }
}
