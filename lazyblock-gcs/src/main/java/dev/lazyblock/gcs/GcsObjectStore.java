package dev.lazyblock.gcs;

import com.google.cloud.storage.BlobId;
import com.google.cloud.storage.BlobInfo;
import com.google.cloud.storage.Storage;
import com.google.cloud.storage.Storage.BlobField;
import com.google.cloud.storage.Storage.BlobGetOption;
import dev.lazyblock.upstream.ObjectKeys;
import dev.lazyblock.upstream.ObjectStore;
import dev.lazyblock.upstream.Upstream;
import java.io.IOException;
import java.nio.file.Path;

/**
 * An {@link ObjectStore} over a bucket (and an optional name prefix) through the JSON API: files
 * go up as resumable uploads in chunks of {@code uploadChunkSize}, small objects in one request.
 * An object appears whole when its upload finalizes, never in part. Keys are validated before
 * any request.
 */
public final class GcsObjectStore implements ObjectStore {
    private final Storage storage;
    private final String bucket;
    private final String prefix;
    private final int chunkSize;
    private final int maxAttempts;

    private GcsObjectStore(Storage storage, String bucket, String prefix, int chunkSize, int maxAttempts) {
        this.storage = storage;
        this.bucket = bucket;
        this.prefix = prefix;
        this.chunkSize = chunkSize;
        this.maxAttempts = maxAttempts;
    }

    /** The store of {@code bucket}, keys under {@code prefix} ("" for none), with a client of its own. */
    public static GcsObjectStore open(GcsConfig config, String bucket, String prefix) throws IOException {
        GcsLocation.validateBucket(bucket);
        String p = prefix == null ? "" : prefix;
        if (!p.isEmpty()) {
            ObjectKeys.validate(p);
        }
        return new GcsObjectStore(config.newJsonClient(), bucket, p, config.uploadChunkSize(), config.maxAttempts());
    }

    @Override
    public String name() {
        return "gs://" + bucket + (prefix.isEmpty() ? "" : "/" + prefix);
    }

    private GcsLocation at(String key) {
        ObjectKeys.validate(key);
        return new GcsLocation(bucket, prefix.isEmpty() ? key : prefix + "/" + key);
    }

    @Override
    public Upstream open(String key) {
        return new GcsUpstream(storage, false, at(key), maxAttempts);
    }

    @Override
    public void put(String key, Path file) throws IOException {
        GcsLocation at = at(key);
        try {
            storage.createFrom(BlobInfo.newBuilder(at.bucket(), at.object()).build(), file, chunkSize);
        } catch (IOException | RuntimeException e) {
            throw GcsErrors.store("uploading " + file + " to", at.url(), e, maxAttempts);
        }
    }

    @Override
    public void put(String key, byte[] bytes) throws IOException {
        GcsLocation at = at(key);
        try {
            storage.create(BlobInfo.newBuilder(at.bucket(), at.object()).build(), bytes);
        } catch (RuntimeException e) {
            throw GcsErrors.store("uploading " + bytes.length + " bytes to", at.url(), e, maxAttempts);
        }
    }

    @Override
    public boolean exists(String key) throws IOException {
        GcsLocation at = at(key);
        try {
            return storage.get(BlobId.of(at.bucket(), at.object()), BlobGetOption.fields(BlobField.NAME)) != null;
        } catch (RuntimeException e) {
            throw GcsErrors.store("checking whether an object exists at", at.url(), e, maxAttempts);
        }
    }

    @Override
    public void delete(String key) throws IOException {
        GcsLocation at = at(key);
        try {
            storage.delete(BlobId.of(at.bucket(), at.object()));
        } catch (RuntimeException e) {
            throw GcsErrors.store("deleting", at.url(), e, maxAttempts);
        }
    }

    @Override
    public void close() throws IOException {
        try {
            storage.close();
        } catch (Exception e) {
            throw new IOException("closing the GCS client of " + name(), e);
        }
    }
}
