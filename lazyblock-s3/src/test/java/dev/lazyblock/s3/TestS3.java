package dev.lazyblock.s3;

import java.net.URI;
import org.gaul.s3proxy.junit.S3ProxyExtension;

/**
 * The tests' S3: S3Proxy in-process on loopback, signing checked, with known fake credentials.
 * Shared through this module's test-jar (lazyblock-compress's tests use it).
 */
public final class TestS3 {
    public static final String ACCESS_KEY = "AKIDLAZYBLOCKTEST";
    /** Fake, but S3Proxy checks every request's signature against it. */
    public static final String SECRET = "lzb-Secret/Key+9f3c7a1e5d2b8c4f6a0e";
    public static final String BUCKET = "lazyblock-test";

    private TestS3() {}

    /** A fresh server per test (JUnit's per-method test instances), blobs in memory. */
    public static S3ProxyExtension server() {
        return S3ProxyExtension.builder()
                .withCredentials(ACCESS_KEY, SECRET)
                .withBlobStoreProvider("transient")
                .build();
    }

    /** A configuration for {@code endpoint}: path style, us-east-1, the fake credentials. */
    public static S3Config.Builder config(URI endpoint) {
        return S3Config.builder()
                .endpoint(endpoint)
                .region("us-east-1")
                .pathStyle(true)
                .credentials(ACCESS_KEY, SECRET);
    }

    /** Creates the bucket on the server at {@code endpoint}. */
    public static void createBucket(URI endpoint) {
        try (var direct = config(endpoint).build().newClient()) {
            direct.createBucket(b -> b.bucket(BUCKET));
        }
    }

    /** An object store of the bucket at {@code endpoint}, under {@code prefix}. */
    public static S3ObjectStore store(URI endpoint, String prefix) throws java.io.IOException {
        return S3ObjectStore.open(config(endpoint).build(), BUCKET, prefix);
    }

    /** Creates the bucket on the server at {@code endpoint} and puts {@code bytes} at {@code key}; returns the ETag. */
    public static String bucketWith(java.net.URI endpoint, String key, byte[] bytes) {
        try (software.amazon.awssdk.services.s3.S3Client direct = config(endpoint).build().newClient()) {
            direct.createBucket(b -> b.bucket(BUCKET));
            return direct.putObject(b -> b.bucket(BUCKET).key(key),
                    software.amazon.awssdk.core.sync.RequestBody.fromBytes(bytes)).eTag();
        }
    }
}
