package dev.lazyblock.upstream;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Ranged reads of one immutable object in storage (a file, an HTTP resource, an S3 object).
 *
 * <p>Implementations are thread-safe: chunkers call them from many fetches at once. Errors are
 * {@link UpstreamException}s naming the object, the range and what came back.
 */
public interface Upstream extends Closeable {

    /** The object, for errors and logs: a path or URL without credentials or query string. */
    String name();

    /** The object's size in bytes. */
    long size() throws IOException;

    /**
     * What tells this object's bytes from other bytes once stored under the same name: an ETag, a
     * generation, a file's inode and modification time; learned with the size, and pinned by the
     * stores that can (a read of a replaced object then fails instead of mixing versions). Null if
     * the store tells none. Whatever keeps bytes of the object across runs (a kept cache, a
     * resumable download) must check it: same name and same size are not the same bytes.
     */
    default String version() throws IOException {
        return null;
    }

    /**
     * Whether a call of this store's client blocked on the store (waiting for a response or for
     * body bytes) ends with an {@link java.io.InterruptedIOException} when its thread is
     * interrupted, and leaves this upstream usable for every other call. A chunker then sends a
     * reader's own small request from the reader's thread, saving two thread hand-offs per miss,
     * because it can still end that call at the fetch's deadline. False unless verified: a client
     * blocked in a plain socket read ignores interrupts, and that reader would then wait for the
     * client's own timeouts instead of the fetch's deadline.
     */
    default boolean honoursInterrupts() {
        return false;
    }

    /**
     * Reads exactly {@code dst.remaining()} bytes starting at {@code off} into {@code dst}.
     *
     * @throws UpstreamException if the object ends before {@code off + dst.remaining()} (a short
     *                           read) or the storage fails
     */
    void readFully(long off, ByteBuffer dst) throws IOException;

    /**
     * Opens a stream of the bytes {@code [off, off + len)}, which yields them as they arrive.
     * The caller closes it; closing early abandons the rest of the range.
     */
    RangeStream openRange(long off, long len) throws IOException;

    /** Bytes of one range, in order, as they arrive. Not thread-safe: one reader per stream. */
    interface RangeStream extends Closeable {
        /**
         * Reads up to {@code dst.remaining()} bytes into {@code dst}, blocking until at least one
         * is available.
         *
         * @return the bytes read, or -1 once the whole range has been delivered
         * @throws UpstreamException if the source ends before the range does, or fails
         */
        int read(ByteBuffer dst) throws IOException;
    }
}
