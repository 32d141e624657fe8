package dev.lazyblock.gcs;

import dev.lazyblock.testing.UpstreamReads;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.testing.FaultProxy;
import dev.lazyblock.testing.FaultProxy.Fault;
import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.UpstreamException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.gaul.s3proxy.junit.S3ProxyExtension;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import software.amazon.awssdk.core.sync.RequestBody;

/**
 * gs:// through the XML API: a missing object and a range past the end say so and name
 * gs://bucket/object (never s3://); a connection dropped mid-body (a TCP proxy resets it)
 * resumes from the first byte not received, and the reader gets the right bytes.
 */
class GcsXmlErrorsTest {
    private static final String KEY = "images/x.img";

    @RegisterExtension
    final S3ProxyExtension server = TestGcs.server();

    private byte[] bytes;

    @BeforeEach
    void upload() {
        bytes = UpstreamReads.randomBytes(5, 2 << 20);
        try (var s3 = TestGcs.admin(server.getUri())) {
            s3.createBucket(b -> b.bucket(TestGcs.BUCKET));
            s3.putObject(b -> b.bucket(TestGcs.BUCKET).key(KEY), RequestBody.fromBytes(bytes));
        }
    }

    @Test
    void aMissingObjectNamesItsGsUrl() throws Exception {
        try (Upstream up = GcsXmlUpstream.open(TestGcs.xml(server.getUri()).build(),
                new GcsLocation(TestGcs.BUCKET, "images/missing.img"))) {
            UpstreamException e = assertThrows(UpstreamException.class, () -> up.readFully(0, ByteBuffer.allocate(10)));
            String m = e.getMessage();
            assertTrue(m.startsWith("reading [0, 10) of gs://" + TestGcs.BUCKET + "/images/missing.img: no such object"),
                    m);
            assertFalse(m.contains("s3://"), m);
            assertEquals("gs://" + TestGcs.BUCKET + "/images/missing.img", e.object());
        }
        try (Upstream up = GcsXmlUpstream.open(TestGcs.xml(server.getUri()).build(),
                new GcsLocation(TestGcs.BUCKET, KEY))) {
            up.size();
            UpstreamException e = assertThrows(UpstreamException.class, () -> up.openRange(bytes.length - 5, 10));
            assertTrue(e.getMessage().contains("runs past the end of the object"), e.getMessage());
        }
    }

    @Test
    void aDroppedConnectionResumesWhereItStopped() throws Exception {
        try (FaultProxy proxy = new FaultProxy(server.getUri())) {
            AtomicInteger gets = new AtomicInteger();
            proxy.rule(r -> r.isFor("GET", KEY) && gets.incrementAndGet() == 1 ? Fault.resetAfterBody(300_000)
                    : Fault.PASS);
            GcsConfig config = TestGcs.xml(proxy.uri()).retryBaseDelay(Duration.ofMillis(20)).build();
            try (Upstream up = GcsXmlUpstream.open(config, new GcsLocation(TestGcs.BUCKET, KEY))) {
                byte[] got = UpstreamReads.readStream(up, 100, bytes.length - 100, new java.util.Random(4), "openRange");
                assertArrayEquals(Arrays.copyOfRange(bytes, 100, bytes.length), got);
            }
            List<FaultProxy.Request> requests = proxy.requests("GET", KEY);
            assertEquals(2, requests.size(), requests.toString());
            assertTrue(requests.get(1).rangeStart() > 100, requests.toString());
            assertTrue(requests.get(1).header("if-match") != null, requests.toString());
        }
    }
}
