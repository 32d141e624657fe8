package dev.lazyblock.gcs;

import dev.lazyblock.s3.S3ObjectStore;
import dev.lazyblock.upstream.ObjectKeys;
import dev.lazyblock.upstream.ObjectStore;
import dev.lazyblock.upstream.Upstream;
import java.io.IOException;
import java.nio.file.Path;

/**
 * A bucket as an {@link ObjectStore} through the XML API: lazyblock-s3's {@link S3ObjectStore}
 * (multipart uploads, aborted on failure), named {@code gs://bucket[/prefix]} in names and messages.
 */
public final class GcsXmlObjectStore implements ObjectStore {
    private final S3ObjectStore inner;
    private final String bucket;
    private final String prefix;

    private GcsXmlObjectStore(S3ObjectStore inner, String bucket, String prefix) {
        this.inner = inner;
        this.bucket = bucket;
        this.prefix = prefix;
    }

    public static GcsXmlObjectStore open(GcsConfig config, String bucket, String prefix) {
        GcsLocation.validateBucket(bucket);
        String p = prefix == null ? "" : prefix;
        return new GcsXmlObjectStore(S3ObjectStore.open(config.xmlConfig(), bucket, p), bucket, p);
    }

    @Override
    public String name() {
        return "gs://" + bucket + (prefix.isEmpty() ? "" : "/" + prefix);
    }

    @Override
    public Upstream open(String key) throws IOException {
        ObjectKeys.validate(key);
        return new GcsXmlUpstream(inner.open(key), new GcsLocation(bucket, prefix.isEmpty() ? key : prefix + "/" + key));
    }

    @Override
    public void put(String key, Path file) throws IOException {
        try {
            inner.put(key, file);
        } catch (IOException e) {
            throw rename(e);
        }
    }

    @Override
    public void put(String key, byte[] bytes) throws IOException {
        try {
            inner.put(key, bytes);
        } catch (IOException e) {
            throw rename(e);
        }
    }

    @Override
    public java.util.List<Listed> list(String keyPrefix) throws IOException {
        try {
            return inner.list(keyPrefix);
        } catch (IOException e) {
            throw rename(e);
        }
    }

    @Override
    public boolean exists(String key) throws IOException {
        try {
            return inner.exists(key);
        } catch (IOException e) {
            throw rename(e);
        }
    }

    @Override
    public void delete(String key) throws IOException {
        try {
            inner.delete(key);
        } catch (IOException e) {
            throw rename(e);
        }
    }

    @Override
    public void close() throws IOException {
        inner.close();
    }

    private static IOException rename(IOException e) {
        IOException r = new IOException(GcsXmlUpstream.gcsWords(e.getMessage()), e.getCause());
        r.setStackTrace(e.getStackTrace());
        return r;
    }
}
