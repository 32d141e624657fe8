package dev.lazyblock.upstream;

import java.io.Closeable;
import java.io.IOException;
import java.nio.file.Path;

/**
 * A place layers are read from and written to: a bucket (with an optional prefix) or a local
 * directory. Keys are validated with {@link ObjectKeys#validate} before any request.
 *
 * <p>Writes are whole objects and atomic as far as readers can tell: a reader sees the old
 * object, no object, or the new one, never part of one (S3 PUT and multipart completion are;
 * the directory store renames a temporary file into place).
 */
public interface ObjectStore extends Closeable {

    /** The store for errors and logs: {@code s3://bucket/prefix} or a directory, no credentials. */
    String name();

    /** Ranged reads of the object at {@code key}. */
    Upstream open(String key) throws IOException;

    /** Stores the file's bytes at {@code key} (multipart where the store wants it for large files). */
    void put(String key, Path file) throws IOException;

    /** Stores a small object (a layer header) at {@code key}. */
    void put(String key, byte[] bytes) throws IOException;

    /** Whether an object exists at {@code key}. */
    boolean exists(String key) throws IOException;

    /** Removes the object at {@code key}; removing a missing object is not an error. */
    void delete(String key) throws IOException;

    /** One object a listing found: its key (relative to the store, as {@link #open} takes it), size and last write. */
    record Listed(String key, long size, java.time.Instant lastModified) {}

    /**
     * Every object whose key starts with {@code prefix} (a directory ends in {@code /}), in any
     * order. What a garbage collector needs: the store's listing must show every object written
     * before the call began (S3, GCS, Azure and a directory do). Stores that cannot list say so.
     *
     * @throws UnsupportedOperationException if this store cannot list its objects
     */
    default java.util.List<Listed> list(String prefix) throws IOException {
        throw new UnsupportedOperationException(name() + " cannot list its objects");
    }
}
