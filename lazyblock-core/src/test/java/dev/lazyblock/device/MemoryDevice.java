package dev.lazyblock.device;

import java.lang.foreign.MemorySegment;

/** A base image held in memory: the plain model the overlay is checked against. */
final class MemoryDevice implements Device {
    final byte[] bytes;

    MemoryDevice(byte[] bytes) {
        this.bytes = bytes;
    }

    @Override
    public long size() {
        return bytes.length;
    }

    @Override
    public int blockSize() {
        return 4096;
    }

    @Override
    public long readAt(MemorySegment dst, long off) {
        if (off < 0 || off >= bytes.length) {
            throw new IndexOutOfBoundsException("offset " + off);
        }
        long n = Math.min(dst.byteSize(), bytes.length - off);
        MemorySegment.copy(MemorySegment.ofArray(bytes), off, dst, 0, n);
        return n;
    }

    @Override
    public void close() {}
}
