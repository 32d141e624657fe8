package dev.lazyblock.s3;

import dev.lazyblock.upstream.UpstreamProvider;
import java.io.IOException;
import java.util.Set;

/**
 * Opens {@code s3://bucket/key} URLs for {@link dev.lazyblock.upstream.Upstreams#open}, found
 * through {@link java.util.ServiceLoader}. Each call builds a client from
 * {@link S3Config#fromEnvironment()}, owned (and closed) by what it returns.
 */
public final class S3UpstreamProvider implements UpstreamProvider {

    @Override
    public Set<String> schemes() {
        return Set.of("s3");
    }

    /** An {@link S3Upstream} with a client of its own; no request is made yet. */
    @Override
    public S3Upstream open(String url) throws IOException {
        S3Location at = S3Location.parse(url);
        return S3Upstream.open(S3Config.fromEnvironment(), at);
    }

    /** The {@link S3ObjectStore} of the URL's bucket (no prefix), and the URL's key in it. */
    @Override
    public StoreAndKey store(String url) throws IOException {
        S3Location at = S3Location.parse(url);
        return new StoreAndKey(S3ObjectStore.open(S3Config.fromEnvironment(), at.bucket(), ""), at.key());
    }
}
