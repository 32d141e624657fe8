package dev.lazyblock.cache;

import dev.lazyblock.os.Libc;
import dev.lazyblock.os.Libc.ErrnoException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.BitSet;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A local sparse file of any size, mapped into memory, plus a {@link PresenceBitmap} saying
 * which granules of it hold valid bytes. The store of every chunker and overlay.
 *
 * <p>The file is created new (never over an existing file), sized with {@code ftruncate} so
 * it occupies no disk until written, and unlinked at once: the open descriptor keeps it alive
 * and a crashed process leaves no multi-GiB scratch file behind.
 *
 * <p>Contract (see DESIGN.md, "Cache semantics"): fillers {@link #writeAt} bytes, then
 * {@link #setIsCached}; readers {@link #isCached}, then {@link #slice}/{@link #readAt}. The
 * bitmap's release/acquire makes the bytes visible to any reader that sees the bit.
 *
 * <p>Lifetime: {@link #close()} once. Afterwards every call throws {@link CacheClosedException}.
 * Operations that use the file descriptor ({@link #writeAt}, {@link #fileSize},
 * {@link #exportToDiff}) and fetches holding a {@link #retain() lease} keep the file and mapping
 * alive until they end; the last one out unmaps. Reads through the mapping need no lease: it
 * lives in a shared {@link Arena}, whose close the JVM makes safe against concurrent access, so a
 * racing read fails with {@code CacheClosedException} and never touches freed memory. Slices
 * handed out become inaccessible (IllegalStateException) once the cache is closed.
 */
public final class SparseCache implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(SparseCache.class);

    public static final int DEFAULT_BLOCK_SIZE = 4096;

    private static final long CLOSED = 1L << 62;
    private static final long COUNT_MASK = CLOSED - 1;
    private static final VarHandle STATE;

    static {
        try {
            STATE = MethodHandles.lookup().findVarHandle(SparseCache.class, "state", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final String name;
    private final long size;
    private final int blockSize;
    private final long granularity;
    private final int granuleShift;
    private final PresenceBitmap presence;

    private final int fd;
    private final long address;
    private final Arena arena;
    /** The whole file, read-write. Its scope is {@link #arena}. */
    private final MemorySegment mapping;

    /**
     * {@code CLOSED} bit | number of leases held. Leases are taken by CAS only while CLOSED is
     * clear; {@link #close()} sets CLOSED by CAS. So once CLOSED is set the count only falls,
     * and exactly one party sees it at zero with CLOSED set: {@code close()} itself (no lease
     * held) or the last {@link #release()}. That party frees the mapping and descriptor.
     * Volatile: a reader that sees CLOSED clear may go on to read the mapping.
     */
    @SuppressWarnings("unused") // accessed through STATE
    private volatile long state;

    /**
     * Set once, by the first {@link #fail}: the cache file no longer holds what the presence map
     * says (truncated or removed under us). Volatile: a thread that sees it null may go on to
     * read; one that sees it set fails fast. Never cleared; nothing is marked present after it.
     */
    private volatile IOException failure;

    /** What a persistent cache does at its last release; null for a scratch cache. */
    private final Persistence persistence;

    /** How a persistent cache keeps its presence across runs (see {@link PersistentCache}). */
    interface Persistence {
        /** Granules {@code [from, to)}, not all present yet, are about to be set (their bytes written). */
        void marked(long from, long to);

        /** Makes every byte written and every granule marked so far durable. */
        void flush(int fd) throws IOException;

        /**
         * Called once, when the cache is freed, after the mapping is gone and before the descriptor
         * is closed, unless the cache {@link #failed}: make what is present durable.
         */
        void save(int fd, PresenceBitmap presence) throws IOException;

        /** Called instead of {@link #save} for a failed cache: nothing it holds may be trusted later. */
        void discard() throws IOException;

        /** Called last, after the descriptor is closed, whatever happened before. */
        void released();
    }

    private SparseCache(String name, int fd, long size, int blockSize, long granularity, PresenceBitmap presence,
                        Persistence persistence) throws IOException {
        this.name = name;
        this.size = size;
        this.blockSize = blockSize;
        this.granularity = granularity;
        this.granuleShift = Long.numberOfTrailingZeros(granularity);
        this.presence = presence != null ? presence : new PresenceBitmap(granules(size, granularity));
        this.persistence = persistence;
        this.fd = fd;
        this.address = size == 0 ? 0 : Libc.mmapShared(fd, size);
        this.arena = Arena.ofShared();
        this.mapping = size == 0
                ? MemorySegment.ofArray(new byte[0])
                : MemorySegment.ofAddress(address).reinterpret(size, arena, null);
    }

    static long granules(long size, long granularity) {
        return (size + granularity - 1) >>> Long.numberOfTrailingZeros(granularity);
    }

    /** A new file at {@code file}, sized, then unlinked: the descriptor alone keeps it. */
    private static SparseCache scratch(Path file, long size, int blockSize, long granularity) throws IOException {
        int fd = Libc.open(file.toString(), Libc.O_RDWR | Libc.O_CREAT | Libc.O_EXCL | Libc.O_CLOEXEC, 0600);
        try {
            Libc.ftruncate(fd, size);
            Files.delete(file);
            return new SparseCache(file.toString(), fd, size, blockSize, granularity, null, null);
        } catch (IOException | RuntimeException e) {
            try {
                Files.deleteIfExists(file);
                Libc.close(fd);
            } catch (IOException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    /**
     * A cache over an already open, already sized descriptor that it now owns (closed with the
     * cache, or here if mapping fails), with {@code presence} trusted as it is.
     */
    static SparseCache adopt(String name, int fd, long size, int blockSize, long granularity, PresenceBitmap presence,
                             Persistence persistence) throws IOException {
        checkGeometry(size, blockSize, granularity);
        try {
            return new SparseCache(name, fd, size, blockSize, granularity, presence, persistence);
        } catch (IOException | RuntimeException e) {
            try {
                Libc.close(fd);
            } catch (IOException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    /** A cache of {@code size} bytes with 4 KiB blocks and 4 KiB granularity. */
    public static SparseCache create(Path file, long size) throws IOException {
        return create(file, size, DEFAULT_BLOCK_SIZE, DEFAULT_BLOCK_SIZE);
    }

    /**
     * A cache of {@code size} bytes in a new file at {@code file}.
     *
     * @param blockSize   unit of reads and of diff export: a power of two
     * @param granularity unit of presence: a power of two, at least {@code blockSize}
     * @throws IOException if the file exists, or cannot be created, sized or mapped
     */
    public static SparseCache create(Path file, long size, int blockSize, long granularity) throws IOException {
        checkGeometry(size, blockSize, granularity);
        return scratch(file, size, blockSize, granularity);
    }

    static void checkGeometry(long size, int blockSize, long granularity) {
        if (size < 0) {
            throw new IllegalArgumentException("cache size must be >= 0, got " + size);
        }
        if (blockSize <= 0 || Integer.bitCount(blockSize) != 1) {
            throw new IllegalArgumentException("block size must be a power of two, got " + blockSize);
        }
        if (granularity < blockSize || Long.bitCount(granularity) != 1) {
            throw new IllegalArgumentException("granularity must be a power of two >= block size "
                    + blockSize + ", got " + granularity);
        }
    }

    /** The cache's file (its path when created or adopted; the file itself may be unlinked). */
    public String name() {
        return name;
    }

    public long size() {
        return size;
    }

    public int blockSize() {
        return blockSize;
    }

    public long granularity() {
        return granularity;
    }

    /** The presence map, for statistics and export; fillers go through {@link #setIsCached}. */
    public PresenceBitmap presence() {
        ensureOpen();
        return presence;
    }

    // ---------------------------------------------------------------- presence

    /**
     * Whether every granule overlapping {@code [off, off+len)} is present. {@code len <= 0} is
     * true; {@code off >= size()} is false; the end is clipped to the size.
     */
    public boolean isCached(long off, long len) {
        ensureOpen();
        if (len <= 0) {
            return true;
        }
        if (failure != null) {
            return false; // a failed cache holds nothing it can vouch for; readers fail in slice/readAt
        }
        if (off < 0) {
            throw new IndexOutOfBoundsException("offset must be >= 0, got " + off);
        }
        if (off >= size) {
            return false;
        }
        return present(off, clippedEnd(off, len) - off);
    }

    /** Whether the in-bounds range {@code [off, off+n)} is present; an empty range is. */
    private boolean present(long off, long n) {
        return n == 0 || presence.allSet(off >>> granuleShift, granuleEnd(off + n));
    }

    /**
     * Marks every granule overlapping {@code [off, off+len)} present, the end clipped to the
     * size. Call it after the bytes are written: with a granularity coarser than the block, only
     * once every byte of each granule touched is written.
     */
    public void setIsCached(long off, long len) {
        ensureUsable();
        if (len <= 0) {
            return;
        }
        if (off < 0 || off >= size) {
            throw new IndexOutOfBoundsException("offset " + off + " is outside the cache [0, " + size + ")");
        }
        long from = off >>> granuleShift;
        long to = granuleEnd(clippedEnd(off, len));
        if (persistence != null && !presence.allSet(from, to)) {
            // Queued before the bits are set: a granule anyone sees present has its mark queued,
            // so a commit that counted it present before draining has made it durable.
            persistence.marked(from, to);
        }
        presence.set(from, to);
    }

    /**
     * Makes every byte written and every granule marked before this call durable: for a kept
     * cache (see {@link PersistentCache}), an fsync of the file and then of its presence journal;
     * for a scratch cache nothing (it dies with the process). An NBD FLUSH lands here.
     *
     * @throws IOException if the file system cannot make them durable
     */
    public void flush() throws IOException {
        if (persistence == null) {
            ensureOpen();
            return;
        }
        retain();
        try {
            throwIfFailed();
            persistence.flush(fd);
        } finally {
            release();
        }
    }

    /** Whether this cache outlives the process (its marks are journaled). */
    public boolean persistent() {
        return persistence != null;
    }

    // ---------------------------------------------------------------- reads

    /**
     * A read-only view of {@code [off, off+len)} (end clipped to the size), without copying.
     *
     * @throws NotCachedException if any part of it is not present
     */
    public MemorySegment slice(long off, long len) {
        long n = checkRead(off, len);
        if (!present(off, n)) {
            throw new NotCachedException(name, off, n);
        }
        return mapping.asSlice(off, n).asReadOnly();
    }

    /**
     * A read-only view of {@code [off, off+len)} (end clipped) without the presence check, for
     * readers a fetch has released by its byte-progress counter before the granule is marked.
     * The bounds are still checked.
     */
    public MemorySegment sliceDirect(long off, long len) {
        long n = checkRead(off, len);
        return mapping.asSlice(off, n).asReadOnly();
    }

    /**
     * Copies {@code [off, off + dst.byteSize())}, clipped to the size, into {@code dst}.
     *
     * @return the bytes copied
     * @throws NotCachedException if any part of the range is not present
     */
    public long readAt(MemorySegment dst, long off) {
        long n = checkRead(off, dst.byteSize());
        if (!present(off, n)) {
            throw new NotCachedException(name, off, n);
        }
        checkFileBeforeCopy();
        try {
            MemorySegment.copy(mapping, off, dst, 0, n);
        } catch (IllegalStateException e) {
            throw closedOr(e);
        } catch (InternalError e) {
            throw new UncheckedIOException(fault("reading", off, n, e));
        }
        return n;
    }

    /**
     * Copies {@code [off, off+len)}, clipped to the size, into {@code dst[dstOff..]}.
     *
     * @return the bytes copied
     * @throws NotCachedException if any part of the range is not present
     */
    public int readAt(byte[] dst, int dstOff, int len, long off) {
        java.util.Objects.checkFromIndexSize(dstOff, len, dst.length);
        int n = (int) checkRead(off, len);
        if (!present(off, n)) {
            throw new NotCachedException(name, off, n);
        }
        checkFileBeforeCopy();
        try {
            MemorySegment.copy(mapping, ValueLayout.JAVA_BYTE, off, dst, dstOff, n);
        } catch (IllegalStateException e) {
            throw closedOr(e);
        } catch (InternalError e) {
            throw new UncheckedIOException(fault("reading", off, n, e));
        }
        return n;
    }

    // ---------------------------------------------------------------- writes

    /**
     * Writes all of {@code src} at {@code off}. Does not mark anything present: the filler
     * calls {@link #setIsCached} when its granules are complete.
     *
     * <p>Bytes go in with {@code pwrite}, not through the mapping: on ext4 the first store into
     * a page of a shared file mapping can stall on the journal for about a millisecond (measured
     * here: ~1 ms, against 17 µs for pwrite of the same 4 KiB), and a full disk is then an
     * {@code ENOSPC} error rather than a SIGBUS. Readers see the bytes through the mapping: it is
     * the same page cache.
     *
     * @throws IOException if the file system refuses the write (disk full, I/O error)
     */
    public void writeAt(MemorySegment src, long off) throws IOException {
        writeAt(src, 0, src.byteSize(), off);
    }

    /** Writes {@code src[srcOff..srcOff+len)} at {@code off}; see {@link #writeAt(MemorySegment, long)}. */
    public void writeAt(MemorySegment src, long srcOff, long len, long off) throws IOException {
        java.util.Objects.checkFromIndexSize(srcOff, len, src.byteSize());
        checkWrite(off, len);
        retain();
        try {
            // A pwrite past the end of a truncated file would grow it back, sparse, and the blocks
            // marked before the truncation would then read as zeros: look before and after, so a
            // truncation is caught and nothing written now gets marked (see checkFile).
            checkFile();
            if (src.isNative()) {
                pwriteFully(src.address() + srcOff, len, off);
            } else {
                MemorySegment stage = STAGING.get();
                for (long done = 0; done < len; ) {
                    long n = Math.min(stage.byteSize(), len - done);
                    MemorySegment.copy(src, srcOff + done, stage, 0, n);
                    pwriteFully(stage.address(), n, off + done);
                    done += n;
                }
            }
            checkFile();
        } finally {
            release();
        }
    }

    /** Alignment of {@link #mapFrom}: pages are at most this on the platforms we run on (4 KiB x86, 64 KiB arm64). */
    public static final int MAP_ALIGNMENT = 64 << 10;

    /**
     * Makes {@code [off, off + len)} read the first {@code len} bytes of the file {@code srcFd}
     * instead of this cache's own file, without copying: the range of the mapping is replaced by
     * a private mapping of that file, so every cache that maps one file shares its page cache and
     * its disk blocks, and this cache's file keeps a hole there. Used for content-addressed
     * chunks that many builds hold ({@code ContentCache}). Does not mark anything present.
     *
     * <p>{@code srcFd} must stay at least {@code len} bytes long for as long as this cache is open
     * (it may be unlinked, and may be closed once this returns): a read past its end would fault.
     * Private, so a store through the mapping (none is made) would copy, never change that file.
     * Then {@code check} sees the bytes as readers will; if it says no, the range reads this
     * cache's own file again and this returns false.
     *
     * @throws IllegalArgumentException if {@code off} is not a multiple of {@link #MAP_ALIGNMENT}
     *                                  or the range does not end at a multiple of it or at the size
     */
    public boolean mapFrom(long off, long len, int srcFd, java.util.function.Predicate<MemorySegment> check)
            throws IOException {
        checkWrite(off, len);
        if (off % MAP_ALIGNMENT != 0 || ((off + len) % MAP_ALIGNMENT != 0 && off + len != size)) {
            throw new IllegalArgumentException("a mapped range must start and end at a multiple of " + MAP_ALIGNMENT
                    + " (or end at the size " + size + "), got [" + off + ", " + (off + len) + ")");
        }
        if (persistence != null) {
            // Its journal would vouch for bytes its file does not hold once the source is gone.
            throw new IllegalStateException("a kept cache (" + name + ") must hold its bytes in its own file; map "
                    + "shared chunks only into scratch caches");
        }
        long pages = (len + 4095) & ~4095L; // within this mapping: it too ends at the page holding its last byte
        retain(); // the mapping must not be unmapped (and its range reused) while it is replaced
        try {
            throwIfFailed();
            Libc.mmapFixed(address + off, pages, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_PRIVATE, srcFd, 0);
            boolean good;
            try {
                good = check.test(mapping.asSlice(off, len).asReadOnly());
            } catch (RuntimeException | Error e) {
                restore(off, pages);
                throw e;
            }
            if (!good) {
                restore(off, pages);
            }
            return good;
        } finally {
            release();
        }
    }

    /** Maps this cache's own file back at {@code [off, off + pages)}; if even that fails, the cache fails. */
    private void restore(long off, long pages) throws IOException {
        try {
            Libc.mmapFixed(address + off, pages, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED | Libc.MAP_NORESERVE,
                    fd, off);
        } catch (ErrnoException e) {
            // The range may now be unmapped: nothing in it may be read again.
            fail(new IOException("could not map " + name + " back at [" + off + ", " + (off + pages) + ")", e));
            throw e;
        }
    }

    /** Writes {@code src[srcOff..srcOff+len)} at {@code off}; see {@link #writeAt(MemorySegment, long)}. */
    public void writeAt(byte[] src, int srcOff, int len, long off) throws IOException {
        java.util.Objects.checkFromIndexSize(srcOff, len, src.length);
        writeAt(MemorySegment.ofArray(src), srcOff, len, off);
    }

    private void pwriteFully(long address, long len, long off) throws IOException {
        long done = 0;
        while (done < len) {
            long n = Libc.pwrite(fd, address + done, len - done, off + done);
            if (n == -Libc.EINTR || n == -Libc.EAGAIN) {
                continue;
            }
            if (n < 0) {
                throw new ErrnoException("pwrite(" + name + ", [" + (off + done) + ", " + (off + len) + "))", (int) -n);
            }
            if (n == 0) {
                throw new IOException("pwrite(" + name + ") wrote nothing at " + (off + done));
            }
            done += n;
        }
    }

    /** Per-thread native scratch for writes from the heap: pwrite needs native memory. */
    private static final ThreadLocal<MemorySegment> STAGING =
            ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(64 << 10, 4096));

    // ---------------------------------------------------------------- file

    /** Bytes the sparse file occupies on disk (allocated blocks), not its logical size. */
    public long fileSize() throws IOException {
        retain();
        try {
            return Libc.fstat(fd).allocatedBytes();
        } finally {
            release();
        }
    }

    /** Exports with {@code copy_file_range} where the file system supports it. */
    public DiffMetadata exportToDiff(Path out) throws IOException {
        return exportToDiff(out, false, null);
    }

    /** Exports every present block; see {@link #exportToDiff(Path, boolean, BitSet)}. */
    public DiffMetadata exportToDiff(Path out, boolean forcePlain) throws IOException {
        return exportToDiff(out, forcePlain, null);
    }

    /**
     * Writes the present blocks, in offset order, contiguously to a new file {@code out}, all-zero
     * blocks excepted (they are only recorded), and says which blocks went where. Refused unless
     * the granularity equals the block size: a coarser granule cannot say which blocks were
     * written. The cache stays usable; blocks marked during the export may or may not be in it.
     *
     * @param forcePlain copy with {@code pwrite} even where {@code copy_file_range} would work
     * @param skip       blocks to leave out as if they were not present (for example, written
     *                   blocks whose bytes equal the parent layer's), or null
     */
    public DiffMetadata exportToDiff(Path out, boolean forcePlain, BitSet skip) throws IOException {
        if (granularity != blockSize) {
            throw new IllegalStateException("exportToDiff needs block granularity: granularity is "
                    + granularity + " bytes, block size " + blockSize);
        }
        long blocks = presence.granules();
        if (blocks > Integer.MAX_VALUE) {
            throw new IllegalStateException("exportToDiff supports at most 2^31 - 1 blocks, cache has " + blocks);
        }
        retain();
        int outFd = -1;
        try (Arena scratch = Arena.ofConfined()) {
            outFd = Libc.open(out.toString(), Libc.O_WRONLY | Libc.O_CREAT | Libc.O_TRUNC | Libc.O_CLOEXEC, 0644);
            MemorySegment zero = scratch.allocate(blockSize);
            BitSet dirty = new BitSet((int) blocks);
            BitSet empty = new BitSet((int) blocks);
            DiffWriter writer = new DiffWriter(outFd, out, forcePlain);
            for (long b = presence.nextSet(0); b >= 0; ) {
                long runEnd = presence.nextClear(b); // dirty blocks [b, runEnd)
                long pending = -1; // first block of a run of stored (non-zero) blocks not yet copied
                for (long k = b; k < runEnd; k++) {
                    if (skip != null && skip.get((int) k)) {
                        if (pending >= 0) {
                            writer.copyBlocks(pending, k);
                            pending = -1;
                        }
                        continue;
                    }
                    dirty.set((int) k);
                    long off = k * blockSize;
                    long len = Math.min(blockSize, size - off);
                    if (MemorySegment.mismatch(mapping, off, off + len, zero, 0, len) == -1) {
                        empty.set((int) k);
                        if (pending >= 0) {
                            writer.copyBlocks(pending, k);
                            pending = -1;
                        }
                    } else if (pending < 0) {
                        pending = k;
                    }
                }
                if (pending >= 0) {
                    writer.copyBlocks(pending, runEnd);
                }
                b = runEnd < blocks ? presence.nextSet(runEnd) : -1;
            }
            long stored = dirty.cardinality() - empty.cardinality();
            long diffBytes = stored * blockSize;
            Libc.ftruncate(outFd, diffBytes); // zero-pads a short last block
            log.debug("exported {} dirty blocks ({} zero) of {} to {}: {} bytes by {}",
                    dirty.cardinality(), empty.cardinality(), name, out, diffBytes, writer.method());
            return new DiffMetadata(blockSize, blocks, dirty, empty, diffBytes, writer.method());
        } catch (InternalError e) {
            throw fault("exporting", 0, size, e);
        } finally {
            if (outFd >= 0) {
                Libc.close(outFd);
            }
            release();
        }
    }

    /** Appends ranges of the cache file to the diff, by copy_file_range until it is refused. */
    private final class DiffWriter {
        private final int outFd;
        private final Path out;
        private boolean useCopyFileRange;
        private boolean usedCopyFileRange;
        private boolean usedPlain;
        private long outOff;

        DiffWriter(int outFd, Path out, boolean forcePlain) {
            this.outFd = outFd;
            this.out = out;
            this.useCopyFileRange = !forcePlain;
        }

        /** Appends blocks {@code [from, to)}; the image's last block is zero-padded. */
        void copyBlocks(long from, long to) throws IOException {
            long off = from * blockSize;
            long len = Math.min(size, to * blockSize) - off;
            long done = 0;
            while (done < len) {
                long n;
                if (useCopyFileRange) {
                    n = Libc.copyFileRange(fd, off + done, outFd, outOff, len - done);
                    if (n == -Libc.EXDEV || n == -Libc.EOPNOTSUPP || n == -Libc.ENOSYS || n == -Libc.EINVAL) {
                        log.debug("copy_file_range {} -> {} refused ({}), falling back to a plain copy",
                                name, out, Libc.strerror((int) -n));
                        useCopyFileRange = false;
                        continue;
                    }
                    usedCopyFileRange |= n > 0;
                } else {
                    n = Libc.pwrite(outFd, address + off + done, len - done, outOff);
                    usedPlain |= n > 0;
                }
                if (n == -Libc.EINTR || n == -Libc.EAGAIN) {
                    continue;
                }
                if (n < 0) {
                    throw new ErrnoException((useCopyFileRange ? "copy_file_range" : "pwrite") + "(" + name
                            + " [" + (off + done) + ", " + (off + len) + ") -> " + out + " at " + outOff + ")",
                            (int) -n);
                }
                if (n == 0) {
                    throw new IOException("short copy exporting " + name + ": expected " + (len - done)
                            + " more bytes at offset " + (off + done) + ", source ended");
                }
                done += n;
                outOff += n;
            }
            // A zero-padded last block: the source ends at size, the diff slot does not.
            outOff += (blockSize - len % blockSize) % blockSize;
        }

        DiffMetadata.CopyMethod method() {
            if (usedPlain) {
                return DiffMetadata.CopyMethod.PLAIN;
            }
            return usedCopyFileRange ? DiffMetadata.CopyMethod.COPY_FILE_RANGE : DiffMetadata.CopyMethod.NONE;
        }
    }

    // ---------------------------------------------------------------- lifetime

    /**
     * Holds the cache open (file and mapping) until the matching {@link #release()}: for a fetch
     * that writes into the mapping from another thread, or I/O on the descriptor.
     *
     * @throws CacheClosedException if the cache is closed
     */
    public void retain() {
        while (true) {
            long s = (long) STATE.getVolatile(this);
            if ((s & CLOSED) != 0) {
                throw closed();
            }
            if (STATE.compareAndSet(this, s, s + 1)) {
                return;
            }
        }
    }

    /** Ends a {@link #retain()}; the last release after {@link #close()} frees the cache. */
    public void release() {
        while (true) {
            long s = (long) STATE.getVolatile(this);
            if ((s & COUNT_MASK) == 0) {
                throw new IllegalStateException("release() without retain() on " + name);
            }
            if (STATE.compareAndSet(this, s, s - 1)) {
                if (s - 1 == CLOSED) {
                    free();
                }
                return;
            }
        }
    }

    public boolean isClosed() {
        return ((long) STATE.getVolatile(this) & CLOSED) != 0;
    }

    /**
     * Closes the cache. Calls in flight finish (or fail with {@link CacheClosedException}); the
     * mapping and file go when the last lease is released.
     *
     * @throws CacheClosedException if it was already closed
     */
    @Override
    public void close() {
        while (true) {
            long s = (long) STATE.getVolatile(this);
            if ((s & CLOSED) != 0) {
                throw new CacheClosedException("cache closed: " + name + " was already closed");
            }
            if (STATE.compareAndSet(this, s, s | CLOSED)) {
                if ((s & COUNT_MASK) == 0) {
                    free();
                }
                return;
            }
        }
    }

    private void free() {
        try {
            // The JVM's shared-arena close waits out (or fails) threads mid-access, so no read
            // through the mapping can touch it after this returns; only then unmap.
            arena.close();
            if (size > 0) {
                Libc.munmap(address, size);
            }
            if (persistence != null) {
                if (failure == null) {
                    persistence.save(fd, presence);
                } else {
                    log.warn("cache {} failed ({}); its presence journal is discarded", name, failure.getMessage());
                    persistence.discard();
                }
            }
        } catch (IOException | RuntimeException e) {
            log.warn("freeing cache {} failed: {}", name, e.toString());
        } finally {
            try {
                Libc.close(fd);
            } catch (IOException e) {
                log.warn("closing cache {} failed: {}", name, e.toString());
            }
            if (persistence != null) {
                persistence.released();
            }
        }
    }

    // ---------------------------------------------------------------- checks

    private void ensureOpen() {
        if (((long) STATE.getVolatile(this) & CLOSED) != 0) {
            throw closed();
        }
    }

    private CacheClosedException closed() {
        return new CacheClosedException("cache closed: " + name);
    }

    private RuntimeException closedOr(IllegalStateException e) {
        return isClosed() ? new CacheClosedException("cache closed: " + name + " during a read", e) : e;
    }

    private void ensureUsable() {
        ensureOpen();
        IOException f = failure;
        if (f != null) {
            throw new UncheckedIOException(f);
        }
    }

    /** Throws the error that failed this cache, if one did. */
    public void throwIfFailed() throws IOException {
        IOException f = failure;
        if (f != null) {
            throw f;
        }
    }

    /** The error that failed this cache, or null. */
    public IOException failure() {
        return failure;
    }

    /**
     * Fails the cache if its file is no longer as long as the image: truncated (or its blocks
     * punched away) by someone else. A read through the mapping past the file's end would fault
     * (SIGBUS, which the JVM turns into an InternalError in a copy, and the kernel into EFAULT in
     * a write to a socket), so callers that hand a {@link #slice} to the kernel check first.
     *
     * @throws IOException naming the file, the expected and the found size
     */
    /**
     * {@link #checkFile} before a copy out of the mapping. The catch of InternalError around the
     * copy is not enough on its own: HotSpot raises the SIGBUS of an unsafe access as an
     * asynchronous exception, at the thread's next safepoint poll, which may come after the try
     * block has ended (seen here: it escaped readAt). One fstat per copy (a few hundred ns)
     * turns the common case, a file truncated before the read, into this cache's clear error.
     * Public for readers that copy out of a {@link #sliceDirect} view themselves (chunkers).
     *
     * @throws UncheckedIOException wrapping the cache's failure
     */
    public void checkFileBeforeCopy() {
        try {
            if (failure != null) {
                throwIfFailed();
            }
            // No lease on the fast path (a CAS on the shared state per read): a descriptor closed
            // and reused under us can only make this look short, and then checkFile decides
            // under a lease.
            if (size != 0 && Libc.fstat(fd).size() < size) {
                checkFile();
            }
        } catch (IOException e) {
            if (isClosed()) {
                throw closed(); // closed under us: EBADF, or a reused descriptor
            }
            throw new UncheckedIOException(e);
        }
    }

    public void checkFile() throws IOException {
        throwIfFailed();
        if (size == 0) {
            return;
        }
        long found;
        retain(); // the descriptor must stay ours while we look at it
        try {
            found = Libc.fstat(fd).size();
        } finally {
            release();
        }
        if (found < size) {
            throw fail(truncated(found, null));
        }
    }

    /**
     * Turns a fault in an access through the mapping (the JVM's InternalError for SIGBUS in a
     * copy) into this cache's failure: an IOException that says what the file should hold and
     * what it holds. For callers that copy from a {@link #slice} themselves.
     */
    public IOException fault(String what, long off, long len, Throwable cause) {
        IOException f = failure;
        if (f != null) {
            return f;
        }
        long found;
        try {
            found = Libc.fstat(fd).size();
        } catch (IOException e) {
            found = -1;
        }
        IOException e = found >= 0 && found < size
                ? truncated(found, cause)
                : new IOException("I/O fault " + what + " [" + off + ", " + (off + len) + ") of cache " + name
                        + " through its mapping: expected " + size + " readable bytes, the file has "
                        + (found < 0 ? "an unknown size" : found + " bytes") + " (a disk error?)", cause);
        return fail(e);
    }

    private IOException truncated(long found, Throwable cause) {
        return new IOException("cache file " + name + " was truncated or removed under us: expected " + size
                + " bytes, found " + found, cause);
    }

    /** Marks the cache failed with {@code e} unless it already is; returns the failure that stands. */
    private IOException fail(IOException e) {
        boolean first;
        synchronized (this) {
            first = failure == null;
            if (first) {
                failure = e;
                log.error("{}; reads of this cache fail from now on", e.getMessage());
            }
        }
        if (first && persistence != null) {
            // At once, not at close: a crash before the close must not find a journal vouching
            // for a file that no longer holds what it says.
            try {
                persistence.discard();
            } catch (IOException | RuntimeException d) {
                log.warn("discarding the presence journal of {} failed: {}", name, d.toString());
            }
        }
        return failure;
    }

    /** Validates a read and returns its length clipped to the size. */
    private long checkRead(long off, long len) {
        ensureUsable();
        if (len < 0) {
            throw new IllegalArgumentException("length must be >= 0, got " + len);
        }
        if (off < 0 || off >= size) {
            throw new IndexOutOfBoundsException("offset " + off + " is outside the cache [0, " + size + ")");
        }
        return clippedEnd(off, len) - off;
    }

    private void checkWrite(long off, long len) {
        ensureOpen(); // a failed cache: writeAt's checkFile throws its IOException
        if (off < 0 || off > size || len > size - off) {
            throw new IndexOutOfBoundsException("write [" + off + ", " + (off + len) + ") is outside the cache [0, "
                    + size + ")");
        }
    }

    private long clippedEnd(long off, long len) {
        return len >= size - off ? size : off + len;
    }

    /** The index one past the last granule overlapping a range ending at {@code end}. */
    private long granuleEnd(long end) {
        return (end + granularity - 1) >>> granuleShift;
    }

    @Override
    public String toString() {
        return "SparseCache[" + name + ", size " + size + ", block " + blockSize + ", granularity " + granularity + "]";
    }
}
