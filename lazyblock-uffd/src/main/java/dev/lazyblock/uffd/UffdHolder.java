package dev.lazyblock.uffd;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Keeps each VM's userfaultfd open while its page-fault handler restarts. A Firecracker VM whose
 * handler dies keeps its own copy of the userfaultfd, so the kernel neither fails nor zero-fills
 * its faults: they wait, forever, for a handler that is gone. The holder is a small process of
 * its own (it reads no image and fetches nothing, so it has nothing to crash on) that a handler
 * gives a duplicate of the userfaultfd to, with what it needs to serve it again (the VMM's pid,
 * the regions, the ranges the guest gave back); a restarted handler takes it back
 * ({@link PageFaultHandler#resume}) and serves the faults that waited.
 *
 * <p>Protocol, one request per connection on a Unix stream socket: a 4-byte big-endian length,
 * then that many bytes of UTF-8 {@code "PUT <name>\n<state>"} (the userfaultfd as SCM_RIGHTS with
 * the first byte), {@code "TAKE <name>"} or {@code "DROP <name>"}; the reply is framed the same:
 * {@code "OK\n<state>"} (TAKE: with a duplicate of the descriptor) or {@code "ERR <why>"}.
 *
 * <p>Bounds: {@link #MAX_ENTRIES} names, {@link #MAX_STATE} bytes of state each; a client that
 * does not send its request within {@link #REQUEST_TIMEOUT_MS} is dropped, so one stuck client
 * never blocks the others. The socket is mode 0600: a userfaultfd gives its taker the VM's memory.
 * {@link #held} is guarded by this: the event loop changes it, {@link #size()} and close read it.
 */
public final class UffdHolder implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(UffdHolder.class);
    static final int MAX_ENTRIES = 4096;
    static final int MAX_STATE = 4 << 20;
    static final int REQUEST_TIMEOUT_MS = 2000;
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");

    private record Held(int fd, byte[] state) {}

    private final Path socketPath;
    private final Map<String, Held> held = new HashMap<>();
    private volatile boolean closing;

    public UffdHolder(Path socketPath) {
        this.socketPath = socketPath;
    }

    /** Names currently held (for tests and the log). */
    public synchronized int size() {
        return held.size();
    }

    /** Serves requests until {@link #close()}; returns then, with every held descriptor closed. */
    public void serve() throws IOException {
        Files.deleteIfExists(socketPath);
        int listen = Sys.listenUnix(socketPath.toString(), 64);
        if (listen < 0) {
            throw Sys.error("listen on " + socketPath, listen);
        }
        // Whoever can connect can TAKE a VM's userfaultfd, and with it read and write its memory:
        // the owner only.
        Files.setPosixFilePermissions(socketPath, java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"));
        log.info("holding userfaultfds for restarting handlers on {}", socketPath);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment pfd = arena.allocate(8, 4);
            while (!closing) {
                pfd.set(JAVA_INT, 0, listen);
                pfd.set(JAVA_SHORT, 4, Sys.POLLIN);
                int ready = Sys.poll(pfd, 1, 100);
                if (ready <= 0) {
                    if (ready < 0 && ready != -Sys.EINTR) {
                        throw Sys.error("poll(" + socketPath + ")", ready);
                    }
                    continue;
                }
                int sock = Sys.accept(listen);
                if (sock < 0) {
                    continue;
                }
                try {
                    answer(sock, pfd);
                } catch (IOException | RuntimeException e) {
                    log.warn("uffd holder: a request on {} failed: {}", socketPath, e.toString());
                } finally {
                    Sys.close(sock);
                }
            }
        } finally {
            Sys.close(listen);
            Files.deleteIfExists(socketPath);
            synchronized (this) {
                held.values().forEach(h -> Sys.close(h.fd()));
                held.clear();
            }
        }
    }

    private void answer(int sock, MemorySegment pfd) throws IOException {
        pfd.set(JAVA_INT, 0, sock);
        pfd.set(JAVA_SHORT, 4, Sys.POLLIN);
        if (Sys.poll(pfd, 1, REQUEST_TIMEOUT_MS) <= 0) {
            throw new IOException("no request within " + REQUEST_TIMEOUT_MS + " ms");
        }
        Message m = receive(sock, MAX_STATE + 256);
        String text = new String(m.bytes(), StandardCharsets.UTF_8);
        int nl = text.indexOf('\n');
        String head = nl < 0 ? text : text.substring(0, nl);
        String[] words = head.split(" ", 2);
        String reply;
        int replyFd = -1;
        try {
            if (words.length != 2 || !NAME.matcher(words[1]).matches()) {
                reply = "ERR expected PUT|TAKE|DROP <name> (name: 1 to 128 of [A-Za-z0-9._-]), got '"
                        + printable(head) + "'";
            } else {
                String name = words[1];
                synchronized (this) {
                    switch (words[0]) {
                        case "PUT" -> {
                            if (m.fd() < 0) {
                                reply = "ERR PUT " + name + " carried no descriptor (SCM_RIGHTS)";
                            } else if (!held.containsKey(name) && held.size() >= MAX_ENTRIES) {
                                reply = "ERR the holder holds its maximum of " + MAX_ENTRIES + " userfaultfds";
                            } else {
                                byte[] state = nl < 0 ? new byte[0] : text.substring(nl + 1).getBytes(StandardCharsets.UTF_8);
                                Held old = held.put(name, new Held(m.fd(), state));
                                if (old != null) {
                                    Sys.close(old.fd());
                                }
                                m = m.keep();
                                reply = "OK\n";
                            }
                        }
                        case "TAKE" -> {
                            Held h = held.get(name);
                            if (h == null) {
                                reply = NOT_HELD + "'" + name + "'";
                            } else {
                                reply = "OK\n" + new String(h.state(), StandardCharsets.UTF_8);
                                replyFd = h.fd(); // sent as a duplicate; the holder keeps its own until DROP
                            }
                        }
                        case "DROP" -> {
                            Held h = held.remove(name);
                            if (h != null) {
                                Sys.close(h.fd());
                            }
                            reply = "OK\n";
                        }
                        default -> reply = "ERR unknown request '" + printable(words[0])
                                + "': expected PUT, TAKE or DROP";
                    }
                }
            }
        } finally {
            m.closeUnkept();
        }
        send(sock, reply.getBytes(StandardCharsets.UTF_8), replyFd);
    }

    @Override
    public void close() {
        closing = true;
    }

    // ---- client side: what a handler calls ----

    /** Gives the holder at {@code holder} a duplicate of {@code uffd} with {@code state}, as {@code name}. */
    public static void put(Path holder, String name, int uffd, String state) throws IOException {
        request(holder, "PUT " + name + "\n" + state, uffd);
    }

    /** A duplicate of the userfaultfd held as {@code name}, and its state. */
    public record Taken(int uffd, String state) {}

    /** Nothing is held under the name asked for: no handler kept it, or its VMM went away. */
    public static final class NotHeldException extends IOException {
        NotHeldException(String message) {
            super(message);
        }
    }

    private static final String NOT_HELD = "ERR no userfaultfd is held as ";

    /** @throws NotHeldException when nothing is held as {@code name} */
    public static Taken take(Path holder, String name) throws IOException {
        Message m = request(holder, "TAKE " + name, -1);
        if (m.fd() < 0) {
            throw new IOException("the uffd holder at " + holder + " answered TAKE " + name + " without a descriptor");
        }
        String text = new String(m.bytes(), StandardCharsets.UTF_8);
        return new Taken(m.fd(), text.substring(text.indexOf('\n') + 1));
    }

    /** The holder closes its copy: the VM is gone, or its handler ended on purpose. */
    public static void drop(Path holder, String name) throws IOException {
        request(holder, "DROP " + name, -1);
    }

    private static Message request(Path holder, String text, int fd) throws IOException {
        int sock = Sys.connectUnix(holder.toString());
        if (sock < 0) {
            throw Sys.error("connect to the uffd holder at " + holder, sock);
        }
        try {
            send(sock, text.getBytes(StandardCharsets.UTF_8), fd);
            Message reply = receive(sock, MAX_STATE + 256);
            String s = new String(reply.bytes(), StandardCharsets.UTF_8);
            if (!s.startsWith("OK\n")) {
                reply.closeUnkept();
                if (s.startsWith(NOT_HELD)) {
                    throw new NotHeldException("the uffd holder at " + holder + " holds no userfaultfd as "
                            + s.substring(NOT_HELD.length()));
                }
                throw new IOException("the uffd holder at " + holder + " refused "
                        + text.substring(0, Math.max(0, text.indexOf('\n') < 0 ? text.length() : text.indexOf('\n')))
                        + ": " + s);
            }
            return reply;
        } finally {
            Sys.close(sock);
        }
    }

    /** At most 64 characters of {@code s}, with anything outside printable ASCII shown as '?'. */
    private static String printable(String s) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < s.length() && i < 64; i++) {
            char c = s.charAt(i);
            b.append(c >= 0x20 && c < 0x7f ? c : '?');
        }
        return s.length() > 64 ? b + "..." : b.toString();
    }

    // ---- framing ----

    /** A framed message and the descriptor that came with it (-1 if none). */
    private record Message(byte[] bytes, int fd, boolean kept) {
        Message keep() {
            return new Message(bytes, fd, true);
        }

        void closeUnkept() {
            if (fd >= 0 && !kept) {
                Sys.close(fd);
            }
        }
    }

    private static void send(int sock, byte[] body, int fd) throws IOException {
        byte[] framed = ByteBuffer.allocate(4 + body.length).putInt(body.length).put(body).array();
        Sys.send(sock, framed, fd);
    }

    private static Message receive(int sock, int max) throws IOException {
        Sys.Received first = Sys.receive(sock, 64 << 10);
        if (first == null || first.bytes().length < 4) {
            if (first != null && first.fd() >= 0) {
                Sys.close(first.fd());
            }
            throw new IOException("expected a framed message (4-byte length first), got "
                    + (first == null ? "end of stream" : first.bytes().length + " bytes"));
        }
        int len = ByteBuffer.wrap(first.bytes()).getInt();
        if (len < 0 || len > max) {
            if (first.fd() >= 0) {
                Sys.close(first.fd());
            }
            throw new IOException("message of " + len + " bytes: expected 0 to " + max);
        }
        byte[] body = new byte[len];
        int have = Math.min(len, first.bytes().length - 4);
        System.arraycopy(first.bytes(), 4, body, 0, have);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment buf = a.allocate(64 << 10);
            while (have < len) {
                long n = Sys.read(sock, buf.asSlice(0, Math.min(buf.byteSize(), len - have)));
                if (n == -Sys.EINTR) {
                    continue;
                }
                if (n <= 0) {
                    if (first.fd() >= 0) {
                        Sys.close(first.fd());
                    }
                    throw new IOException("message cut short: " + have + " of " + len + " bytes"
                            + (n < 0 ? " (errno " + -n + ")" : ""));
                }
                MemorySegment.copy(buf, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, body, have, (int) n);
                have += (int) n;
            }
        }
        return new Message(body, first.fd(), false);
    }
}
