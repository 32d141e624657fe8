package dev.lazyblock.cli;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * The smallest NBD client a benchmark needs: fixed newstyle, {@code NBD_OPT_EXPORT_NAME}, simple
 * replies, one read in flight, over a Unix socket. Spawning nbdcopy per read would measure
 * process start; hundreds of sandboxes need hundreds of cheap clients in one process.
 */
final class NbdUnixClient implements AutoCloseable {
    private static final long NBDMAGIC = 0x4e42444d41474943L;
    private static final long IHAVEOPT = 0x49484156454F5054L;
    private static final int REQUEST_MAGIC = 0x25609513;
    private static final int SIMPLE_REPLY_MAGIC = 0x67446698;
    private static final int OPT_EXPORT_NAME = 1;
    private static final int CMD_READ = 0;
    private static final int CMD_DISC = 2;

    private final SocketChannel ch;
    private final ByteBuffer header = ByteBuffer.allocate(28);
    private final ByteBuffer reply = ByteBuffer.allocate(16);
    private final long size;
    private long cookie;

    NbdUnixClient(Path socket, String export) throws IOException {
        ch = SocketChannel.open(StandardProtocolFamily.UNIX);
        try {
            ch.connect(UnixDomainSocketAddress.of(socket));
            ByteBuffer greet = readExactly(ByteBuffer.allocate(18));
            if (greet.getLong(0) != NBDMAGIC || greet.getLong(8) != IHAVEOPT) {
                throw new IOException("not a newstyle NBD server on " + socket);
            }
            byte[] name = export.getBytes(StandardCharsets.UTF_8);
            ByteBuffer hello = ByteBuffer.allocate(4 + 16 + name.length);
            hello.putInt(1 | 2); // FIXED_NEWSTYLE | NO_ZEROES
            hello.putLong(IHAVEOPT).putInt(OPT_EXPORT_NAME).putInt(name.length).put(name).flip();
            writeFully(hello);
            ByteBuffer info = readExactly(ByteBuffer.allocate(10));
            size = info.getLong(0);
        } catch (IOException e) {
            ch.close();
            throw e;
        }
    }

    long size() {
        return size;
    }

    /** Reads {@code dst.remaining()} bytes at {@code off}. */
    void read(long off, ByteBuffer dst) throws IOException {
        long c = ++cookie;
        header.clear();
        header.putInt(REQUEST_MAGIC).putShort((short) 0).putShort((short) CMD_READ).putLong(c).putLong(off)
                .putInt(dst.remaining()).flip();
        writeFully(header);
        reply.clear();
        readExactly(reply);
        if (reply.getInt(0) != SIMPLE_REPLY_MAGIC || reply.getLong(8) != c) {
            throw new IOException("unexpected NBD reply (magic " + Integer.toHexString(reply.getInt(0)) + ")");
        }
        if (reply.getInt(4) != 0) {
            throw new IOException("NBD read of " + dst.remaining() + " bytes at " + off + " failed: error "
                    + reply.getInt(4));
        }
        readExactly(dst);
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
            header.clear();
            header.putInt(REQUEST_MAGIC).putShort((short) 0).putShort((short) CMD_DISC).putLong(++cookie).putLong(0)
                    .putInt(0).flip();
            writeFully(header);
        } catch (IOException ignored) {
            // closing anyway
        }
    }
}
