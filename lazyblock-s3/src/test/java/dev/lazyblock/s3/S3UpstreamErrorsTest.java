package dev.lazyblock.s3;

import dev.lazyblock.testing.UpstreamReads;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.UpstreamException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import org.gaul.s3proxy.junit.S3ProxyExtension;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.services.s3.S3Client;

class S3UpstreamErrorsTest {
    private static final int SIZE = 100_000;

    @RegisterExtension
    final S3ProxyExtension server = TestS3.server();

    private S3Client s3;
    private byte[] object;

    @BeforeEach
    void upload() {
        s3 = TestS3.config(server.getUri()).build().newClient();
        s3.createBucket(b -> b.bucket(TestS3.BUCKET));
        object = UpstreamReads.randomBytes(11, SIZE);
        s3.putObject(b -> b.bucket(TestS3.BUCKET).key("x/obj"), RequestBody.fromBytes(object));
    }

    @AfterEach
    void closeClient() {
        s3.close();
    }

    private S3Upstream upstream(String key) {
        return new S3Upstream(s3, new S3Location(TestS3.BUCKET, key));
    }

    private static void assertMentions(Exception e, String... parts) {
        for (String p : parts) {
            assertTrue(e.getMessage().contains(p), "'" + p + "' missing from: " + e.getMessage());
        }
    }

    @Test
    void missingObjectIsNoSuchObject() {
        try (S3Upstream up = upstream("x/missing")) {
            assertEquals("s3://lazyblock-test/x/missing", up.name());
            UpstreamException e = assertThrows(UpstreamException.class, up::size);
            assertMentions(e, "s3://lazyblock-test/x/missing: finding the size: no such object", "404");
            assertEquals("s3://lazyblock-test/x/missing", e.object());
            e = assertThrows(UpstreamException.class, () -> up.readFully(10, ByteBuffer.allocate(5)));
            assertMentions(e, "reading [10, 15) of s3://lazyblock-test/x/missing", "no such object", "404",
                    "NoSuchKey");
            e = assertThrows(UpstreamException.class, () -> up.openRange(0, 5));
            assertMentions(e, "s3://lazyblock-test/x/missing", "no such object", "404");
        }
    }

    @Test
    void missingBucketIsNoSuchBucket() {
        try (S3Upstream up = new S3Upstream(s3, new S3Location("no-such-bucket", "k"))) {
            UpstreamException e = assertThrows(UpstreamException.class, () -> up.readFully(0, ByteBuffer.allocate(1)));
            assertMentions(e, "s3://no-such-bucket/k", "no such bucket", "404", "NoSuchBucket");
        }
    }

    @Test
    void rangePastTheEndIsAClearError() throws Exception {
        // The server's verdicts: a fresh upstream does not know the size yet.
        try (S3Upstream up = upstream("x/obj")) {
            UpstreamException e = assertThrows(UpstreamException.class,
                    () -> up.readFully(SIZE - 10, ByteBuffer.allocate(20)));
            assertMentions(e, "reading [99990, 100010) of s3://lazyblock-test/x/obj",
                    "runs past the end of the object (100000 bytes)");
        }
        try (S3Upstream up = upstream("x/obj")) {
            UpstreamException e = assertThrows(UpstreamException.class, () -> up.openRange(SIZE - 10, 20));
            assertMentions(e, "runs past the end of the object (100000 bytes)");
        }
        try (S3Upstream up = upstream("x/obj")) {
            UpstreamException e = assertThrows(UpstreamException.class,
                    () -> up.readFully(SIZE, ByteBuffer.allocate(1)));
            assertMentions(e, "reading [100000, 100001) of s3://lazyblock-test/x/obj", "range not satisfiable",
                    "416");
        }
        // Ours, without a request, once the size is known.
        try (S3Upstream up = upstream("x/obj")) {
            assertEquals(SIZE, up.size());
            UpstreamException e = assertThrows(UpstreamException.class, () -> up.openRange(SIZE + 5, 1));
            assertMentions(e, "runs past the end of the object (100000 bytes)");
        }
    }

    @Test
    void lastByteAndEmptyRanges() throws Exception {
        try (S3Upstream up = upstream("x/obj")) {
            ByteBuffer one = ByteBuffer.allocate(1);
            up.readFully(SIZE - 1, one);
            assertEquals(object[SIZE - 1], one.get(0));
            up.readFully(SIZE, ByteBuffer.allocate(0)); // nothing asked, nothing fetched
            try (Upstream.RangeStream s = up.openRange(SIZE, 0)) {
                assertEquals(-1, s.read(ByteBuffer.allocate(4)));
            }
        }
    }

    @Test
    void badArgumentsAreTheCallersBug() {
        try (S3Upstream up = upstream("x/obj")) {
            assertThrows(IllegalArgumentException.class, () -> up.readFully(-1, ByteBuffer.allocate(1)));
            assertThrows(IllegalArgumentException.class, () -> up.openRange(0, -1));
            assertThrows(IllegalArgumentException.class, () -> up.openRange(Long.MAX_VALUE, 2));
        }
    }

    @Test
    void aReplacedObjectIsRefusedNotMixed() throws Exception {
        try (S3Upstream up = upstream("x/obj")) {
            ByteBuffer first = ByteBuffer.allocate(100);
            up.readFully(0, first);
            assertArrayEquals(Arrays.copyOf(object, 100), first.array());
            byte[] other = UpstreamReads.randomBytes(12, SIZE); // same size: only the ETag tells
            s3.putObject(b -> b.bucket(TestS3.BUCKET).key("x/obj"), RequestBody.fromBytes(other));
            UpstreamException e = assertThrows(UpstreamException.class,
                    () -> up.readFully(100, ByteBuffer.allocate(100)));
            assertMentions(e, "s3://lazyblock-test/x/obj", "the object changed", "412");
            assertThrows(UpstreamException.class, () -> up.openRange(0, 10));
            // The version a kept cache checks: the ETag pinned at the first read; the new object has another.
            String now = s3.headObject(b -> b.bucket(TestS3.BUCKET).key("x/obj")).eTag();
            assertNotEquals(now, up.version());
            try (S3Upstream fresh = upstream("x/obj")) {
                assertEquals(now, fresh.version());
            }
        }
    }

    @Test
    void streamCloseIsIdempotentAndEarlyCloseAbandonsTheRest() throws Exception {
        try (S3Upstream up = upstream("x/obj")) {
            Upstream.RangeStream s = up.openRange(0, SIZE);
            ByteBuffer b = ByteBuffer.allocate(10);
            assertEquals(10, s.read(b));
            s.close();
            s.close();
            UpstreamException e = assertThrows(UpstreamException.class, () -> s.read(ByteBuffer.allocate(10)));
            assertMentions(e, "range stream closed after 10 of 100000 bytes");
            // The client still works after an abort.
            ByteBuffer again = ByteBuffer.allocate(SIZE);
            up.readFully(0, again);
            assertArrayEquals(object, again.array());
        }
    }
}
