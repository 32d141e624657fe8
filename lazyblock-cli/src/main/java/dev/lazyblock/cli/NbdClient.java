package dev.lazyblock.cli;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * The smallest NBD client a benchmark or a crash harness needs: fixed newstyle,
 * {@code NBD_OPT_EXPORT_NAME}, simple replies, one request in flight, over a Unix socket or TCP.
 * Spawning nbdcopy per read would measure process start; hundreds of sandboxes need hundreds of
 * cheap clients in one process.
 */
final class NbdClient implements AutoCloseable {
    private static final long NBDMAGIC = 0x4e42444d41474943L;
    private static final long IHAVEOPT = 0x49484156454F5054L;
    private static final int REQUEST_MAGIC = 0x25609513;
    private static final int SIMPLE_REPLY_MAGIC = 0x67446698;
    private static final int OPT_EXPORT_NAME = 1;
    private static final int CMD_READ = 0;
    private static final int CMD_WRITE = 1;
    private static final int CMD_DISC = 2;
    private static final int CMD_FLUSH = 3;
    private static final int FLAG_FUA = 1;
    /** Transmission flags (NBD_FLAG_HAS_FLAGS set): SEND_FLUSH and SEND_FUA. */
    private static final int SEND_FLUSH = 1 << 2;
    private static final int SEND_FUA = 1 << 3;

    private final SocketChannel ch;
    private final ByteBuffer header = ByteBuffer.allocate(28);
    private final ByteBuffer reply = ByteBuffer.allocate(16);
    private final long size;
    private final int flags;
    private long cookie;

    NbdClient(Path socket, String export) throws IOException {
        this(UnixDomainSocketAddress.of(socket), export);
    }

    NbdClient(SocketAddress at, String export) throws IOException {
        ch = SocketChannel.open(at instanceof InetSocketAddress ? StandardProtocolFamily.INET : StandardProtocolFamily.UNIX);
        try {
            ch.connect(at);
            ByteBuffer greet = readExactly(ByteBuffer.allocate(18));
            if (greet.getLong(0) != NBDMAGIC || greet.getLong(8) != IHAVEOPT) {
                throw new IOException("not a newstyle NBD server at " + at);
            }
            byte[] name = export.getBytes(StandardCharsets.UTF_8);
            ByteBuffer hello = ByteBuffer.allocate(4 + 16 + name.length);
            hello.putInt(1 | 2); // FIXED_NEWSTYLE | NO_ZEROES
            hello.putLong(IHAVEOPT).putInt(OPT_EXPORT_NAME).putInt(name.length).put(name).flip();
            writeFully(hello);
            ByteBuffer info = readExactly(ByteBuffer.allocate(10));
            size = info.getLong(0);
            flags = info.getShort(8) & 0xffff;
        } catch (IOException e) {
            ch.close();
            throw e;
        }
    }

    long size() {
        return size;
    }

    /** Whether the server takes FLUSH and FUA (it does for a writable export). */
    boolean flushes() {
        return (flags & (SEND_FLUSH | SEND_FUA)) == (SEND_FLUSH | SEND_FUA);
    }

    /** Reads {@code dst.remaining()} bytes at {@code off}. */
    void read(long off, ByteBuffer dst) throws IOException {
        int len = dst.remaining();
        send(CMD_READ, 0, off, len);
        awaitReply("read of " + len + " bytes at " + off);
        readExactly(dst);
    }

    /** Writes {@code src.remaining()} bytes at {@code off}; with {@code fua}, durable when this returns. */
    void write(long off, ByteBuffer src, boolean fua) throws IOException {
        int len = src.remaining();
        send(CMD_WRITE, fua ? FLAG_FUA : 0, off, len);
        writeFully(src);
        awaitReply("write of " + len + " bytes at " + off);
    }

    /** Every write acknowledged before this is durable when it returns. */
    void flush() throws IOException {
        send(CMD_FLUSH, 0, 0, 0);
        awaitReply("flush");
    }

    private void send(int command, int commandFlags, long off, int len) throws IOException {
        header.clear();
        header.putInt(REQUEST_MAGIC).putShort((short) commandFlags).putShort((short) command).putLong(++cookie)
                .putLong(off).putInt(len).flip();
        writeFully(header);
    }

    private void awaitReply(String what) throws IOException {
        reply.clear();
        readExactly(reply);
        if (reply.getInt(0) != SIMPLE_REPLY_MAGIC || reply.getLong(8) != cookie) {
            throw new IOException("unexpected NBD reply to the " + what + ": magic "
                    + Integer.toHexString(reply.getInt(0)) + ", cookie " + reply.getLong(8) + " (expected "
                    + Integer.toHexString(SIMPLE_REPLY_MAGIC) + ", " + cookie + ")");
        }
        if (reply.getInt(4) != 0) {
            throw new IOException("NBD " + what + " failed: error " + reply.getInt(4));
        }
    }

    private ByteBuffer readExactly(ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            if (ch.read(b) < 0) {
                throw new IOException("the NBD server closed the connection");
            }
        }
        return b;
    }

    private void writeFully(ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            ch.write(b);
        }
    }

    @Override
    public void close() throws IOException {
        try (ch) {
            send(CMD_DISC, 0, 0, 0);
        } catch (IOException ignored) {
            // closing anyway
        }
    }
}
