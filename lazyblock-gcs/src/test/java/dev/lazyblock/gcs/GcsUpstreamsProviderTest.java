package dev.lazyblock.gcs;

import dev.lazyblock.testing.UpstreamReads;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.UpstreamException;
import dev.lazyblock.upstream.UpstreamProvider;
import dev.lazyblock.upstream.Upstreams;
import java.net.ServerSocket;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import org.gaul.s3proxy.junit.S3ProxyExtension;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * {@code Upstreams.open("gs://...")} through the ServiceLoader, configured by system properties:
 * the XML API against S3Proxy end to end; the JSON API (google-cloud-storage) against a port
 * where nothing listens, which shows the JSON client loads with this module's dependencies and
 * gives up within the call timeout with an error naming the object.
 */
class GcsUpstreamsProviderTest {
    @RegisterExtension
    final S3ProxyExtension server = TestGcs.server();

    private final Map<String, String> properties = new HashMap<>();

    private void set(GcsConfig.Setting s, String value) {
        properties.put(s.property(), value);
        System.setProperty(s.property(), value);
    }

    @AfterEach
    void unconfigure() {
        properties.keySet().forEach(System::clearProperty);
    }

    @Test
    void gsUrlsThroughTheXmlApi() throws Exception {
        set(GcsConfig.Setting.API, "xml");
        set(GcsConfig.Setting.ENDPOINT, server.getUri().toString());
        set(GcsConfig.Setting.HMAC_ACCESS_ID, TestGcs.HMAC_ID);
        set(GcsConfig.Setting.HMAC_SECRET, TestGcs.HMAC_SECRET);
        try (var s3 = TestGcs.admin(server.getUri())) {
            s3.createBucket(b -> b.bucket(TestGcs.BUCKET));
        }
        byte[] bytes = UpstreamReads.randomBytes(41, 300_000);
        String url = "gs://" + TestGcs.BUCKET + "/images/base.img";
        UpstreamProvider provider = new GcsUpstreamProvider();
        UpstreamProvider.StoreAndKey sk = provider.store(url);
        try (var store = sk.store()) {
            assertEquals("images/base.img", sk.key());
            assertEquals("gs://" + TestGcs.BUCKET, store.name());
            store.put(sk.key(), bytes);
        }
        try (Upstream up = Upstreams.open(url)) {
            assertInstanceOf(GcsXmlUpstream.class, up);
            assertEquals(url, up.name());
            assertEquals(bytes.length, up.size());
            ByteBuffer dst = ByteBuffer.allocate(1000);
            up.readFully(bytes.length - 1000, dst);
            assertArrayEquals(Arrays.copyOfRange(bytes, bytes.length - 1000, bytes.length), dst.array());
        }
    }

    @Test
    void theJsonClientGivesUpWithinTheCallTimeoutNamingTheObject() throws Exception {
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort(); // closed again: connections are refused
        }
        set(GcsConfig.Setting.ENDPOINT, "http://127.0.0.1:" + port);
        set(GcsConfig.Setting.ANONYMOUS, "true");
        set(GcsConfig.Setting.PROJECT, "lazyblock-test");
        set(GcsConfig.Setting.CALL_TIMEOUT, "3s");
        set(GcsConfig.Setting.RETRY_BASE_DELAY, "50ms");
        try (Upstream up = Upstreams.open("gs://some-bucket/images/a.img")) {
            assertInstanceOf(GcsUpstream.class, up);
            long t0 = System.nanoTime();
            UpstreamException e = assertThrows(UpstreamException.class, up::size);
            long ms = (System.nanoTime() - t0) / 1_000_000;
            assertTrue(e.getMessage().startsWith("reading [0, 0) of gs://some-bucket/images/a.img: I/O error ("),
                    e.getMessage());
            assertTrue(ms < 10_000, "gave up after " + ms + " ms");
        }
    }

    @Test
    void badGsUrlsFailBeforeAnyClientIsBuilt() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Upstreams.open("gs://Bad_Bucket/k"));
        assertTrue(e.getMessage().contains("bucket name 'Bad_Bucket'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Upstreams.open("gs://bucket/a/../b"));
        assertTrue(e.getMessage().contains("'..' segment"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Upstreams.open("gs://bucket/a?X-Goog-Signature=abc"));
        assertTrue(e.getMessage().contains("query string") && !e.getMessage().contains("abc"), e.getMessage());
    }
}
