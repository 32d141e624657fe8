package dev.lazyblock.nbd;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;

/**
 * Buffered big-endian reads from a socket, for the one thread that reads a connection. Small
 * fields come out of a 64 KiB buffer (so a batch of pipelined requests costs one system call);
 * large payloads are read straight into their destination after what is already buffered.
 */
final class WireIn {
    private final ReadableByteChannel ch;
    private final ByteBuffer buf = ByteBuffer.allocateDirect(64 << 10).flip();

    WireIn(ReadableByteChannel ch) {
        this.ch = ch;
    }

    /**
     * Makes {@code n} bytes available.
     *
     * @return false if the peer closed the connection before sending any of them and
     *         {@code eofOk}; an {@link EOFException} if it closed after sending some
     */
    boolean fill(int n, boolean eofOk) throws IOException {
        if (buf.remaining() >= n) {
            return true;
        }
        buf.compact();
        try {
            while (buf.position() < n) {
                if (ch.read(buf) < 0) {
                    if (eofOk && buf.position() == 0) {
                        return false;
                    }
                    throw new EOFException("the client closed the connection after " + buf.position() + " of " + n
                            + " bytes");
                }
            }
        } finally {
            buf.flip();
        }
        return true;
    }

    long getLong() {
        return buf.getLong();
    }

    int getInt() {
        return buf.getInt();
    }

    int getUnsignedShort() {
        return Short.toUnsignedInt(buf.getShort());
    }

    long readLong() throws IOException {
        fill(8, false);
        return buf.getLong();
    }

    int readInt() throws IOException {
        fill(4, false);
        return buf.getInt();
    }

    /** Fills {@code dst} to its limit. */
    void readFully(ByteBuffer dst) throws IOException {
        if (buf.hasRemaining()) {
            int n = Math.min(buf.remaining(), dst.remaining());
            dst.put(buf.slice(buf.position(), n));
            buf.position(buf.position() + n);
        }
        while (dst.hasRemaining()) {
            if (ch.read(dst) < 0) {
                throw new EOFException("the client closed the connection with " + dst.remaining()
                        + " bytes of a message still to come");
            }
        }
    }

    byte[] readBytes(int n) throws IOException {
        byte[] out = new byte[n];
        readFully(ByteBuffer.wrap(out));
        return out;
    }
}
