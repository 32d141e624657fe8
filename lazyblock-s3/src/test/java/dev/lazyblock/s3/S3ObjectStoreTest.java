package dev.lazyblock.s3;

import dev.lazyblock.testing.UpstreamReads;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.testing.FaultProxy;
import dev.lazyblock.testing.Await;
import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.UpstreamException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.gaul.s3proxy.junit.S3ProxyExtension;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.model.MultipartUpload;
import software.amazon.awssdk.services.s3.model.S3Object;

class S3ObjectStoreTest {
    private static final long MIB = 1 << 20;

    @RegisterExtension
    final S3ProxyExtension server = TestS3.server();

    @TempDir
    Path dir;

    /** Straight to S3Proxy, for the test's own checks. */
    private S3Client direct;

    @BeforeEach
    void setUp() {
        direct = TestS3.config(server.getUri()).build().newClient();
        direct.createBucket(b -> b.bucket(TestS3.BUCKET));
    }

    @AfterEach
    void tearDown() {
        direct.close();
    }

    private S3Config smallParts(java.net.URI endpoint) {
        return TestS3.config(endpoint).partSize(5 * MIB).multipartThreshold(5 * MIB).uploadConcurrency(3).build();
    }

    private List<MultipartUpload> pendingUploads() {
        return direct.listMultipartUploads(b -> b.bucket(TestS3.BUCKET)).uploads();
    }

    private List<String> keys() {
        return direct.listObjectsV2(b -> b.bucket(TestS3.BUCKET)).contents().stream().map(S3Object::key).toList();
    }

    @Test
    void roundTripOfAMultipartFileAndASmallObject() throws Exception {
        byte[] image = UpstreamReads.randomBytes(31, (int) (40 * MIB + 12_345));
        Path file = Files.write(dir.resolve("layer.img"), image);
        byte[] header = "lazyblock header v1".getBytes(java.nio.charset.StandardCharsets.UTF_8);
        try (S3ObjectStore store = S3ObjectStore.open(smallParts(server.getUri()), TestS3.BUCKET, "builds/b1")) {
            assertEquals("s3://lazyblock-test/builds/b1", store.name());
            store.put("layer.img", file);
            store.put("header", header);
            assertTrue(store.exists("layer.img"));
            assertTrue(store.exists("header"));
            assertFalse(store.exists("nothing-here"));
            assertEquals(List.of("builds/b1/header", "builds/b1/layer.img"), keys());
            // Uploaded in parts: S3's ETag of a multipart object is "<md5 of md5s>-<parts>".
            String etag = direct.headObject(b -> b.bucket(TestS3.BUCKET).key("builds/b1/layer.img")).eTag();
            assertTrue(etag.replace("\"", "").endsWith("-9"), "ETag of a 9-part upload: " + etag);
            assertTrue(pendingUploads().isEmpty());

            try (Upstream up = store.open("layer.img")) {
                assertEquals("s3://lazyblock-test/builds/b1/layer.img", up.name());
                assertEquals(image.length, up.size());
                Random r = new Random(5);
                for (int i = 0; i < 30; i++) {
                    int len = 1 + r.nextInt((int) (6 * MIB));
                    int off = i == 0 ? image.length - len : r.nextInt(image.length - len + 1);
                    ByteBuffer dst = ByteBuffer.allocate(len);
                    up.readFully(off, dst);
                    assertArrayEquals(Arrays.copyOfRange(image, off, off + len), dst.array(),
                            "[" + off + ", " + (off + len) + ")");
                }
            }
            try (Upstream up = store.open("header")) {
                ByteBuffer dst = ByteBuffer.allocate(header.length);
                up.readFully(0, dst);
                assertArrayEquals(header, dst.array());
            }

            store.delete("layer.img");
            store.delete("layer.img"); // missing: not an error
            assertFalse(store.exists("layer.img"));
            assertEquals(List.of("builds/b1/header"), keys());
        }
    }

    @Test
    void aSmallFileIsOnePut() throws Exception {
        byte[] bytes = UpstreamReads.randomBytes(32, (int) (5 * MIB)); // at the threshold: not above it
        Path file = Files.write(dir.resolve("small"), bytes);
        try (S3ObjectStore store = S3ObjectStore.open(smallParts(server.getUri()), TestS3.BUCKET, "")) {
            store.put("a/small", file);
            String etag = direct.headObject(b -> b.bucket(TestS3.BUCKET).key("a/small")).eTag();
            assertFalse(etag.contains("-"), "a single PutObject's ETag: " + etag);
            try (Upstream up = store.open("a/small")) {
                ByteBuffer dst = ByteBuffer.allocate(bytes.length);
                up.readFully(0, dst);
                assertArrayEquals(bytes, dst.array());
            }
        }
    }

    @Test
    void aFailedMultipartUploadLeavesNothingBehind() throws Exception {
        // Listing pending uploads works here, so an empty list below means something.
        String probe = direct.createMultipartUpload(b -> b.bucket(TestS3.BUCKET).key("probe")).uploadId();
        assertEquals(List.of(probe), pendingUploads().stream().map(MultipartUpload::uploadId).toList());
        direct.abortMultipartUpload(b -> b.bucket(TestS3.BUCKET).key("probe").uploadId(probe));
        assertTrue(pendingUploads().isEmpty());

        Path file = Files.write(dir.resolve("big"), UpstreamReads.randomBytes(33, (int) (30 * MIB)));
        try (FaultProxy proxy = new FaultProxy(server.getUri())) {
            // Two parts' worth goes through; from then on every upload of more than 256 KiB on a
            // connection is reset, on every retry: parts fail, small requests (the abort) pass.
            proxy.failUploadsAfter(12 * MIB, 256 * 1024);
            S3Config config = TestS3.config(proxy.uri()).partSize(5 * MIB).multipartThreshold(5 * MIB)
                    .uploadConcurrency(2).maxAttempts(2).build();
            try (S3ObjectStore store = S3ObjectStore.open(config, TestS3.BUCKET, "")) {
                IOException e = assertTimeoutPreemptively(Duration.ofSeconds(60),
                        () -> assertThrows(IOException.class, () -> store.put("layers/big", file)));
                assertTrue(e.getMessage().startsWith("putting s3://lazyblock-test/layers/big: part "), e.getMessage());
                assertEquals(0, e.getSuppressed().length, "the abort failed: " + Arrays.toString(e.getSuppressed()));
                assertTrue(proxy.resets() >= 2, "resets: " + proxy.resets());
            }
        }
        assertTrue(pendingUploads().isEmpty(), "pending uploads left: " + pendingUploads());
        assertTrue(keys().isEmpty(), "objects left: " + keys());
    }

    @Test
    void aFileTruncatedDuringTheUploadIsRefusedAndAborted() throws Exception {
        Path file = Files.write(dir.resolve("shrinks"), UpstreamReads.randomBytes(34, (int) (11 * MIB)));
        try (FaultProxy proxy = new FaultProxy(server.getUri())) {
            S3Config config = TestS3.config(proxy.uri()).partSize(5 * MIB).multipartThreshold(5 * MIB)
                    .uploadConcurrency(1).build();
            // Hold the upload 1 MiB into part 1, truncate the file in the middle of part 2, go on.
            proxy.holdUploadsAfter(1 * MIB);
            try (S3ObjectStore store = S3ObjectStore.open(config, TestS3.BUCKET, "")) {
                var put = java.util.concurrent.CompletableFuture.supplyAsync(() -> {
                    try {
                        store.put("layers/shrinks", file);
                        return null;
                    } catch (IOException e) {
                        return e;
                    }
                });
                Await.until(proxy::holding, Duration.ofSeconds(30), () -> "upload held by the proxy");
                try (var ch = java.nio.channels.FileChannel.open(file, java.nio.file.StandardOpenOption.WRITE)) {
                    ch.truncate(7 * MIB);
                }
                proxy.release();
                IOException e = put.get(60, java.util.concurrent.TimeUnit.SECONDS);
                assertTrue(e != null, "a truncated file was uploaded");
                assertTrue(e.getMessage().startsWith("putting s3://lazyblock-test/layers/shrinks: part 2"),
                        e.getMessage());
                assertTrue(e.getMessage().contains("the file ended at byte 7340032"), e.getMessage());
            }
        }
        assertTrue(pendingUploads().isEmpty(), "pending uploads left: " + pendingUploads());
        assertTrue(keys().isEmpty(), "objects left: " + keys());
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "/abs", "a//b", "a/../b", "..", "trailing/", "back\\slash"})
    void badKeysFailBeforeAnyRequest(String key) throws Exception {
        try (FaultProxy proxy = new FaultProxy(server.getUri());
             S3ObjectStore store = S3ObjectStore.open(TestS3.config(proxy.uri()).build(), TestS3.BUCKET, "p")) {
            Path file = Files.write(dir.resolve("f"), new byte[10]);
            assertThrows(IllegalArgumentException.class, () -> store.open(key));
            assertThrows(IllegalArgumentException.class, () -> store.put(key, file));
            assertThrows(IllegalArgumentException.class, () -> store.put(key, new byte[1]));
            assertThrows(IllegalArgumentException.class, () -> store.exists(key));
            assertThrows(IllegalArgumentException.class, () -> store.delete(key));
            assertEquals(0, proxy.acceptedConnections(), "a request was made");
        }
    }

    @Test
    void tooLongKeysAndBadBucketsFailBeforeAnyRequest() throws Exception {
        try (FaultProxy proxy = new FaultProxy(server.getUri())) {
            S3Config config = TestS3.config(proxy.uri()).build();
            try (S3ObjectStore store = S3ObjectStore.open(config, TestS3.BUCKET, "prefix")) {
                // 1020 bytes alone are fine, but not under "prefix/".
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> store.exists("k".repeat(1020)));
                assertTrue(e.getMessage().contains("at most 1024"), e.getMessage());
            }
            assertThrows(IllegalArgumentException.class, () -> S3ObjectStore.open(config, "Bad_Bucket", ""));
            assertThrows(IllegalArgumentException.class, () -> S3ObjectStore.open(config, TestS3.BUCKET, "p/"));
            assertThrows(IllegalArgumentException.class, () -> S3Upstream.open(config, S3Location.parse("s3://ab/k")));
            assertEquals(0, proxy.acceptedConnections(), "a request was made");
        }
    }

    @Test
    void openingAMissingObjectFailsAtFirstUse() throws Exception {
        try (S3ObjectStore store = S3ObjectStore.open(TestS3.config(server.getUri()).build(), TestS3.BUCKET, "");
             Upstream up = store.open("not/there")) {
            UpstreamException e = assertThrows(UpstreamException.class, up::size);
            assertTrue(e.getMessage().contains("s3://lazyblock-test/not/there"), e.getMessage());
            assertTrue(e.getMessage().contains("no such object"), e.getMessage());
        }
    }
}
