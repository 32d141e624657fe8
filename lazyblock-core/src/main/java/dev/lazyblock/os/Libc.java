package dev.lazyblock.os;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.nio.charset.StandardCharsets;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The few libc calls lazyblock needs, through FFM downcalls (Linux x86_64/aarch64, glibc).
 *
 * <p>Every call captures {@code errno} and turns a failure into an {@link ErrnoException}
 * that names the call, its arguments and the error, so callers only handle the cases they
 * can act on (EXDEV, EAGAIN, ...). The errno capture segment is per thread: the calls sit on
 * the write path and should not allocate.
 */
public final class Libc {
    public static final int O_RDONLY = 0;
    public static final int O_WRONLY = 1;
    public static final int O_RDWR = 2;
    public static final int O_CREAT = 0x40;
    public static final int O_EXCL = 0x80;
    public static final int O_TRUNC = 0x200;
    public static final int O_CLOEXEC = 0x80000;

    public static final int PROT_READ = 1;
    public static final int PROT_WRITE = 2;
    public static final int MAP_SHARED = 1;
    public static final int MAP_NORESERVE = 0x4000;
    public static final int MAP_PRIVATE = 2;
    public static final int MAP_FIXED = 0x10;

    public static final int ENOENT = 2;
    public static final int EINTR = 4;
    public static final int EIO = 5;
    public static final int EAGAIN = 11;
    public static final int ENOMEM = 12;
    public static final int EEXIST = 17;
    public static final int EXDEV = 18;
    public static final int EINVAL = 22;
    public static final int ENOSPC = 28;
    public static final int ENOSYS = 38;
    public static final int EOPNOTSUPP = 95;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIBC = LINKER.defaultLookup();
    private static final StructLayout CAPTURE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO =
            CAPTURE.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    private static final Linker.Option CAPTURE_ERRNO = Linker.Option.captureCallState("errno");

    /** struct stat on 64-bit Linux (x86_64 layout): st_size at 48, st_blocks at 64, 144 bytes. */
    private static final long STAT_SIZE = 144;
    private static final long ST_SIZE_OFFSET = 48;
    private static final long ST_BLOCKS_OFFSET = 64;

    private static final MethodHandle OPEN = downcall("open",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), Linker.Option.firstVariadicArg(2));
    private static final MethodHandle CLOSE = downcall("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle FTRUNCATE = downcall("ftruncate",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG));
    private static final MethodHandle MMAP = downcall("mmap",
            FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG));
    private static final MethodHandle MUNMAP = downcall("munmap",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle FSTAT = downcall("fstat",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));
    private static final MethodHandle COPY_FILE_RANGE = downcall("copy_file_range",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    /** The buffer goes as a raw address (a long: same register class as a pointer), so no segment is made per call. */
    private static final MethodHandle PWRITE = downcall("pwrite",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle FSYNC = downcall("fsync", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle STRERROR = LINKER.downcallHandle(LIBC.find("strerror").orElseThrow(),
            FunctionDescriptor.of(ADDRESS, JAVA_INT));

    /**
     * Per-thread scratch: the errno capture and two off_t cells for copy_file_range. Allocated
     * once per thread from an automatic arena, so the calls themselves allocate nothing.
     */
    private static final long OFFS_AT = (CAPTURE.byteSize() + 7) & ~7L;
    private static final long STAT_AT = OFFS_AT + 16;
    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    /** One thread's pre-sliced scratch memory, so a call makes no segment objects. */
    private static final class Scratch {
        final MemorySegment all = Arena.ofAuto().allocate(STAT_AT + STAT_SIZE, 8);
        final MemorySegment capture = all.asSlice(0, CAPTURE.byteSize());
        final MemorySegment inOff = all.asSlice(OFFS_AT, 8);
        final MemorySegment outOff = all.asSlice(OFFS_AT + 8, 8);
        final MemorySegment stat = all.asSlice(STAT_AT, STAT_SIZE);
    }

    private Libc() {}

    private static MethodHandle downcall(String name, FunctionDescriptor fd, Linker.Option... extra) {
        Linker.Option[] options = new Linker.Option[extra.length + 1];
        options[0] = CAPTURE_ERRNO;
        System.arraycopy(extra, 0, options, 1, extra.length);
        MemorySegment symbol = LIBC.find(name)
                .orElseThrow(() -> new UnsatisfiedLinkError("libc has no symbol " + name));
        return LINKER.downcallHandle(symbol, fd, options);
    }

    private static MemorySegment capture(Scratch scratch) {
        return scratch.capture;
    }

    private static int errno(Scratch scratch) {
        return (int) ERRNO.get(scratch.capture, 0L);
    }

    /** The C library's message for an errno value. */
    public static String strerror(int errno) {
        try {
            MemorySegment s = (MemorySegment) STRERROR.invokeExact(errno);
            return s.reinterpret(256).getString(0, StandardCharsets.UTF_8);
        } catch (Throwable t) {
            return "errno " + errno;
        }
    }

    public static int open(String path, int flags, int mode) throws ErrnoException {
        Scratch scratch = SCRATCH.get();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment cpath = arena.allocateFrom(path, StandardCharsets.UTF_8);
            int fd = (int) OPEN.invokeExact(capture(scratch), cpath, flags, mode);
            if (fd < 0) {
                throw new ErrnoException("open(" + path + ")", errno(scratch));
            }
            return fd;
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    public static void close(int fd) throws ErrnoException {
        Scratch scratch = SCRATCH.get();
        int rc;
        try {
            rc = (int) CLOSE.invokeExact(capture(scratch), fd);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (rc != 0) {
            throw new ErrnoException("close(fd " + fd + ")", errno(scratch));
        }
    }

    public static void ftruncate(int fd, long length) throws ErrnoException {
        Scratch scratch = SCRATCH.get();
        int rc;
        try {
            rc = (int) FTRUNCATE.invokeExact(capture(scratch), fd, length);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (rc != 0) {
            throw new ErrnoException("ftruncate(fd " + fd + ", " + length + ")", errno(scratch));
        }
    }

    /** Maps {@code length} bytes of {@code fd} shared, read-write; returns the raw address. */
    public static long mmapShared(int fd, long length) throws ErrnoException {
        Scratch scratch = SCRATCH.get();
        MemorySegment addr;
        try {
            addr = (MemorySegment) MMAP.invokeExact(capture(scratch), MemorySegment.NULL, length,
                    PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0L);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (addr.address() == -1L) {
            throw new ErrnoException("mmap(fd " + fd + ", " + length + " bytes)", errno(scratch));
        }
        return addr.address();
    }

    /**
     * Maps {@code length} bytes of {@code fd} from {@code offset} exactly at {@code address}, replacing
     * whatever this process had mapped there ({@code MAP_FIXED}): the caller must own that range.
     *
     * @param flags {@link #MAP_SHARED} or {@link #MAP_PRIVATE}; {@code MAP_FIXED} is added
     */
    public static void mmapFixed(long address, long length, int prot, int flags, int fd, long offset)
            throws ErrnoException {
        Scratch scratch = SCRATCH.get();
        MemorySegment addr;
        try {
            addr = (MemorySegment) MMAP.invokeExact(capture(scratch), MemorySegment.ofAddress(address), length,
                    prot, flags | MAP_FIXED, fd, offset);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (addr.address() == -1L) {
            throw new ErrnoException("mmap(MAP_FIXED, fd " + fd + ", " + length + " bytes at offset " + offset + ")",
                    errno(scratch));
        }
        if (addr.address() != address) {
            throw new AssertionError("MAP_FIXED mapped at " + Long.toHexString(addr.address()) + ", not at "
                    + Long.toHexString(address));
        }
    }

    public static void munmap(long address, long length) throws ErrnoException {
        Scratch scratch = SCRATCH.get();
        int rc;
        try {
            rc = (int) MUNMAP.invokeExact(capture(scratch), MemorySegment.ofAddress(address), length);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (rc != 0) {
            throw new ErrnoException("munmap(" + length + " bytes)", errno(scratch));
        }
    }

    /** Flushes the file's data and metadata to its device. */
    public static void fsync(int fd) throws ErrnoException {
        Scratch scratch = SCRATCH.get();
        int rc;
        try {
            rc = (int) FSYNC.invokeExact(capture(scratch), fd);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (rc != 0) {
            throw new ErrnoException("fsync(fd " + fd + ")", errno(scratch));
        }
    }

    /** File status: logical size and bytes allocated on disk (st_blocks * 512). */
    public record Stat(long size, long allocatedBytes) {}

    public static Stat fstat(int fd) throws ErrnoException {
        Scratch scratch = SCRATCH.get();
        MemorySegment buf = scratch.stat;
        int rc;
        try {
            rc = (int) FSTAT.invokeExact(capture(scratch), fd, buf);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (rc != 0) {
            throw new ErrnoException("fstat(fd " + fd + ")", errno(scratch));
        }
        return new Stat(buf.get(JAVA_LONG, ST_SIZE_OFFSET), buf.get(JAVA_LONG, ST_BLOCKS_OFFSET) * 512);
    }

    /**
     * One copy_file_range call from {@code inOff} to {@code outOff}. Returns the bytes copied
     * (0 at end of input) or {@code -errno}.
     */
    public static long copyFileRange(int fdIn, long inOff, int fdOut, long outOff, long length) {
        Scratch scratch = SCRATCH.get();
        scratch.inOff.set(JAVA_LONG, 0, inOff);
        scratch.outOff.set(JAVA_LONG, 0, outOff);
        long n;
        try {
            n = (long) COPY_FILE_RANGE.invokeExact(capture(scratch), fdIn, scratch.inOff, fdOut,
                    scratch.outOff, length, 0);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        return n >= 0 ? n : -errno(scratch);
    }

    /** One pwrite call from native memory. Returns the bytes written or {@code -errno}. */
    public static long pwrite(int fd, long address, long length, long offset) {
        Scratch scratch = SCRATCH.get();
        long n;
        try {
            n = (long) PWRITE.invokeExact(capture(scratch), fd, address, length, offset);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        return n >= 0 ? n : -errno(scratch);
    }

    /** A failed system call: which call, with what, and the errno. */
    public static final class ErrnoException extends IOException {
        private final int errno;

        public ErrnoException(String call, int errno) {
            super(call + " failed: " + strerror(errno) + " (errno " + errno + ")");
            this.errno = errno;
        }

        public int errno() {
            return errno;
        }
    }

    static {
        // Fail at class load on a platform whose struct stat we have not laid out.
        String arch = System.getProperty("os.arch");
        if (!System.getProperty("os.name").startsWith("Linux") || !(arch.equals("amd64") || arch.equals("x86_64"))) {
            throw new UnsupportedOperationException("lazyblock's native layer supports Linux x86_64, not "
                    + System.getProperty("os.name") + " " + arch);
        }
        assert ValueLayout.ADDRESS.byteSize() == 8;
    }
}
