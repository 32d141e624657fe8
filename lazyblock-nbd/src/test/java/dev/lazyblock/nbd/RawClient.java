package dev.lazyblock.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * A deliberately bare NBD client over a plain socket, for what real clients never send:
 * malformed handshakes, bad requests, disconnects mid-message. Every read has a 10 s limit.
 */
final class RawClient implements AutoCloseable {
    static final int TIMEOUT_MS = 10_000;

    final Socket socket;
    final DataInputStream in;
    final DataOutputStream out;

    private RawClient(Socket s) throws IOException {
        this.socket = s;
        s.setSoTimeout(TIMEOUT_MS);
        s.setTcpNoDelay(true);
        in = new DataInputStream(s.getInputStream());
        out = new DataOutputStream(s.getOutputStream());
    }

    static RawClient connect(int port) throws IOException {
        return new RawClient(new Socket(InetAddress.getLoopbackAddress(), port));
    }

    /** Reads the server's greeting and checks it; returns the handshake flags. */
    int greeting() throws IOException {
        assertEquals(Nbd.NBDMAGIC, in.readLong(), "NBDMAGIC");
        assertEquals(Nbd.IHAVEOPT, in.readLong(), "IHAVEOPT");
        return in.readUnsignedShort();
    }

    /** Greeting, then client flags (fixed newstyle, no zeroes). */
    RawClient hello() throws IOException {
        greeting();
        out.writeInt(Nbd.FLAG_C_FIXED_NEWSTYLE | Nbd.FLAG_C_NO_ZEROES);
        return this;
    }

    void option(int option, byte[] data) throws IOException {
        out.writeLong(Nbd.IHAVEOPT);
        out.writeInt(option);
        out.writeInt(data.length);
        out.write(data);
        out.flush();
    }

    record OptionReply(int option, int type, byte[] data) {
        String text() {
            return new String(data, StandardCharsets.UTF_8);
        }
    }

    OptionReply optionReply() throws IOException {
        assertEquals(Nbd.OPTION_REPLY_MAGIC, in.readLong(), "option reply magic");
        int option = in.readInt();
        int type = in.readInt();
        byte[] data = new byte[in.readInt()];
        in.readFully(data);
        return new OptionReply(option, type, data);
    }

    /** Replies to one option up to its final one (ACK or an error). */
    List<OptionReply> optionReplies() throws IOException {
        List<OptionReply> all = new ArrayList<>();
        while (true) {
            OptionReply r = optionReply();
            all.add(r);
            if (r.type() == Nbd.REP_ACK || r.type() < 0) {
                return all;
            }
        }
    }

    static byte[] goData(String name, int... infos) {
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(4 + n.length + 2 + 2 * infos.length);
        b.putInt(n.length).put(n).putShort((short) infos.length);
        for (int i : infos) {
            b.putShort((short) i);
        }
        return b.array();
    }

    static byte[] metaData(String name, String... queries) {
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        int len = 4 + n.length + 4;
        for (String q : queries) {
            len += 4 + q.getBytes(StandardCharsets.UTF_8).length;
        }
        ByteBuffer b = ByteBuffer.allocate(len);
        b.putInt(n.length).put(n).putInt(queries.length);
        for (String q : queries) {
            byte[] t = q.getBytes(StandardCharsets.UTF_8);
            b.putInt(t.length).put(t);
        }
        return b.array();
    }

    /** What NBD_OPT_GO said about the export. */
    record Export(long size, int flags) {}

    /**
     * Negotiates like qemu does (structured replies and base:allocation if asked for), then GO.
     */
    Export go(String name, boolean structured, boolean allocation) throws IOException {
        if (structured) {
            option(Nbd.OPT_STRUCTURED_REPLY, new byte[0]);
            assertEquals(Nbd.REP_ACK, optionReply().type());
        }
        if (allocation) {
            option(Nbd.OPT_SET_META_CONTEXT, metaData(name, Nbd.BASE_ALLOCATION));
            List<OptionReply> r = optionReplies();
            assertEquals(Nbd.REP_META_CONTEXT, r.getFirst().type(), "SET_META_CONTEXT reply");
            assertEquals(Nbd.REP_ACK, r.getLast().type());
        }
        option(Nbd.OPT_GO, goData(name, Nbd.INFO_BLOCK_SIZE));
        Export e = null;
        for (OptionReply r : optionReplies()) {
            if (r.type() == Nbd.REP_INFO && ByteBuffer.wrap(r.data()).getShort() == Nbd.INFO_EXPORT) {
                ByteBuffer b = ByteBuffer.wrap(r.data(), 2, 10);
                e = new Export(b.getLong(), Short.toUnsignedInt(b.getShort()));
            } else if (r.type() != Nbd.REP_INFO && r.type() != Nbd.REP_ACK) {
                fail("GO " + name + " failed: reply type " + r.type() + " " + r.text());
            }
        }
        if (e == null) {
            fail("GO " + name + " gave no NBD_INFO_EXPORT");
        }
        return e;
    }

    void request(int flags, int type, long cookie, long offset, long length) throws IOException {
        out.writeInt(Nbd.REQUEST_MAGIC);
        out.writeShort(flags);
        out.writeShort(type);
        out.writeLong(cookie);
        out.writeLong(offset);
        out.writeInt((int) length);
        out.flush();
    }

    void write(long cookie, long offset, byte[] data) throws IOException {
        out.writeInt(Nbd.REQUEST_MAGIC);
        out.writeShort(0);
        out.writeShort(Nbd.CMD_WRITE);
        out.writeLong(cookie);
        out.writeLong(offset);
        out.writeInt(data.length);
        out.write(data);
        out.flush();
    }

    /** A simple reply: error and cookie (data, if any, follows: read it with {@link #data}). */
    record Simple(int error, long cookie) {}

    Simple simpleReply() throws IOException {
        assertEquals(Nbd.SIMPLE_REPLY_MAGIC, in.readInt(), "simple reply magic");
        return new Simple(in.readInt(), in.readLong());
    }

    byte[] data(int n) throws IOException {
        byte[] b = new byte[n];
        in.readFully(b);
        return b;
    }

    /** One reply message, simple or structured chunk. */
    record Chunk(boolean simple, int flags, int type, long cookie, int error, byte[] payload) {
        boolean done() {
            return simple || (flags & Nbd.REPLY_FLAG_DONE) != 0;
        }

        /** The error of an error chunk or simple reply, 0 otherwise. */
        int errorCode() {
            if (simple) {
                return error;
            }
            return (type & 0x8000) != 0 ? ByteBuffer.wrap(payload).getInt() : 0;
        }

        String message() {
            if (simple || (type & 0x8000) == 0) {
                return "";
            }
            ByteBuffer b = ByteBuffer.wrap(payload);
            b.getInt();
            int n = b.getShort();
            return new String(payload, 6, n, StandardCharsets.UTF_8);
        }
    }

    /** Reads a structured chunk, or a simple reply without data. */
    Chunk chunk() throws IOException {
        int magic = in.readInt();
        if (magic == Nbd.SIMPLE_REPLY_MAGIC) {
            int error = in.readInt();
            return new Chunk(true, 0, 0, in.readLong(), error, new byte[0]);
        }
        assertEquals(Nbd.STRUCTURED_REPLY_MAGIC, magic, "reply magic");
        int flags = in.readUnsignedShort();
        int type = in.readUnsignedShort();
        long cookie = in.readLong();
        byte[] payload = new byte[in.readInt()];
        in.readFully(payload);
        return new Chunk(false, flags, type, cookie, 0, payload);
    }

    /** A structured READ's chunks up to the one marked done, assembled into {@code len} bytes. */
    byte[] structuredRead(long cookie, long offset, int len, List<Chunk> seen) throws IOException {
        byte[] outBytes = new byte[len];
        while (true) {
            Chunk c = chunk();
            assertEquals(cookie, c.cookie(), "cookie");
            seen.add(c);
            if (c.errorCode() != 0) {
                fail("READ failed: " + Nbd.errorName(c.errorCode()) + " " + c.message());
            }
            ByteBuffer p = ByteBuffer.wrap(c.payload());
            if (c.type() == Nbd.REPLY_TYPE_OFFSET_DATA) {
                long o = p.getLong();
                p.get(outBytes, (int) (o - offset), p.remaining());
            } else if (c.type() == Nbd.REPLY_TYPE_OFFSET_HOLE) {
                long o = p.getLong();
                int n = p.getInt();
                java.util.Arrays.fill(outBytes, (int) (o - offset), (int) (o - offset) + n, (byte) 0);
            }
            if (c.done()) {
                return outBytes;
            }
        }
    }

    /** True if the server closes the connection within the read timeout (after any bytes it still sends). */
    boolean closedByServer() throws IOException {
        try {
            while (in.read() >= 0) {
                // drain what was sent before the close
            }
            return true;
        } catch (SocketTimeoutException e) {
            return false;
        } catch (EOFException e) {
            return true;
        } catch (IOException e) {
            return true; // reset
        }
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
