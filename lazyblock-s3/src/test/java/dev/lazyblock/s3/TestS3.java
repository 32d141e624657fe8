package dev.lazyblock.s3;

import java.net.URI;
import org.gaul.s3proxy.junit.S3ProxyExtension;

/** The tests' S3: S3Proxy in-process on loopback, signing checked, with known fake credentials. */
final class TestS3 {
    static final String ACCESS_KEY = "AKIDLAZYBLOCKTEST";
    /** Fake, but S3Proxy checks every request's signature against it. */
    static final String SECRET = "lzb-Secret/Key+9f3c7a1e5d2b8c4f6a0e";
    static final String BUCKET = "lazyblock-test";

    private TestS3() {}

    /** A fresh server per test (JUnit's per-method test instances), blobs in memory. */
    static S3ProxyExtension server() {
        return S3ProxyExtension.builder()
                .withCredentials(ACCESS_KEY, SECRET)
                .withBlobStoreProvider("transient")
                .build();
    }

    /** A configuration for {@code endpoint}: path style, us-east-1, the fake credentials. */
    static S3Config.Builder config(URI endpoint) {
        return S3Config.builder()
                .endpoint(endpoint)
                .region("us-east-1")
                .pathStyle(true)
                .credentials(ACCESS_KEY, SECRET);
    }

    /** Creates the bucket on the server at {@code endpoint} and puts {@code bytes} at {@code key}; returns the ETag. */
    static String bucketWith(java.net.URI endpoint, String key, byte[] bytes) {
        try (software.amazon.awssdk.services.s3.S3Client direct = config(endpoint).build().newClient()) {
            direct.createBucket(b -> b.bucket(BUCKET));
            return direct.putObject(b -> b.bucket(BUCKET).key(key),
                    software.amazon.awssdk.core.sync.RequestBody.fromBytes(bytes)).eTag();
        }
    }

}
