package dev.lazyblock.uffd;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.os.Libc.ErrnoException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.locks.LockSupport;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Copies another live process's memory into a cache with {@code process_vm_readv}: how a paused
 * VM's guest memory becomes a snapshot layer. Ranges are marked present at block granularity,
 * so the cache exports as a diff ({@link SparseCache#exportToDiff}).
 *
 * <p>The kernel takes at most {@link #IOV_MAX} iovecs per call and may copy less than asked
 * (a partial read): both are continued. {@code EAGAIN}, {@code EINTR} and {@code ENOMEM} are
 * retried with exponential back-off up to {@link #MAX_RETRIES} times; a process that is gone
 * ({@code ESRCH}) or an address it does not map ({@code EFAULT}) is a clear error.
 */
public final class ProcessMemory {
    /** The kernel's per-call iovec limit (UIO_MAXIOV). */
    public static final int IOV_MAX = 1024;
    static final int MAX_RETRIES = 8;
    /** Bytes staged per call: copied in with one syscall, written to the cache with one pwrite. */
    private static final long STAGE = 4 << 20;

    private static final int ESRCH = 3;
    private static final int EFAULT = 14;
    private static final int EPERM = 1;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final StructLayout CAPTURE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CAPTURE.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    private static final MethodHandle PROCESS_VM_READV = LINKER.downcallHandle(
            LINKER.defaultLookup().find("process_vm_readv").orElseThrow(),
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG),
            Linker.Option.captureCallState("errno"));

    /** A range of the remote process's memory and where it goes in the cache. */
    public record Range(long remoteAddress, long length, long cacheOffset) {
        public Range {
            if (length < 0 || cacheOffset < 0) {
                throw new IllegalArgumentException("range length and cache offset must be >= 0: " + length + ", "
                        + cacheOffset);
            }
        }
    }

    /** What a fill did: bytes copied, syscalls made, retries taken. */
    public record Stats(long bytes, long calls, long retries) {}

    private ProcessMemory() {}

    /**
     * Copies every range of process {@code pid}'s memory into {@code cache} and marks it present.
     * Cache offsets and lengths must be block-aligned (the last range may end at the cache's end).
     *
     * @throws IOException naming the pid and the address when the process is gone, an address is
     *                     not mapped, or retries ran out
     */
    public static Stats fill(SparseCache cache, int pid, List<Range> ranges) throws IOException {
        Objects.requireNonNull(cache, "cache");
        int bs = cache.blockSize();
        for (Range r : ranges) {
            if (r.cacheOffset() % bs != 0 || (r.length() % bs != 0 && r.cacheOffset() + r.length() != cache.size())) {
                throw new IllegalArgumentException("range " + r + " is not aligned to the cache's " + bs + "-byte blocks");
            }
            if (r.length() > cache.size() - r.cacheOffset()) {
                throw new IndexOutOfBoundsException("range " + r + " ends past the cache's " + cache.size() + " bytes");
            }
        }
        long bytes = 0;
        long calls = 0;
        long retries = 0;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment stage = arena.allocate(STAGE, 4096);
            MemorySegment local = arena.allocate(16);
            MemorySegment remote = arena.allocate(16L * IOV_MAX);
            MemorySegment capture = arena.allocate(CAPTURE);
            // Walk the ranges in pieces that fit the stage: each piece is one or more remote iovecs
            // (at most IOV_MAX) read into one local buffer, then written to the cache.
            int ri = 0;
            long rOff = 0;
            while (ri < ranges.size()) {
                long staged = 0;
                int iovs = 0;
                int firstRange = ri;
                long firstOff = rOff;
                while (ri < ranges.size() && staged < STAGE && iovs < IOV_MAX) {
                    Range r = ranges.get(ri);
                    long n = Math.min(r.length() - rOff, STAGE - staged);
                    if (n > 0) {
                        remote.set(JAVA_LONG, 16L * iovs, r.remoteAddress() + rOff);
                        remote.set(JAVA_LONG, 16L * iovs + 8, n);
                        iovs++;
                        staged += n;
                        rOff += n;
                    }
                    if (rOff == r.length()) {
                        ri++;
                        rOff = 0;
                    }
                }
                // Read the staged iovecs. A partial read (the kernel copies less than asked, e.g. at
                // a page it cannot reach yet) is continued from where it stopped: the iovecs already
                // satisfied are skipped and the first unfinished one is advanced in place.
                long done = 0;
                int first = 0;
                int attempt = 0;
                while (done < staged) {
                    local.set(JAVA_LONG, 0, stage.address() + done);
                    local.set(JAVA_LONG, 8, staged - done);
                    long n;
                    try {
                        n = (long) PROCESS_VM_READV.invokeExact(capture, pid, local, 1L,
                                remote.asSlice(16L * first), (long) (iovs - first), 0L);
                    } catch (Throwable t) {
                        throw new AssertionError(t);
                    }
                    calls++;
                    if (n < 0) {
                        int errno = (int) ERRNO.get(capture, 0L);
                        if ((errno == 11 /* EAGAIN */ || errno == 4 /* EINTR */ || errno == 12 /* ENOMEM */)
                                && attempt < MAX_RETRIES) {
                            retries++;
                            LockSupport.parkNanos(100_000L << attempt++); // 0.1 ms, 0.2 ms, ... 12.8 ms
                            continue;
                        }
                        throw failure(pid, errno, remote.get(JAVA_LONG, 16L * first));
                    }
                    if (n == 0) {
                        throw new IOException("process_vm_readv(pid " + pid + ") copied nothing at remote address 0x"
                                + Long.toHexString(remote.get(JAVA_LONG, 16L * first)) + ": the range is not readable");
                    }
                    attempt = 0;
                    done += n;
                    for (long left = n; left > 0; ) {
                        long len = remote.get(JAVA_LONG, 16L * first + 8);
                        if (left >= len) {
                            left -= len;
                            first++;
                        } else {
                            remote.set(JAVA_LONG, 16L * first, remote.get(JAVA_LONG, 16L * first) + left);
                            remote.set(JAVA_LONG, 16L * first + 8, len - left);
                            left = 0;
                        }
                    }
                }
                // Write the stage back range by range, into the cache at each range's offset.
                long at = 0;
                int i = firstRange;
                long off = firstOff;
                while (at < staged) {
                    Range r = ranges.get(i);
                    long n = Math.min(r.length() - off, staged - at);
                    if (n > 0) {
                        cache.writeAt(stage, at, n, r.cacheOffset() + off);
                        at += n;
                        off += n;
                    }
                    if (off == r.length()) {
                        i++;
                        off = 0;
                    }
                }
                bytes += staged;
            }
        }
        for (Range r : ranges) {
            cache.setIsCached(r.cacheOffset(), r.length());
        }
        return new Stats(bytes, calls, retries);
    }

    private static IOException failure(int pid, int errno, long address) {
        String why = switch (errno) {
            case ESRCH -> "no such process (it exited?)";
            case EFAULT -> "address 0x" + Long.toHexString(address) + " is not mapped in the process";
            case EPERM -> "not permitted (needs ptrace access to the process)";
            default -> null;
        };
        ErrnoException e = new ErrnoException("process_vm_readv(pid " + pid + ")", errno);
        return why == null ? e : new IOException("process_vm_readv(pid " + pid + "): " + why, e);
    }
}
