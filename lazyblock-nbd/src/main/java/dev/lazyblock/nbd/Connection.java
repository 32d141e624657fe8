package dev.lazyblock.nbd;

import static dev.lazyblock.nbd.Nbd.*;

import dev.lazyblock.cache.CacheClosedException;
import dev.lazyblock.cache.PresenceBitmap;
import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.device.Device;
import dev.lazyblock.device.Overlay;
import dev.lazyblock.os.Libc;
import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.net.SocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One client: the fixed newstyle handshake, then the transmission phase.
 *
 * <p>Threads: one (virtual) thread reads the socket: option haggling, then request headers and
 * WRITE payloads. Each valid request that may block (a fetch, a write) runs on a virtual thread
 * of its own, so requests of one connection proceed in parallel (a read waiting on a fetch does
 * not hold up a read of cached bytes) and replies go out as they complete, tagged with the
 * request's cookie. A read of cached bytes is answered by the reading thread itself. Replies are
 * written under {@link #sendLock}, each one whole (a structured reply's chunks together).
 * A per-connection byte budget bounds the requests and payload bytes in flight.
 *
 * <p>Errors: a request the server can refuse cleanly gets the protocol's error (EINVAL,
 * EOVERFLOW, EPERM, ENOSPC...) and the connection goes on. A client that breaks the framing
 * (bad magic, unknown client flags, an option or WRITE payload too large to skip, a
 * disconnect mid-message) loses its connection; nothing else is affected.
 */
final class Connection implements Runnable {
    static final Logger log = LoggerFactory.getLogger(NbdServer.class);

    /** Larger option data is refused (NBD_REP_ERR_TOO_BIG) and the connection closed. */
    static final int MAX_OPTION_BYTES = 64 << 10;
    /** At most this many extents in one BLOCK_STATUS reply (the protocol asks for at most 2^20). */
    static final int MAX_EXTENTS = 1 << 16;
    /** At most this many chunks in one structured READ reply that skips holes. */
    static final int MAX_READ_CHUNKS = 256;
    /** Budget units every request costs, whatever its payload: bounds requests in flight. */
    private static final int REQUEST_COST = 4096;
    /** How long a connection refused for an oversized WRITE keeps draining before it closes. */
    static final long LINGER_SECONDS = 5;

    private final NbdServer server;
    private final SocketChannel ch;
    private final String peer;
    private final WireIn in;
    private final BufferPool pool;
    private final Semaphore budget;
    private final int budgetTotal;

    private final ReentrantLock sendLock = new ReentrantLock();
    /** Reply headers; guarded by {@link #sendLock}. */
    private final ByteBuffer head = ByteBuffer.allocateDirect(64);

    // Negotiated in the handshake; read-only afterwards (the request threads start after it).
    private boolean structured;
    private boolean noZeroes;
    private NbdExport metaExport;
    private NbdExport export;
    private boolean allocationContext;
    private int transmissionFlags;
    private boolean zeroCopy;
    private final List<String> options = new ArrayList<>();

    private volatile boolean closing;
    private volatile Thread reader;

    Connection(NbdServer server, SocketChannel ch, BufferPool pool, int budgetBytes) {
        this.server = server;
        this.ch = ch;
        this.pool = pool;
        this.budgetTotal = budgetBytes;
        this.budget = new Semaphore(budgetBytes);
        this.in = new WireIn(ch);
        String p;
        try {
            SocketAddress a = ch.getRemoteAddress();
            p = String.valueOf(a);
        } catch (IOException e) {
            p = "?";
        }
        this.peer = p;
    }

    @Override
    public void run() {
        reader = Thread.currentThread();
        try {
            boolean transmit;
            ScheduledFuture<?> deadline = server.scheduleHandshakeTimeout(this);
            try {
                transmit = handshake();
            } finally {
                deadline.cancel(false);
            }
            if (transmit) {
                log.debug("{}: export '{}', options {}, {} replies, base:allocation {}, flags 0x{}", peer, export.name(),
                        options, structured ? "structured" : "simple", allocationContext,
                        Integer.toHexString(transmissionFlags));
                transmission();
            }
        } catch (ProtocolException e) {
            log.warn("{}: {}; closing the connection", peer, e.getMessage());
        } catch (EOFException e) {
            log.debug("{}: {}", peer, e.getMessage());
        } catch (IOException e) {
            if (!closing) {
                log.debug("{}: connection ended: {}", peer, e.toString());
            }
        } catch (RuntimeException | Error e) {
            server.stats.unexpected.increment();
            log.error("{}: connection failed", peer, e);
        } finally {
            drain();
            closeChannel();
            server.connectionEnded(this);
        }
    }

    /** Called by the handshake watchdog: a client that does not finish negotiating in time. */
    void handshakeTimedOut() {
        log.warn("{}: no export chosen within the handshake timeout; closing the connection", peer);
        closeChannel();
    }

    /** Server shutdown: stop reading requests; those in flight finish, then the connection closes. */
    void shutdown() {
        closing = true;
        try {
            ch.shutdownInput();
        } catch (IOException e) {
            closeChannel();
        }
    }

    void closeChannel() {
        closing = true;
        try {
            ch.close();
        } catch (IOException ignored) {
            // closing anyway
        }
    }

    boolean awaitEnd(long nanos) throws InterruptedException {
        Thread t = reader;
        return t == null || t.join(java.time.Duration.ofNanos(Math.max(1, nanos)));
    }

    /** Waits for the requests in flight (bounded by the server's drain timeout). */
    private void drain() {
        try {
            if (budget.tryAcquire(budgetTotal, server.drainTimeout().toNanos(), TimeUnit.NANOSECONDS)) {
                budget.release(budgetTotal);
            } else {
                log.warn("{}: requests still running after {}; closing the connection under them", peer,
                        server.drainTimeout());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    // ================================================================== handshake

    /** @return true to enter transmission, false if the client aborted */
    private boolean handshake() throws IOException {
        ByteBuffer hello = ByteBuffer.allocate(18);
        hello.putLong(NBDMAGIC).putLong(IHAVEOPT).putShort((short) (FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES));
        sendRaw(hello.flip());
        int clientFlags = in.readInt();
        if ((clientFlags & ~(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES)) != 0) {
            throw new ProtocolException("unknown client flags 0x" + Integer.toHexString(clientFlags));
        }
        noZeroes = (clientFlags & FLAG_C_NO_ZEROES) != 0;
        while (true) {
            in.fill(16, false);
            long magic = in.getLong();
            int option = in.getInt();
            long length = Integer.toUnsignedLong(in.getInt());
            if (magic != IHAVEOPT) {
                throw new ProtocolException(String.format("bad option magic 0x%016x (expected IHAVEOPT)", magic));
            }
            if (length > MAX_OPTION_BYTES) {
                optionError(option, REP_ERR_TOO_BIG, "option data of " + length + " bytes is over this server's limit of "
                        + MAX_OPTION_BYTES);
                throw new ProtocolException(optionName(option) + " with " + length + " bytes of data (limit "
                        + MAX_OPTION_BYTES + ")");
            }
            byte[] data = in.readBytes((int) length);
            options.add(optionName(option));
            if (server.isClosing() && option != OPT_ABORT) {
                optionError(option, REP_ERR_SHUTDOWN, "the server is shutting down");
                continue;
            }
            switch (option) {
                case OPT_EXPORT_NAME -> {
                    exportName(data);
                    return true;
                }
                case OPT_ABORT -> {
                    optionReply(option, REP_ACK, null);
                    return false;
                }
                case OPT_LIST -> list(data);
                case OPT_INFO, OPT_GO -> {
                    if (info(option, data) && option == OPT_GO) {
                        return true;
                    }
                }
                case OPT_STRUCTURED_REPLY -> {
                    if (data.length != 0) {
                        optionError(option, REP_ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY carries no data");
                    } else {
                        structured = true;
                        optionReply(option, REP_ACK, null);
                    }
                }
                case OPT_LIST_META_CONTEXT, OPT_SET_META_CONTEXT -> metaContext(option, data);
                // STARTTLS (this server runs without TLS), EXTENDED_HEADERS and anything unknown.
                default -> optionError(option, REP_ERR_UNSUP, optionName(option) + " is not supported by this server");
            }
        }
    }

    /** NBD_OPT_EXPORT_NAME: cannot be refused with an error, so a bad name ends the session. */
    private void exportName(byte[] data) throws IOException {
        String name;
        try {
            name = NbdExport.decodeName(data, 0, data.length);
        } catch (NbdExport.InvalidNameException e) {
            throw new ProtocolException("NBD_OPT_EXPORT_NAME: " + e.getMessage());
        }
        NbdExport e = server.find(name);
        if (e == null) {
            throw new ProtocolException("NBD_OPT_EXPORT_NAME: no export named '" + name + "'");
        }
        enter(e);
        ByteBuffer b = ByteBuffer.allocate(10 + (noZeroes ? 0 : 124));
        b.putLong(e.device().size()).putShort((short) transmissionFlags);
        sendRaw(b.position(b.limit()).flip());
    }

    private void enter(NbdExport e) {
        export = e;
        transmissionFlags = transmissionFlags(e);
        allocationContext = structured && metaExport == e;
        zeroCopy = e.device() instanceof Chunker;
    }

    private int transmissionFlags(NbdExport e) {
        int f = FLAG_HAS_FLAGS | FLAG_SEND_CACHE | FLAG_CAN_MULTI_CONN;
        if (structured) {
            f |= FLAG_SEND_DF;
        }
        if (e.writable()) {
            f |= FLAG_SEND_FLUSH | FLAG_SEND_FUA | FLAG_SEND_TRIM | FLAG_SEND_WRITE_ZEROES;
        } else {
            f |= FLAG_READ_ONLY;
        }
        return f;
    }

    private void list(byte[] data) throws IOException {
        if (data.length != 0) {
            optionError(OPT_LIST, REP_ERR_INVALID, "NBD_OPT_LIST carries no data");
            return;
        }
        for (NbdExport e : server.exports()) {
            byte[] name = e.name().getBytes(StandardCharsets.UTF_8);
            byte[] desc = e.description().getBytes(StandardCharsets.UTF_8);
            ByteBuffer b = ByteBuffer.allocate(4 + name.length + desc.length);
            b.putInt(name.length).put(name).put(desc);
            optionReply(OPT_LIST, REP_SERVER, b.flip());
        }
        optionReply(OPT_LIST, REP_ACK, null);
    }

    /** NBD_OPT_INFO and NBD_OPT_GO. @return true if the export was accepted */
    private boolean info(int option, byte[] data) throws IOException {
        ByteBuffer d = ByteBuffer.wrap(data);
        if (d.remaining() < 6) {
            optionError(option, REP_ERR_INVALID, optionName(option) + " needs at least 6 bytes of data");
            return false;
        }
        long nameLen = Integer.toUnsignedLong(d.getInt());
        if (nameLen > d.remaining() - 2) {
            optionError(option, REP_ERR_INVALID, "export name length " + nameLen + " runs past the option data");
            return false;
        }
        int nameOff = d.position();
        d.position(nameOff + (int) nameLen);
        int requests = Short.toUnsignedInt(d.getShort());
        if (d.remaining() != 2 * requests) {
            optionError(option, REP_ERR_INVALID, requests + " information requests need " + 2 * requests
                    + " bytes, the option has " + d.remaining());
            return false;
        }
        boolean wantName = false;
        boolean wantDescription = false;
        for (int i = 0; i < requests; i++) {
            int type = Short.toUnsignedInt(d.getShort());
            wantName |= type == INFO_NAME;
            wantDescription |= type == INFO_DESCRIPTION;
        }
        NbdExport e = resolve(option, data, nameOff, (int) nameLen);
        if (e == null) {
            return false;
        }
        int flags = transmissionFlags(e);
        ByteBuffer b = ByteBuffer.allocate(12);
        b.putShort((short) INFO_EXPORT).putLong(e.device().size()).putShort((short) flags);
        optionReply(option, REP_INFO, b.flip());
        b = ByteBuffer.allocate(14);
        b.putShort((short) INFO_BLOCK_SIZE).putInt(MIN_BLOCK).putInt(PREFERRED_BLOCK).putInt(MAX_PAYLOAD);
        optionReply(option, REP_INFO, b.flip());
        if (wantName) {
            byte[] name = e.name().getBytes(StandardCharsets.UTF_8);
            optionReply(option, REP_INFO, ByteBuffer.allocate(2 + name.length).putShort((short) INFO_NAME).put(name).flip());
        }
        if (wantDescription && !e.description().isEmpty()) {
            byte[] desc = e.description().getBytes(StandardCharsets.UTF_8);
            optionReply(option, REP_INFO,
                    ByteBuffer.allocate(2 + desc.length).putShort((short) INFO_DESCRIPTION).put(desc).flip());
        }
        optionReply(option, REP_ACK, null);
        if (option == OPT_GO) {
            enter(e);
        }
        return true;
    }

    /** The export a name names, or null after replying with the error. */
    private NbdExport resolve(int option, byte[] data, int off, int len) throws IOException {
        String name;
        try {
            name = NbdExport.decodeName(data, off, len);
        } catch (NbdExport.InvalidNameException ex) {
            optionError(option, REP_ERR_INVALID, ex.getMessage());
            return null;
        }
        NbdExport e = server.find(name);
        if (e == null) {
            optionError(option, REP_ERR_UNKNOWN, "no export named '" + name + "'");
        }
        return e;
    }

    /** NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT: this server knows base:allocation. */
    private void metaContext(int option, byte[] data) throws IOException {
        boolean set = option == OPT_SET_META_CONTEXT;
        if (set) {
            metaExport = null; // replaced even if this request fails
        }
        if (!structured) {
            optionError(option, REP_ERR_INVALID, "negotiate structured replies first");
            return;
        }
        ByteBuffer d = ByteBuffer.wrap(data);
        if (d.remaining() < 8) {
            optionError(option, REP_ERR_INVALID, optionName(option) + " needs at least 8 bytes of data");
            return;
        }
        long nameLen = Integer.toUnsignedLong(d.getInt());
        if (nameLen > d.remaining() - 4) {
            optionError(option, REP_ERR_INVALID, "export name length " + nameLen + " runs past the option data");
            return;
        }
        int nameOff = d.position();
        d.position(nameOff + (int) nameLen);
        long queries = Integer.toUnsignedLong(d.getInt());
        List<String> texts = new ArrayList<>();
        for (long q = 0; q < queries; q++) {
            if (d.remaining() < 4) {
                optionError(option, REP_ERR_INVALID, "query " + q + " of " + queries + " runs past the option data");
                return;
            }
            long qLen = Integer.toUnsignedLong(d.getInt());
            if (qLen > d.remaining() || qLen > MAX_STRING) {
                optionError(option, REP_ERR_INVALID, "query " + q + " of " + qLen + " bytes runs past the option data"
                        + " or the string limit");
                return;
            }
            byte[] text = new byte[(int) qLen];
            d.get(text);
            String query = new String(text, StandardCharsets.UTF_8);
            if (query.indexOf(':') < 1) {
                optionError(option, REP_ERR_INVALID, "query '" + query + "' does not start with a namespace and a colon");
                return;
            }
            texts.add(query);
        }
        if (d.hasRemaining()) {
            optionError(option, REP_ERR_INVALID, d.remaining() + " bytes follow the last query");
            return;
        }
        NbdExport e = resolve(option, data, nameOff, (int) nameLen);
        if (e == null) {
            return;
        }
        boolean allocation = false;
        for (String q : texts) {
            // "base:" lists every base context but selects none; unknown names and namespaces are ignored.
            allocation |= q.equals(BASE_ALLOCATION) || (!set && q.equals("base:"));
        }
        if (!set && texts.isEmpty()) {
            allocation = true; // no query: list everything
        }
        if (allocation) {
            byte[] name = BASE_ALLOCATION.getBytes(StandardCharsets.UTF_8);
            ByteBuffer b = ByteBuffer.allocate(4 + name.length).putInt(set ? ALLOCATION_CONTEXT_ID : 0).put(name);
            optionReply(option, REP_META_CONTEXT, b.flip());
            if (set) {
                metaExport = e;
                options.set(options.size() - 1, optionName(option) + "(base:allocation)");
            }
        }
        optionReply(option, REP_ACK, null);
    }

    private void optionReply(int option, int type, ByteBuffer data) throws IOException {
        int len = data == null ? 0 : data.remaining();
        ByteBuffer h = ByteBuffer.allocate(20);
        h.putLong(OPTION_REPLY_MAGIC).putInt(option).putInt(type).putInt(len);
        h.flip();
        if (data == null) {
            sendRaw(h);
        } else {
            sendRaw(h, data);
        }
    }

    private void optionError(int option, int type, String message) throws IOException {
        log.debug("{}: {} refused: {}", peer, optionName(option), message);
        optionReply(option, type, ByteBuffer.wrap(truncate(message)));
    }

    // ================================================================== transmission

    /** One request header. */
    private record Request(int flags, int type, long cookie, long offset, long length) {}

    /** A refusal: the protocol error and a message for the client's user. */
    private record Refusal(int error, String message) {}

    private void transmission() throws IOException {
        Device device = export.device();
        long size = device.size();
        while (true) {
            if (!in.fill(REQUEST_BYTES, true)) {
                log.debug("{}: the client closed the connection", peer);
                return;
            }
            int magic = in.getInt();
            int flags = in.getUnsignedShort();
            int type = in.getUnsignedShort();
            long cookie = in.getLong();
            long offset = in.getLong();
            long length = Integer.toUnsignedLong(in.getInt());
            if (magic != REQUEST_MAGIC) {
                throw new ProtocolException(String.format("bad request magic 0x%08x", magic));
            }
            if (type == CMD_DISC) {
                log.debug("{}: NBD_CMD_DISC", peer);
                return;
            }
            server.stats.requests.increment();
            Request r = new Request(flags, type, cookie, offset, length);
            if (type == CMD_WRITE && length > MAX_PAYLOAD) {
                // Its payload follows the header and is too large to read and throw away.
                refuse(r, new Refusal(EOVERFLOW, "a WRITE of " + length + " bytes is over the maximum payload of "
                        + MAX_PAYLOAD + "; closing the connection"));
                lingeringClose(length);
                throw new ProtocolException("a WRITE of " + length + " bytes is over the maximum payload of " + MAX_PAYLOAD);
            }
            Refusal refusal = validate(r, size);
            boolean buffered = type == CMD_WRITE || (type == CMD_READ && !zeroCopy && refusal == null);
            int cost = REQUEST_COST + (buffered ? (int) length : 0);
            budget.acquireUninterruptibly(cost);
            ByteBuffer payload = null;
            boolean started = false;
            try {
                if (type == CMD_WRITE) {
                    payload = pool.get((int) length);
                    in.readFully(payload);
                    payload.flip();
                }
                if (refusal != null) {
                    refuse(r, refusal);
                    continue;
                }
                ByteBuffer p = payload;
                if (cheap(r)) {
                    // Nothing to wait for: answering here saves a thread hand-off per request (measured:
                    // ~10% more throughput and less CPU for nbdcopy of a cached image).
                    started = true;
                    handle(r, p, cost);
                } else {
                    Thread.ofVirtual().name("nbd-request").start(() -> handle(r, p, cost));
                    started = true;
                }
            } finally {
                if (!started) {
                    pool.release(payload);
                    budget.release(cost);
                }
            }
        }
    }

    /** Forced unit access: the write is durable before its reply (a kept overlay; else a no-op). */
    private void fua(Request r) throws IOException {
        if ((r.flags() & CMD_FLAG_FUA) != 0) {
            export.overlay().flush();
        }
    }

    /**
     * A request that cannot block on a fetch or the disk: a READ of bytes already in the cache, or
     * a FLUSH of an export with nothing to sync (read-only, or a scratch overlay).
     */
    private boolean cheap(Request r) {
        return (r.type() == CMD_FLUSH && !(export.writable() && export.overlay().durable()))
                || (r.type() == CMD_READ && zeroCopy && ((Chunker) export.device()).cache().isCached(r.offset(), r.length()));
    }

    /**
     * Ends the connection after an error reply without losing the reply: closing a socket with
     * unread data resets it, and a reset can discard the reply before the client reads it. So
     * the server stops sending, then reads and drops what the client was sending (at most
     * {@code limit} bytes, for at most {@link #LINGER_SECONDS}) before the close.
     */
    private void lingeringClose(long limit) {
        ScheduledFuture<?> cut = server.schedule(this::closeChannel, LINGER_SECONDS);
        try {
            ch.shutdownOutput();
            ByteBuffer sink = ByteBuffer.allocateDirect(64 << 10);
            long dropped = 0;
            while (dropped < limit) {
                int n = ch.read(sink.clear().limit((int) Math.min(sink.capacity(), limit - dropped)));
                if (n < 0) {
                    break;
                }
                dropped += n;
            }
        } catch (IOException ignored) {
            // closing anyway
        } finally {
            cut.cancel(false);
        }
    }

    /** Checks a request against the protocol and the export; null if it may run. */
    private Refusal validate(Request r, long size) {
        int allowed = CMD_FLAG_FUA;
        switch (r.type()) {
            case CMD_READ -> allowed |= structured ? CMD_FLAG_DF : 0;
            case CMD_WRITE_ZEROES -> allowed |= CMD_FLAG_NO_HOLE;
            case CMD_BLOCK_STATUS -> allowed |= CMD_FLAG_REQ_ONE;
            case CMD_WRITE, CMD_FLUSH, CMD_TRIM, CMD_CACHE -> { }
            default -> {
                return new Refusal(EINVAL, "unknown command type " + r.type());
            }
        }
        String cmd = commandName(r.type());
        if ((r.flags() & ~allowed) != 0) {
            return new Refusal(EINVAL, String.format("command flags 0x%x are not valid for %s", r.flags() & ~allowed, cmd));
        }
        if (r.type() == CMD_FLUSH) {
            return r.offset() == 0 && r.length() == 0 ? null
                    : new Refusal(EINVAL, "FLUSH must have offset and length 0");
        }
        if (r.length() == 0) {
            return new Refusal(EINVAL, cmd + " of length 0");
        }
        if (r.type() == CMD_READ && r.length() > MAX_PAYLOAD) {
            return new Refusal(EOVERFLOW, "a READ of " + r.length() + " bytes is over the maximum payload of "
                    + MAX_PAYLOAD);
        }
        boolean writes = r.type() == CMD_WRITE || r.type() == CMD_WRITE_ZEROES || r.type() == CMD_TRIM;
        if (writes && !export.writable()) {
            return new Refusal(EPERM, "export '" + export.name() + "' is read-only");
        }
        if (Long.compareUnsigned(r.offset(), size) > 0 || r.length() > size - r.offset()) {
            return new Refusal(writes ? ENOSPC : EINVAL, String.format("%s [%s, +%d) is outside the export [0, %d)",
                    cmd, Long.toUnsignedString(r.offset()), r.length(), size));
        }
        if (r.type() == CMD_BLOCK_STATUS && !allocationContext) {
            return new Refusal(EINVAL, "BLOCK_STATUS without base:allocation selected for this export");
        }
        return null;
    }

    private void refuse(Request r, Refusal why) throws IOException {
        server.stats.errors.increment();
        log.debug("{}: {} [{}, +{}) refused: {} {}", peer, commandName(r.type()), Long.toUnsignedString(r.offset()),
                r.length(), errorName(why.error()), why.message());
        sendError(r, why.error(), why.message());
    }

    /** Runs one valid request on its own thread and replies. */
    private void handle(Request r, ByteBuffer payload, int cost) {
        try {
            switch (r.type()) {
                case CMD_READ -> read(r);
                case CMD_WRITE -> {
                    export.overlay().writeAt(MemorySegment.ofBuffer(payload), r.offset());
                    server.stats.bytesWritten.add(r.length());
                    fua(r);
                    sendSimple(r.cookie(), 0);
                }
                case CMD_WRITE_ZEROES -> {
                    export.overlay().writeZeroes(r.offset(), r.length());
                    fua(r);
                    sendSimple(r.cookie(), 0);
                }
                case CMD_TRIM -> {
                    trim(export.overlay(), r.offset(), r.length());
                    fua(r);
                    sendSimple(r.cookie(), 0);
                }
                case CMD_FLUSH -> {
                    // Every write replied to before this request was sent, on any connection (we
                    // advertise multi-conn): the overlay's flush syncs the whole file and journal.
                    if (export.writable()) {
                        export.overlay().flush();
                    }
                    sendSimple(r.cookie(), 0);
                }
                case CMD_CACHE -> {
                    Extents.prefetch(export.device(), r.offset(), r.length());
                    sendSimple(r.cookie(), 0);
                }
                case CMD_BLOCK_STATUS -> blockStatus(r);
                default -> throw new IllegalStateException("unvalidated command " + r.type());
            }
        } catch (SendFailedException e) {
            log.debug("{}: reply to {} [{}, +{}) not sent: {}", peer, commandName(r.type()), r.offset(), r.length(),
                    e.getMessage());
        } catch (IOException | RuntimeException e) {
            if (closing && !ch.isOpen()) {
                return; // the connection is gone: nobody to answer
            }
            int error = errorFor(e);
            if (pastValidation(e)) {
                server.stats.unexpected.increment();
                log.error("{}: {} [{}, +{}) failed past validation", peer, commandName(r.type()), r.offset(),
                        r.length(), e);
            } else if (error != ESHUTDOWN) {
                log.warn("{}: {} [{}, +{}) failed: {}", peer, commandName(r.type()), r.offset(), r.length(), e.toString());
            }
            server.stats.errors.increment();
            try {
                sendError(r, error, e.getMessage() == null ? e.toString() : e.getMessage());
            } catch (IOException sendFailed) {
                log.debug("{}: error reply not sent: {}", peer, sendFailed.getMessage());
            }
        } finally {
            pool.release(payload);
            budget.release(cost);
        }
    }

    /**
     * Whether {@code e} means a request the validation let through should have been refused: not
     * an I/O failure nor a device closing under the request (a closed cache or fetch pool).
     */
    private static boolean pastValidation(Exception e) {
        return e instanceof RuntimeException && !(e instanceof CacheClosedException)
                && !(e instanceof java.util.concurrent.RejectedExecutionException)
                && !(e instanceof java.io.UncheckedIOException);
    }

    private static int errorFor(Throwable e) {
        return switch (e) {
            case CacheClosedException c -> ESHUTDOWN;
            case Libc.ErrnoException x when x.errno() == Libc.ENOSPC -> ENOSPC;
            case IOException x -> EIO;
            case IndexOutOfBoundsException x -> EINVAL;
            case IllegalArgumentException x -> EINVAL;
            default -> EIO;
        };
    }

    private void read(Request r) throws IOException {
        Device device = export.device();
        long off = r.offset();
        int len = (int) r.length();
        if (zeroCopy) {
            // A view of the cache's mapping goes straight to the socket: no copy in user space.
            Chunker chunker = (Chunker) device;
            MemorySegment view = chunker.slice(off, len);
            // The kernel copies the view into the socket; from a truncated cache file that copy
            // faults mid-reply (EFAULT after the header went out). Look first, so the client gets
            // an EIO reply instead of a cut connection.
            chunker.cache().checkFile();
            sendData(r.cookie(), off, view.asByteBuffer());
            return;
        }
        ByteBuffer buf = pool.get(len);
        try {
            long got = device.readAt(MemorySegment.ofBuffer(buf), off);
            if (got != len) {
                throw new IOException("short read of the device at " + off + ": " + got + " of " + len + " bytes");
            }
            if (structured && (r.flags() & CMD_FLAG_DF) == 0 && Extents.mayHaveHoles(device)) {
                sendWithHoles(r.cookie(), device, off, len, buf);
            } else {
                sendData(r.cookie(), off, buf);
            }
        } finally {
            pool.release(buf);
        }
    }

    private void blockStatus(Request r) throws IOException {
        int max = (r.flags() & CMD_FLAG_REQ_ONE) != 0 ? 1 : MAX_EXTENTS;
        List<long[]> extents = new ArrayList<>();
        Extents.describe(export.device(), r.offset(), r.length(), max, (o, l, f) -> extents.add(new long[] {l, f}));
        ByteBuffer b = ByteBuffer.allocate(4 + 8 * extents.size());
        b.putInt(ALLOCATION_CONTEXT_ID);
        for (long[] e : extents) {
            b.putInt((int) e[0]).putInt((int) e[1]);
        }
        sendChunk(r.cookie(), REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, b.flip());
    }

    /**
     * TRIM: written blocks wholly inside the range are zeroed, so a layer exported later maps them
     * as zeros instead of storing stale bytes; blocks never written are left alone (after a trim
     * their contents are the client's to not assume).
     */
    private static void trim(Overlay ov, long off, long len) throws IOException {
        long size = ov.size();
        int bs = ov.blockSize();
        long end = off + len;
        long first = (off + bs - 1) / bs;
        long last = end == size ? (end + bs - 1) / bs : end / bs; // exclusive
        PresenceBitmap written = ov.cache().presence();
        for (long b = first < last ? written.nextSet(first) : -1; b >= 0 && b < last; ) {
            long stop = Math.min(last, written.nextClear(b));
            long from = b * bs;
            ov.writeZeroes(from, Math.min(stop * bs, size) - from);
            b = stop < last ? written.nextSet(stop) : -1;
        }
    }

    // ================================================================== replies

    private void sendRaw(ByteBuffer... bufs) throws IOException {
        sendLock.lock();
        try {
            writeFully(bufs);
        } finally {
            sendLock.unlock();
        }
    }

    /** Writes every buffer whole; the caller holds {@link #sendLock}. */
    private void writeFully(ByteBuffer... bufs) throws IOException {
        long left = 0;
        for (ByteBuffer b : bufs) {
            left += b.remaining();
        }
        try {
            while (left > 0) {
                left -= ch.write(bufs);
            }
        } catch (IOException e) {
            closeChannel(); // part of a message may be out: nothing more can follow it
            throw new SendFailedException(e);
        }
    }

    /** A reply could not be sent: the client is gone (or the server closed the connection). */
    static final class SendFailedException extends IOException {
        SendFailedException(IOException cause) {
            super("cannot send to the client: " + cause.getMessage(), cause);
        }
    }

    private void sendSimple(long cookie, int error) throws IOException {
        sendLock.lock();
        try {
            head.clear().putInt(SIMPLE_REPLY_MAGIC).putInt(error).putLong(cookie).flip();
            writeFully(head);
        } finally {
            sendLock.unlock();
        }
    }

    /** A successful READ's data: one simple reply, or one structured OFFSET_DATA chunk marked done. */
    private void sendData(long cookie, long offset, ByteBuffer data) throws IOException {
        int n = data.remaining();
        sendLock.lock();
        try {
            head.clear();
            if (structured) {
                head.putInt(STRUCTURED_REPLY_MAGIC).putShort((short) REPLY_FLAG_DONE)
                        .putShort((short) REPLY_TYPE_OFFSET_DATA).putLong(cookie).putInt(8 + n).putLong(offset);
            } else {
                head.putInt(SIMPLE_REPLY_MAGIC).putInt(0).putLong(cookie);
            }
            head.flip();
            writeFully(head, data);
        } finally {
            sendLock.unlock();
        }
        server.stats.bytesRead.add(n);
    }

    /** A READ as OFFSET_DATA and OFFSET_HOLE chunks: zero extents are not sent. */
    private void sendWithHoles(long cookie, Device device, long off, int len, ByteBuffer data) throws IOException {
        List<long[]> extents = new ArrayList<>();
        int count = Extents.describe(device, off, len, MAX_READ_CHUNKS, (o, l, f) -> extents.add(new long[] {o, l, f}));
        long covered = 0;
        for (long[] e : extents) {
            covered += e[1];
        }
        if (covered < len) {
            extents.add(new long[] {off + covered, len - covered, 0});
        }
        if (count == 1 && extents.size() == 1 && (extents.getFirst()[2] & STATE_ZERO) == 0) {
            sendData(cookie, off, data);
            return;
        }
        List<ByteBuffer> parts = new ArrayList<>();
        for (int i = 0; i < extents.size(); i++) {
            long[] e = extents.get(i);
            short flags = (short) (i == extents.size() - 1 ? REPLY_FLAG_DONE : 0);
            if ((e[2] & STATE_ZERO) != 0) {
                parts.add(ByteBuffer.allocate(32).putInt(STRUCTURED_REPLY_MAGIC).putShort(flags)
                        .putShort((short) REPLY_TYPE_OFFSET_HOLE).putLong(cookie).putInt(12).putLong(e[0])
                        .putInt((int) e[1]).flip());
            } else {
                parts.add(ByteBuffer.allocate(28).putInt(STRUCTURED_REPLY_MAGIC).putShort(flags)
                        .putShort((short) REPLY_TYPE_OFFSET_DATA).putLong(cookie).putInt(8 + (int) e[1])
                        .putLong(e[0]).flip());
                int from = (int) (e[0] - off);
                parts.add(data.slice(from, (int) e[1]));
            }
        }
        sendLock.lock();
        try {
            writeFully(parts.toArray(ByteBuffer[]::new));
        } finally {
            sendLock.unlock();
        }
        server.stats.bytesRead.add(len);
    }

    private void sendChunk(long cookie, int flags, int type, ByteBuffer payload) throws IOException {
        sendLock.lock();
        try {
            head.clear().putInt(STRUCTURED_REPLY_MAGIC).putShort((short) flags).putShort((short) type).putLong(cookie)
                    .putInt(payload.remaining()).flip();
            writeFully(head, payload);
        } finally {
            sendLock.unlock();
        }
    }

    /** An error reply: a structured NBD_REPLY_TYPE_ERROR chunk with a message if negotiated, else simple. */
    private void sendError(Request r, int error, String message) throws IOException {
        if (!structured) {
            sendSimple(r.cookie(), error);
            return;
        }
        byte[] text = truncate(message);
        ByteBuffer b = ByteBuffer.allocate(6 + text.length).putInt(error).putShort((short) text.length).put(text);
        sendChunk(r.cookie(), REPLY_FLAG_DONE, REPLY_TYPE_ERROR, b.flip());
    }

    /** A message as UTF-8, cut to the protocol's string limit (on a character boundary). */
    static byte[] truncate(String message) {
        byte[] b = message.getBytes(StandardCharsets.UTF_8);
        if (b.length <= MAX_STRING) {
            return b;
        }
        int n = MAX_STRING;
        while (n > 0 && (b[n] & 0xC0) == 0x80) {
            n--;
        }
        return java.util.Arrays.copyOf(b, n);
    }

    /** The client broke the protocol: the connection ends (a hard disconnect). */
    static final class ProtocolException extends IOException {
        ProtocolException(String message) {
            super(message);
        }
    }
}
