package dev.lazyblock.chunker;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.device.Device;
import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * Reads of a lazily fetched image: a read of (offset, length) returns once its own bytes are
 * in the local cache, fetching the chunks that hold them if they are missing. Devices and
 * front ends see only this interface, never which strategy is behind it.
 *
 * <p>Thread-safe. A chunker owns its cache (closing the chunker closes it) but not its
 * upstream, which may be shared.
 */
public interface Chunker extends Device {

    /**
     * A read-only view of {@code [off, off+len)}, the end clipped to the size, valid until the
     * chunker is closed. Blocks until the bytes are present, at most the fetch timeout.
     *
     * @throws IndexOutOfBoundsException for {@code off} outside {@code [0, size)}
     * @throws IllegalArgumentException  for a negative length
     * @throws IOException               the upstream's error, or {@link FetchTimeoutException}
     */
    MemorySegment slice(long off, long len) throws IOException;

    /** The local cache behind this chunker, for statistics and export. */
    SparseCache cache();

    /** Closes the cache; reads waiting on a fetch fail with {@link dev.lazyblock.cache.CacheClosedException}. */
    @Override
    void close();
}
