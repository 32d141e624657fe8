package dev.lazyblock.daemon;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.AsynchronousCloseException;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Objects;

/**
 * A client of the control API on its Unix socket: one HTTP/1.1 exchange per call ({@code
 * Connection: close}), bounded in time and in reply size. The JDK's HTTP client speaks TCP only;
 * the API is small enough that a plain exchange is all a CLI or a test needs.
 */
public final class DaemonClient {
    static final int MAX_REPLY = 16 * 1024 * 1024;

    private final Path socket;
    private final Duration timeout;

    public DaemonClient(Path socket, Duration timeout) {
        this.socket = Objects.requireNonNull(socket, "socket");
        this.timeout = Objects.requireNonNull(timeout, "timeout");
    }

    /** A reply: its status and its body as text (JSON, or Prometheus text for /metrics). */
    public record Reply(int status, String body) {
        public boolean ok() {
            return status >= 200 && status < 300;
        }
    }

    public Reply get(String path) throws IOException {
        return call("GET", path, null);
    }

    public Reply post(String path, String json) throws IOException {
        return call("POST", path, json);
    }

    public Reply delete(String path) throws IOException {
        return call("DELETE", path, null);
    }

    /**
     * One exchange. Fails with an IOException naming the socket when nothing listens there or
     * the daemon does not answer within the timeout (the channel is closed under the read).
     */
    public Reply call(String method, String path, String json) throws IOException {
        if (!path.startsWith("/") || path.chars().anyMatch(c -> c <= ' ' || c >= 0x7f)) {
            throw new IllegalArgumentException("an API path starts with '/' and holds no spaces or control "
                    + "characters, got '" + Daemon.printable(path) + "'");
        }
        byte[] body = json == null ? new byte[0] : json.getBytes(StandardCharsets.UTF_8);
        StringBuilder head = new StringBuilder().append(method).append(' ').append(path).append(" HTTP/1.1\r\n")
                .append("Host: lazyblockd\r\nConnection: close\r\nAccept: application/json\r\n");
        if (json != null) {
            head.append("Content-Type: application/json\r\n");
        }
        head.append("Content-Length: ").append(body.length).append("\r\n\r\n");
        SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
        Thread watchdog = Thread.ofVirtual().name("lazyblock-client-timeout").start(() -> {
            try {
                Thread.sleep(timeout);
                ch.close();
            } catch (InterruptedException | IOException ignored) {
                // finished in time
            }
        });
        try (ch) {
            try {
                ch.connect(UnixDomainSocketAddress.of(socket));
            } catch (IOException e) {
                throw new IOException("no lazyblock daemon answers on " + socket + " (" + e.getMessage()
                        + "): start one with `lazyblock daemon --state-dir DIR --socket " + socket + "`", e);
            }
            IOException unsent = null;
            try {
                write(ch, head.toString().getBytes(StandardCharsets.US_ASCII));
                write(ch, body);
            } catch (AsynchronousCloseException e) {
                throw e;
            } catch (IOException e) {
                // The daemon may refuse a request before reading all of it (413 for a body over
                // its bound) and close: its reply is still there to read.
                unsent = e;
            }
            ByteArrayOutputStream reply = new ByteArrayOutputStream();
            ByteBuffer buf = ByteBuffer.allocate(64 * 1024);
            try {
                while (ch.read(buf.clear()) >= 0) {
                    reply.write(buf.array(), 0, buf.position());
                    if (reply.size() > MAX_REPLY) {
                        throw new IOException("the daemon's reply exceeds " + MAX_REPLY + " bytes");
                    }
                }
            } catch (IOException e) {
                if (unsent == null || e instanceof AsynchronousCloseException) {
                    throw e;
                }
            }
            if (unsent != null && reply.size() == 0) {
                throw new IOException("the daemon on " + socket + " closed the connection while " + method + " " + path
                        + " was being sent, without a reply: " + unsent.getMessage(), unsent);
            }
            return parse(reply.toByteArray());
        } catch (AsynchronousCloseException e) {
            throw new IOException("the daemon on " + socket + " did not answer " + method + " " + path + " within "
                    + timeout, e);
        } finally {
            watchdog.interrupt();
        }
    }

    private static void write(SocketChannel ch, byte[] b) throws IOException {
        ByteBuffer bb = ByteBuffer.wrap(b);
        while (bb.hasRemaining()) {
            ch.write(bb);
        }
    }

    static Reply parse(byte[] raw) throws IOException {
        int end = indexOf(raw, "\r\n\r\n".getBytes(StandardCharsets.US_ASCII), 0);
        if (end < 0) {
            throw new IOException("the daemon's reply has no complete HTTP head (" + raw.length + " bytes)");
        }
        String[] lines = new String(raw, 0, end, StandardCharsets.ISO_8859_1).split("\r\n");
        String[] status = lines[0].split(" ", 3);
        if (status.length < 2 || !status[0].startsWith("HTTP/1.")) {
            throw new IOException("expected an HTTP/1.x status line from the daemon, found '"
                    + Daemon.printable(lines[0]) + "'");
        }
        int code;
        try {
            code = Integer.parseInt(status[1]);
        } catch (NumberFormatException e) {
            throw new IOException("expected a numeric HTTP status, found '" + Daemon.printable(status[1]) + "'");
        }
        boolean chunked = false;
        long length = -1;
        for (int i = 1; i < lines.length; i++) {
            int colon = lines[i].indexOf(':');
            if (colon < 0) {
                continue;
            }
            String name = lines[i].substring(0, colon).trim().toLowerCase(Locale.ROOT);
            String value = lines[i].substring(colon + 1).trim();
            if (name.equals("transfer-encoding") && value.toLowerCase(Locale.ROOT).contains("chunked")) {
                chunked = true;
            } else if (name.equals("content-length")) {
                length = Long.parseLong(value);
            }
        }
        int start = end + 4;
        byte[] body;
        if (chunked) {
            body = dechunk(raw, start);
        } else {
            int n = length < 0 ? raw.length - start : (int) Math.min(length, raw.length - start);
            if (length >= 0 && n < length) {
                throw new IOException("the daemon's reply was cut short: " + n + " of " + length + " body bytes");
            }
            body = java.util.Arrays.copyOfRange(raw, start, start + n);
        }
        return new Reply(code, new String(body, StandardCharsets.UTF_8));
    }

    private static byte[] dechunk(byte[] raw, int pos) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] crlf = "\r\n".getBytes(StandardCharsets.US_ASCII);
        while (true) {
            int eol = indexOf(raw, crlf, pos);
            if (eol < 0) {
                throw new IOException("the daemon's chunked reply was cut short");
            }
            String size = new String(raw, pos, eol - pos, StandardCharsets.US_ASCII).split(";")[0].trim();
            int n = Integer.parseInt(size, 16);
            pos = eol + 2;
            if (n == 0) {
                return out.toByteArray();
            }
            if (pos + n > raw.length) {
                throw new IOException("the daemon's chunked reply was cut short");
            }
            out.write(raw, pos, n);
            pos += n + 2;
        }
    }

    private static int indexOf(byte[] a, byte[] what, int from) {
        outer:
        for (int i = from; i <= a.length - what.length; i++) {
            for (int j = 0; j < what.length; j++) {
                if (a[i + j] != what[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }
}
