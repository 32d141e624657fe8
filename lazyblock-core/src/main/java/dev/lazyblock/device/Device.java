package dev.lazyblock.device;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * An image readable at any offset: a chunker over one object, a layered image over several, an
 * overlay over either. Front ends (NBD, userfaultfd) read through this and nothing else.
 * Thread-safe.
 */
public interface Device extends AutoCloseable {

    /** The image size in bytes. */
    long size();

    /** The unit of reads, writes and dirty tracking (4 KiB for disks). */
    int blockSize();

    /**
     * Copies {@code [off, off + dst.byteSize())}, clipped to the size, into {@code dst}.
     *
     * @return the bytes copied
     * @throws IndexOutOfBoundsException for {@code off} outside {@code [0, size)}
     */
    long readAt(MemorySegment dst, long off) throws IOException;

    /** Copies {@code [off, off+len)}, clipped to the size, to {@code dst[dstOff..]}; returns the bytes copied. */
    default int readAt(byte[] dst, int dstOff, int len, long off) throws IOException {
        Objects.checkFromIndexSize(dstOff, len, dst.length);
        return (int) readAt(MemorySegment.ofArray(dst).asSlice(dstOff, len), off);
    }

    @Override
    void close();
}
