package dev.lazyblock.uffd;

import dev.lazyblock.os.Libc.ErrnoException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.nio.charset.StandardCharsets;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

/**
 * The system calls the page-fault handler needs, through FFM: Unix sockets with descriptor
 * passing (the JDK's channels cannot receive a descriptor), userfaultfd ioctls, poll, and
 * signalling a faulting thread. Layouts are Linux x86_64's, checked against the kernel headers.
 * Each call returns the result or {@code -errno}; callers decide which errnos they handle.
 */
final class Sys {
    static final int AF_UNIX = 1;
    static final int SOCK_STREAM = 1;
    static final int SOCK_CLOEXEC = 0x80000;
    static final int SOL_SOCKET = 1;
    static final int SCM_RIGHTS = 1;
    static final int SO_PEERCRED = 17;
    static final short POLLIN = 1;
    static final short POLLERR = 8;
    static final short POLLHUP = 0x10;
    static final int SIGBUS = 7;

    static final int EINTR = 4;
    static final int EAGAIN = 11;
    static final int ENOENT = 2;
    static final int ESRCH = 3;
    static final int EEXIST = 17;

    /** ioctl numbers: _IOWR(0xAA, nr, size) etc., from linux/userfaultfd.h. */
    static final long UFFDIO_WAKE = 0x8010AA02L;     // _IOR(0xAA, 0x02, struct uffdio_range: 16)
    static final long UFFDIO_COPY = 0xC028AA03L;     // _IOWR(0xAA, 0x03, struct uffdio_copy: 40)
    static final long UFFDIO_ZEROPAGE = 0xC020AA04L; // _IOWR(0xAA, 0x04, struct uffdio_zeropage: 32)
    static final long UFFDIO_WRITEPROTECT = 0xC018AA06L; // _IOWR(0xAA, 0x06, struct uffdio_writeprotect: 24)
    static final long UFFDIO_COPY_MODE_WP = 1L << 1;
    static final long UFFD_PAGEFAULT_FLAG_WP = 1L << 1;

    static final int UFFD_EVENT_PAGEFAULT = 0x12;
    static final int UFFD_EVENT_FORK = 0x13;
    static final int UFFD_EVENT_REMAP = 0x14;
    static final int UFFD_EVENT_REMOVE = 0x15;
    static final int UFFD_EVENT_UNMAP = 0x16;
    static final long UFFD_PAGEFAULT_FLAG_WRITE = 1;
    /** sizeof(struct uffd_msg). */
    static final int UFFD_MSG_SIZE = 32;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final StructLayout CAPTURE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CAPTURE.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    private static final ThreadLocal<MemorySegment> ERRNO_CELL =
            ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(CAPTURE));

    private static final MethodHandle SOCKET = handle("socket", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle BIND = handle("bind", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle LISTEN = handle("listen", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle ACCEPT4 = handle("accept4",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
    private static final MethodHandle CONNECT = handle("connect", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle SENDMSG = handle("sendmsg", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle RECVMSG = handle("recvmsg", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle READ = handle("read", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle CLOSE = handle("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle POLL = handle("poll", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    private static final MethodHandle IOCTL = handle("ioctl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS), Linker.Option.firstVariadicArg(2));
    private static final MethodHandle GETSOCKOPT = handle("getsockopt",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
    private static final MethodHandle TGKILL = handle("tgkill", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle KILL = handle("kill", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));

    private Sys() {}

    private static MethodHandle handle(String name, FunctionDescriptor fd, Linker.Option... extra) {
        Linker.Option[] options = new Linker.Option[extra.length + 1];
        options[0] = Linker.Option.captureCallState("errno");
        System.arraycopy(extra, 0, options, 1, extra.length);
        return LINKER.downcallHandle(LINKER.defaultLookup().find(name).orElseThrow(), fd, options);
    }

    private static long result(long rc, MemorySegment cell) {
        return rc >= 0 ? rc : -(int) ERRNO.get(cell, 0L);
    }

    static ErrnoException error(String call, long negErrno) {
        return new ErrnoException(call, (int) -negErrno);
    }

    /** A {@code sockaddr_un} for {@code path}, NUL-terminated; its size is the address length. */
    private static MemorySegment unixAddress(Arena a, String path) {
        byte[] p = path.getBytes(StandardCharsets.UTF_8);
        if (p.length >= 108) {
            throw new IllegalArgumentException("socket path is " + p.length + " bytes, at most 107 fit: " + path);
        }
        MemorySegment addr = a.allocate(2 + p.length + 1, 8); // zeroed: the NUL is there
        addr.set(JAVA_SHORT, 0, (short) AF_UNIX);
        MemorySegment.copy(p, 0, addr, JAVA_BYTE_LAYOUT, 2, p.length);
        return addr;
    }

    /** A listening Unix stream socket at {@code path}; returns the fd or -errno. */
    static int listenUnix(String path, int backlog) {
        MemorySegment cell = ERRNO_CELL.get();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment addr = unixAddress(a, path);
            int fd = (int) SOCKET.invokeExact(cell, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                return (int) result(fd, cell);
            }
            int rc = (int) BIND.invokeExact(cell, fd, addr, (int) addr.byteSize());
            if (rc == 0) {
                rc = (int) LISTEN.invokeExact(cell, fd, backlog);
            }
            if (rc != 0) {
                long err = result(rc, cell);
                close(fd);
                return (int) err;
            }
            return fd;
        } catch (IllegalArgumentException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** A connected Unix stream socket (close-on-exec), or -errno. */
    static int connectUnix(String path) {
        MemorySegment cell = ERRNO_CELL.get();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment addr = unixAddress(a, path);
            int fd = (int) SOCKET.invokeExact(cell, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                return (int) result(fd, cell);
            }
            int rc;
            do {
                rc = (int) result((int) CONNECT.invokeExact(cell, fd, addr, (int) addr.byteSize()), cell);
            } while (rc == -EINTR);
            if (rc != 0) {
                close(fd);
                return rc;
            }
            return fd;
        } catch (IllegalArgumentException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /**
     * One sendmsg of {@code bytes}, with {@code fd} as SCM_RIGHTS unless it is negative. A stream
     * socket may take part of a large message: the rest goes in plain writes (the descriptor
     * travels with the first byte).
     */
    static void send(int sock, byte[] bytes, int fd) throws ErrnoException {
        MemorySegment cell = ERRNO_CELL.get();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment buf = a.allocate(Math.max(1, bytes.length));
            MemorySegment.copy(bytes, 0, buf, JAVA_BYTE_LAYOUT, 0, bytes.length);
            long done = 0;
            while (done < bytes.length) {
                MemorySegment iov = a.allocate(16, 8);
                iov.set(JAVA_LONG, 0, buf.address() + done);
                iov.set(JAVA_LONG, 8, bytes.length - done);
                MemorySegment msg = a.allocate(56, 8);
                msg.set(JAVA_LONG, 16, iov.address());
                msg.set(JAVA_LONG, 24, 1);
                if (fd >= 0 && done == 0) {
                    MemorySegment control = a.allocate(24, 8); // CMSG_SPACE(sizeof(int))
                    control.set(JAVA_LONG, 0, 20);             // CMSG_LEN(sizeof(int))
                    control.set(JAVA_INT, 8, SOL_SOCKET);
                    control.set(JAVA_INT, 12, SCM_RIGHTS);
                    control.set(JAVA_INT, 16, fd);
                    msg.set(JAVA_LONG, 32, control.address());
                    msg.set(JAVA_LONG, 40, control.byteSize());
                }
                long n = result((long) SENDMSG.invokeExact(cell, sock, msg, 0x4000 /* MSG_NOSIGNAL */), cell);
                if (n == -EINTR) {
                    continue;
                }
                if (n < 0) {
                    throw error("sendmsg", n);
                }
                done += n;
            }
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    private static final java.lang.foreign.ValueLayout.OfByte JAVA_BYTE_LAYOUT = java.lang.foreign.ValueLayout.JAVA_BYTE;

    static int accept(int fd) {
        MemorySegment cell = ERRNO_CELL.get();
        try {
            return (int) result((int) ACCEPT4.invokeExact(cell, fd, MemorySegment.NULL, MemorySegment.NULL, SOCK_CLOEXEC),
                    cell);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** A message and the descriptor passed with it (-1 if none). */
    record Received(byte[] bytes, int fd) {}

    /**
     * One recvmsg of up to {@code max} bytes with room for one SCM_RIGHTS descriptor.
     *
     * @return the message, or null at end of stream; throws on error
     */
    static Received receive(int sock, int max) throws ErrnoException {
        MemorySegment cell = ERRNO_CELL.get();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment buf = a.allocate(max);
            MemorySegment iov = a.allocate(16);
            iov.set(JAVA_LONG, 0, buf.address());
            iov.set(JAVA_LONG, 8, max);
            MemorySegment control = a.allocate(64, 8);
            MemorySegment msg = a.allocate(56, 8); // struct msghdr on x86_64
            msg.set(JAVA_LONG, 16, iov.address());  // msg_iov
            msg.set(JAVA_LONG, 24, 1);              // msg_iovlen
            msg.set(JAVA_LONG, 32, control.address()); // msg_control
            msg.set(JAVA_LONG, 40, control.byteSize()); // msg_controllen
            long n;
            do {
                n = result((long) RECVMSG.invokeExact(cell, sock, msg, 0x40000000 /* MSG_CMSG_CLOEXEC */), cell);
            } while (n == -EINTR);
            if (n < 0) {
                throw error("recvmsg", n);
            }
            if (n == 0) {
                return null;
            }
            int fd = -1;
            long controlLen = msg.get(JAVA_LONG, 40);
            if (controlLen >= 20) { // struct cmsghdr (16) + one int
                long len = control.get(JAVA_LONG, 0);
                int level = control.get(JAVA_INT, 8);
                int type = control.get(JAVA_INT, 12);
                if (level == SOL_SOCKET && type == SCM_RIGHTS && len >= 20) {
                    fd = control.get(JAVA_INT, 16);
                }
            }
            return new Received(buf.asSlice(0, n).toArray(JAVA_BYTE_LAYOUT), fd);
        } catch (ErrnoException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** The peer's pid (SO_PEERCRED), or -errno. */
    static int peerPid(int sock) {
        MemorySegment cell = ERRNO_CELL.get();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment cred = a.allocate(12, 4);
            MemorySegment len = a.allocate(JAVA_INT);
            len.set(JAVA_INT, 0, 12);
            int rc = (int) GETSOCKOPT.invokeExact(cell, sock, SOL_SOCKET, SO_PEERCRED, cred, len);
            return rc == 0 ? cred.get(JAVA_INT, 0) : (int) result(rc, cell);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    static long read(int fd, MemorySegment buf) {
        MemorySegment cell = ERRNO_CELL.get();
        try {
            return result((long) READ.invokeExact(cell, fd, buf, buf.byteSize()), cell);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** poll over {@code fds} (pollfd array of {@code n}); returns the count ready, 0 on timeout, or -errno. */
    static int poll(MemorySegment fds, int n, int timeoutMillis) {
        MemorySegment cell = ERRNO_CELL.get();
        try {
            return (int) result((int) POLL.invokeExact(cell, fds, (long) n, timeoutMillis), cell);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    static int ioctl(int fd, long request, MemorySegment arg) {
        MemorySegment cell = ERRNO_CELL.get();
        try {
            return (int) result((int) IOCTL.invokeExact(cell, fd, request, arg), cell);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    static int tgkill(int pid, int tid, int sig) {
        MemorySegment cell = ERRNO_CELL.get();
        try {
            return (int) result((int) TGKILL.invokeExact(cell, pid, tid, sig), cell);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    static int kill(int pid, int sig) {
        MemorySegment cell = ERRNO_CELL.get();
        try {
            return (int) result((int) KILL.invokeExact(cell, pid, sig), cell);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    static void close(int fd) {
        MemorySegment cell = ERRNO_CELL.get();
        try {
            int ignored = (int) CLOSE.invokeExact(cell, fd);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }
}
