package dev.lazyblock.gcs;

import java.net.URI;
import org.gaul.s3proxy.junit.S3ProxyExtension;
import software.amazon.awssdk.services.s3.S3Client;

/**
 * The tests' stand-in for GCS's XML API: S3Proxy in-process on loopback (the same protocol GCS's
 * S3-interoperable XML API speaks), signatures checked against a fake HMAC key. No JSON-API
 * server is reachable from this build (see the module README).
 */
final class TestGcs {
    static final String HMAC_ID = "GOOGLAZYBLOCKTESTHMAC";
    /** Fake, but S3Proxy checks every request's signature against it. */
    static final String HMAC_SECRET = "lzb-Gcs/Hmac+Secret9f3c7a1e5d2b8c4f6a0e";
    static final String BUCKET = "lazyblock-gcs-test";

    private TestGcs() {}

    static S3ProxyExtension server() {
        return S3ProxyExtension.builder()
                .withCredentials(HMAC_ID, HMAC_SECRET)
                .withBlobStoreProvider("transient")
                .build();
    }

    /** The XML API at {@code endpoint} with the fake HMAC key. */
    static GcsConfig.Builder xml(URI endpoint) {
        return GcsConfig.builder().api(GcsConfig.Api.XML).endpoint(endpoint).hmacKey(HMAC_ID, HMAC_SECRET);
    }

    /** A plain S3 client of the server, to make the bucket and put objects. */
    static S3Client admin(URI endpoint) {
        return xml(endpoint).build().xmlConfig().newClient();
    }

}
