package dev.lazyblock.compress;

import dev.lazyblock.s3.S3Config;
import dev.lazyblock.s3.S3ObjectStore;
import java.io.IOException;
import java.net.URI;
import org.gaul.s3proxy.junit.S3ProxyExtension;

/** The tests' S3: S3Proxy in-process on loopback, signing checked (the pattern of lazyblock-s3's tests). */
final class TestS3 {
    static final String ACCESS_KEY = "AKIDLAZYBLOCKTEST";
    /** Fake, but S3Proxy checks every request's signature against it. */
    static final String SECRET = "lzb-Secret/Key+9f3c7a1e5d2b8c4f6a0e";
    static final String BUCKET = "lazyblock-test";

    private TestS3() {}

    static S3ProxyExtension server() {
        return S3ProxyExtension.builder()
                .withCredentials(ACCESS_KEY, SECRET)
                .withBlobStoreProvider("transient")
                .build();
    }

    static S3Config.Builder config(URI endpoint) {
        return S3Config.builder()
                .endpoint(endpoint)
                .region("us-east-1")
                .pathStyle(true)
                .credentials(ACCESS_KEY, SECRET);
    }

    static void createBucket(URI endpoint) {
        try (var direct = config(endpoint).build().newClient()) {
            direct.createBucket(b -> b.bucket(BUCKET));
        }
    }

    static S3ObjectStore store(URI endpoint, String prefix) throws IOException {
        return S3ObjectStore.open(config(endpoint).build(), BUCKET, prefix);
    }
}
