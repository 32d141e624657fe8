package dev.lazyblock.device;

import dev.lazyblock.cache.PresenceBitmap;
import dev.lazyblock.cache.SparseCache;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Objects;
import java.util.concurrent.locks.StampedLock;

/**
 * Copy-on-write over a read-only base: writes land in a local cache at block granularity,
 * reads take each block from the cache where it was written and from the base elsewhere. The
 * written ("dirty") blocks export as a diff layer ({@link LayerExporter}).
 *
 * <p>A write that does not cover a whole block first reads that block from the base (or the
 * overlay, if already written), merges, and writes the whole block: the cache only ever holds
 * whole blocks.
 *
 * <p>Concurrency: each block is guarded by one of {@link #STRIPES} stamped locks (by block
 * index). A writer holds the block's write lock while it reads, merges and writes it, so
 * concurrent partial writes to one block never lose each other. A reader copies a written block
 * under an optimistic read stamp and retries under the read lock if a writer intervened, so a
 * reader never sees a half-written block. Reads of blocks not yet written go to the base
 * without locks: a block's presence bit is set only after its bytes are complete.
 */
public final class Overlay implements Device {
    static final int STRIPES = 256;

    private final Device base;
    private final SparseCache cache;
    private final int blockSize;
    private final long size;
    private final StampedLock[] locks = new StampedLock[STRIPES];

    /**
     * @param base  the read-only image below; not closed by the overlay
     * @param cache where writes land: same size as the base, granularity = block size
     */
    public Overlay(Device base, SparseCache cache) {
        this.base = Objects.requireNonNull(base, "base");
        this.cache = Objects.requireNonNull(cache, "cache");
        this.blockSize = cache.blockSize();
        this.size = base.size();
        if (cache.size() != size) {
            throw new IllegalArgumentException("overlay cache size " + cache.size() + " != base size " + size);
        }
        if (cache.granularity() != blockSize) {
            throw new IllegalArgumentException("an overlay cache tracks whole blocks: granularity " + cache.granularity()
                    + " != block size " + blockSize);
        }
        for (int i = 0; i < STRIPES; i++) {
            locks[i] = new StampedLock();
        }
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public int blockSize() {
        return blockSize;
    }

    /** The base this overlay writes over. */
    public Device base() {
        return base;
    }

    /** The cache holding the written blocks (for export and statistics). */
    public SparseCache cache() {
        return cache;
    }

    private StampedLock lockOf(long block) {
        return locks[(int) (block & (STRIPES - 1))];
    }

    @Override
    public long readAt(MemorySegment dst, long off) throws IOException {
        long n = checkRange(off, dst.byteSize());
        PresenceBitmap written = cache.presence();
        long end = off + n;
        long pos = off;
        while (pos < end) {
            long block = pos / blockSize;
            if (written.get(block)) {
                // A run of written blocks: copy each under its stripe's stamp.
                long runEnd = Math.min(end, written.nextClear(block) * blockSize);
                for (long b = block; pos < runEnd; b++) {
                    long stop = Math.min(runEnd, (b + 1) * blockSize);
                    copyWritten(b, dst, pos - off, pos, stop - pos);
                    pos = stop;
                }
            } else {
                // A run of unwritten blocks: one read of the base.
                long next = written.nextSet(block);
                long runEnd = next < 0 ? end : Math.min(end, next * blockSize);
                long got = base.readAt(dst.asSlice(pos - off, runEnd - pos), pos);
                if (got != runEnd - pos) {
                    throw new IOException("short read of the base at " + pos + ": expected " + (runEnd - pos)
                            + " bytes, got " + got);
                }
                pos = runEnd;
            }
        }
        return n;
    }

    private void copyWritten(long block, MemorySegment dst, long dstOff, long off, long len) {
        StampedLock lock = lockOf(block);
        long stamp = lock.tryOptimisticRead();
        if (stamp != 0) {
            MemorySegment.copy(cache.sliceDirect(off, len), 0, dst, dstOff, len);
            if (lock.validate(stamp)) {
                return;
            }
        }
        stamp = lock.readLock();
        try {
            MemorySegment.copy(cache.sliceDirect(off, len), 0, dst, dstOff, len);
        } finally {
            lock.unlockRead(stamp);
        }
    }

    /**
     * Writes {@code src} at {@code off}. Partial blocks are merged with their current bytes.
     *
     * @throws IndexOutOfBoundsException if the write does not fit in the image
     */
    public void writeAt(MemorySegment src, long off) throws IOException {
        long len = src.byteSize();
        if (off < 0 || len > size - off) {
            throw new IndexOutOfBoundsException("write [" + off + ", " + (off + len) + ") is outside the image [0, "
                    + size + ")");
        }
        long end = off + len;
        long pos = off;
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment merge = null;
            while (pos < end) {
                long block = pos / blockSize;
                long blockOff = block * blockSize;
                long blockLen = Math.min(blockSize, size - blockOff);
                long stop = Math.min(end, blockOff + blockLen);
                StampedLock lock = lockOf(block);
                long stamp = lock.writeLock();
                try {
                    if (pos == blockOff && stop == blockOff + blockLen) {
                        cache.writeAt(src, pos - off, blockLen, blockOff);
                    } else {
                        if (merge == null) {
                            merge = scratch.allocate(blockSize);
                        }
                        MemorySegment whole = merge.asSlice(0, blockLen);
                        currentBlock(block, whole);
                        MemorySegment.copy(src, pos - off, whole, pos - blockOff, stop - pos);
                        cache.writeAt(whole, blockOff);
                    }
                    cache.setIsCached(blockOff, blockLen);
                } finally {
                    lock.unlockWrite(stamp);
                }
                pos = stop;
            }
        }
    }

    /** Writes {@code src[srcOff..srcOff+len)} at {@code off}. */
    public void writeAt(byte[] src, int srcOff, int len, long off) throws IOException {
        Objects.checkFromIndexSize(srcOff, len, src.length);
        writeAt(MemorySegment.ofArray(src).asSlice(srcOff, len), off);
    }

    /** Writes zeros over {@code [off, off+len)} (NBD WRITE_ZEROES and TRIM land here). */
    public void writeZeroes(long off, long len) throws IOException {
        if (off < 0 || len < 0 || len > size - off) {
            throw new IndexOutOfBoundsException("write [" + off + ", " + (off + len) + ") is outside the image [0, "
                    + size + ")");
        }
        MemorySegment zeros = MemorySegment.ofArray(new byte[(int) Math.min(len, 1 << 20)]);
        for (long done = 0; done < len; ) {
            long n = Math.min(zeros.byteSize(), len - done);
            writeAt(zeros.asSlice(0, n), off + done);
            done += n;
        }
    }

    /** The block's current bytes: the overlay's if written, else the base's. Under its write lock. */
    private void currentBlock(long block, MemorySegment whole) throws IOException {
        long blockOff = block * blockSize;
        if (cache.isCached(blockOff, whole.byteSize())) {
            MemorySegment.copy(cache.sliceDirect(blockOff, whole.byteSize()), 0, whole, 0, whole.byteSize());
        } else {
            long got = base.readAt(whole, blockOff);
            if (got != whole.byteSize()) {
                throw new IOException("short read of the base block at " + blockOff + ": got " + got + " of "
                        + whole.byteSize() + " bytes");
            }
        }
    }

    private long checkRange(long off, long len) {
        if (len < 0) {
            throw new IllegalArgumentException("length must be >= 0, got " + len);
        }
        if (off < 0 || off >= size) {
            throw new IndexOutOfBoundsException("offset " + off + " is outside the image [0, " + size + ")");
        }
        return Math.min(len, size - off);
    }

    /**
     * Makes every write that returned before this call durable, with the record of which blocks
     * were written (a kept overlay, see {@link dev.lazyblock.cache.PersistentCache#openOverlay});
     * a scratch overlay has nothing to make durable. NBD FLUSH and FUA land here.
     */
    public void flush() throws IOException {
        cache.flush();
    }

    /** Whether the writes outlive the process (a kept overlay), so {@link #flush()} does I/O. */
    public boolean durable() {
        return cache.persistent();
    }

    /** Closes the overlay's cache; the base stays open (it may be shared). */
    @Override
    public void close() {
        cache.close();
    }
}
