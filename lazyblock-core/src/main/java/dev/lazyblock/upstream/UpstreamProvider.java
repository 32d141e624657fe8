package dev.lazyblock.upstream;

import java.io.IOException;
import java.net.URI;
import java.util.Set;

/**
 * Opens image URLs of schemes the core does not know (s3://, gs://), from modules that carry
 * those stores' SDKs. Found with {@link java.util.ServiceLoader}: a module lists its provider in
 * {@code META-INF/services/dev.lazyblock.upstream.UpstreamProvider}.
 */
public interface UpstreamProvider {
    /** Lower-case schemes this provider opens, e.g. {@code s3}. */
    Set<String> schemes();

    /**
     * Whether this provider opens an {@code http(s)} URL rather than core's plain HTTP upstream:
     * a store's own host, whose objects need its signing (Azure's
     * {@code ACCOUNT.blob.core.windows.net}). None by default.
     */
    default boolean claims(URI url) {
        return false;
    }

    /** Opens {@code url}, whose scheme is one of {@link #schemes()} or which it {@link #claims}. */
    Upstream open(String url) throws IOException;

    /** The store a URL's object lives in and the object's key there, for writing layers next to it. */
    StoreAndKey store(String url) throws IOException;

    /** A store and a key in it. */
    record StoreAndKey(ObjectStore store, String key) {}
}
