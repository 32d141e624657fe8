package dev.lazyblock.cache;

import dev.lazyblock.os.Libc;
import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.zip.CRC32C;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The durable record of which granules of a kept cache hold valid bytes: a header naming what
 * the cache is of, then 20-byte records {@code [from, to)} appended as granules are marked.
 *
 * <p><b>The ordering that makes it crash-consistent</b>, carried by {@link #commit}: the marks to
 * record are taken (drained) first; then the cache file is fsynced, which makes durable every byte
 * written before those marks were made (a filler writes, then marks); only then are the records
 * appended and the journal fsynced. So a record on disk always describes durable bytes, and a
 * crash at any point loses at most marks not yet committed (their chunks are fetched again), never
 * trusts bytes that were not on disk. A record torn by the crash fails its CRC; replay stops at the
 * first such record and trusts nothing after it.
 *
 * <p>A granule once marked is never rewritten with other bytes in a read-only cache (fillers only
 * fill what is missing; racing fillers write the same bytes). In an overlay it is: a block written
 * again after its record reads, after a crash, as its old or its new bytes, never a third thing,
 * and {@link #commit} with {@code syncData} (an NBD FLUSH) makes the new ones durable.
 *
 * <p>Commits run on a background thread that exists only while there are marks to commit (so an
 * idle cache holds no thread), every {@code interval}, and at close; {@link SparseCache#flush()}
 * commits at once. The journal is rewritten compactly (temporary name, fsync, rename, fsync of the
 * directory) at open and when appended records outgrow the runs they describe.
 */
final class PresenceJournal {
    private static final Logger log = LoggerFactory.getLogger(PresenceJournal.class);

    static final byte[] MAGIC = "LBPJRN01".getBytes(StandardCharsets.US_ASCII);
    static final int RECORD = 20;
    /** Pending runs buffered before the syncer coalesces them in place (pairs of longs). */
    private static final int PENDING_START = 64;

    /** What the journal is of; a journal whose header says otherwise describes another file. */
    record Header(String identity, String version, long size, int blockSize, long granularity) {}

    /** What a replay found: the presence it vouches for, or why it vouches for nothing. */
    record Replay(PresenceBitmap presence, long records, long droppedBytes, String discarded) {}

    private final Path file;
    private final Path dir;
    private final Header header;
    private final long granules;
    private final long intervalNanos;
    private final String name;

    /**
     * Marks not yet committed, as pairs {@code [from, to)}. Guarded by {@link #lock}: fillers
     * append (after writing their bytes, before setting the presence bits), the committer swaps
     * the buffer out. The lock's release/acquire carries each filler's write of its bytes to the
     * committer, which fsyncs the data after taking them.
     */
    private long[] pending = new long[2 * PENDING_START];
    private int pendingCount; // longs used in pending
    /** Whether a syncer thread is running (or starting). Guarded by {@link #lock}. */
    private boolean syncing;
    /** Set at close: no more commits, the syncer exits. Guarded by {@link #lock}. */
    private boolean closed;
    /** The running (or last) syncer, for close to wait on. Guarded by {@link #lock}. */
    private Thread syncer;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition wake = lock.newCondition();

    /**
     * Serializes commits (syncer, flushes, close): one appender at a time, and a flush that finds
     * another commit running waits for it, so what it drained is durable when the flush returns.
     */
    private final ReentrantLock commitLock = new ReentrantLock();
    // The fields below are guarded by commitLock.
    private FileChannel out;
    private long salt;
    private long appended; // records since the last rewrite
    private long runsAtRewrite;
    /**
     * Granules known durable: the presence count taken before the last commit's drain (every
     * granule set before then had its mark drained by that commit or an earlier one). Volatile:
     * read by anyone, written by the committer.
     */
    private volatile long durableGranules;
    private final PresenceBitmap presence;
    /**
     * False while a brand-new journal's header and name are not yet synced: a new, empty cache
     * vouches for nothing, so nothing is lost if a crash takes its journal, and opening it costs
     * no fsync. The first commit that makes anything durable syncs them (and runs
     * {@link #beforeFirstCommit}) before it returns. Guarded by commitLock.
     */
    private boolean entryDurable = true;
    private PersistentCache.Barrier beforeFirstCommit;

    private PresenceJournal(Path file, Header header, PresenceBitmap presence, Duration interval, String name) {
        this.file = file;
        this.dir = file.getParent();
        this.header = header;
        this.granules = presence.granules();
        this.presence = presence;
        this.intervalNanos = Math.max(1, interval.toNanos());
        this.name = name;
    }

    static Path tmpOf(Path file) {
        return file.resolveSibling(file.getFileName() + ".tmp");
    }

    // ---------------------------------------------------------------- replay

    /** Replays {@code file}; null if there is none. Never throws for bad content: it says so. */
    static Replay replay(Path file, Header expected, long granules) throws IOException {
        byte[] b;
        try {
            b = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            return null;
        }
        ByteBuffer in = ByteBuffer.wrap(b);
        long salt;
        try {
            salt = readHeader(in, expected);
        } catch (IOException e) {
            return new Replay(null, 0, b.length, e.getMessage());
        }
        PresenceBitmap p = new PresenceBitmap(granules);
        CRC32C crc = new CRC32C();
        long records = 0;
        while (in.remaining() >= RECORD) {
            long from = in.getLong(in.position());
            long to = in.getLong(in.position() + 8);
            int stored = in.getInt(in.position() + 16);
            if (recordCrc(crc, salt, from, to) != stored || from < 0 || to > granules || from >= to) {
                break; // torn or never written: nothing from here on is vouched for
            }
            p.set(from, to);
            in.position(in.position() + RECORD);
            records++;
        }
        return new Replay(p, records, in.remaining(), null);
    }

    private static long readHeader(ByteBuffer in, Header expected) throws IOException {
        byte[] b = in.array();
        if (b.length < MAGIC.length + 4 || !Arrays.equals(b, 0, MAGIC.length, MAGIC, 0, MAGIC.length)) {
            throw new IOException("not a presence journal (bad magic or too short: " + b.length + " bytes)");
        }
        try {
            in.position(MAGIC.length);
            int bodyLength = in.getInt();
            if (bodyLength < 0 || bodyLength > in.remaining() - 4) {
                throw new IOException("the journal's header is truncated: it says " + bodyLength + " bytes, "
                        + Math.max(0, in.remaining() - 4) + " follow");
            }
            int bodyStart = in.position();
            CRC32C crc = new CRC32C();
            crc.update(b, 0, bodyStart + bodyLength);
            int stored = in.getInt(bodyStart + bodyLength);
            if ((int) crc.getValue() != stored) {
                throw new IOException(String.format("the journal's header is corrupt: CRC-32C %08x, stored %08x",
                        (int) crc.getValue(), stored));
            }
            String identity = readString(in);
            String version = readString(in);
            long size = in.getLong();
            int blockSize = in.getInt();
            long granularity = in.getLong();
            long salt = in.getLong();
            if (in.position() != bodyStart + bodyLength) {
                throw new IOException("the journal's header has " + (bodyStart + bodyLength - in.position())
                        + " stray bytes");
            }
            in.position(bodyStart + bodyLength + 4);
            if (!identity.equals(expected.identity())) {
                throw new IOException("it was written for image '" + identity + "', this is '" + expected.identity() + "'");
            }
            if (!java.util.Objects.equals(version, expected.version())) {
                throw new IOException("the image changed: the journal was written for " + describe(version)
                        + ", the store now says " + describe(expected.version()));
            }
            if (size != expected.size()) {
                throw new IOException("it was written for an image of " + size + " bytes, the image now has "
                        + expected.size());
            }
            if (blockSize != expected.blockSize() || granularity != expected.granularity()) {
                throw new IOException("it was written with block " + blockSize + " and granularity " + granularity
                        + ", this cache has block " + expected.blockSize() + " and granularity "
                        + expected.granularity());
            }
            return salt;
        } catch (java.nio.BufferUnderflowException | NegativeArraySizeException | IndexOutOfBoundsException e) {
            throw new IOException("the journal's header is truncated or malformed: " + e);
        }
    }

    private static String readString(ByteBuffer in) throws IOException {
        int n = in.getInt();
        if (n == -1) {
            return null;
        }
        if (n < 0 || n > in.remaining()) {
            throw new IOException("a string of " + n + " bytes in the journal's header, " + in.remaining() + " left");
        }
        byte[] s = new byte[n];
        in.get(s);
        return new String(s, StandardCharsets.UTF_8);
    }

    static String describe(String version) {
        return version == null ? "no version" : "version '" + version + "'";
    }

    private static int recordCrc(CRC32C crc, long salt, long from, long to) {
        crc.reset();
        // The salt is new at every rewrite: a record left from an older journal never passes.
        for (long v : new long[] {salt, from, to}) {
            for (int s = 56; s >= 0; s -= 8) {
                crc.update((int) (v >>> s));
            }
        }
        return (int) crc.getValue();
    }

    // ---------------------------------------------------------------- writing

    /**
     * Writes a new journal describing {@code presence} as it is now (which the caller vouches is
     * durable) and opens it for appending.
     */
    static PresenceJournal create(Path file, Header header, PresenceBitmap presence, Duration interval, String name)
            throws IOException {
        return create(file, header, presence, interval, name, false, null);
    }

    /**
     * @param fresh             no journal (nor map) existed: the new one may be synced lazily, at
     *                          its first commit, since it vouches for nothing until then and no
     *                          older journal it replaces could be found again after a crash
     * @param beforeFirstCommit run once, by the first commit that makes anything durable, before
     *                          that commit returns (a caller's own metadata to sync), or null
     */
    static PresenceJournal create(Path file, Header header, PresenceBitmap presence, Duration interval, String name,
                                  boolean fresh, PersistentCache.Barrier beforeFirstCommit) throws IOException {
        PresenceJournal j = new PresenceJournal(file, header, presence, interval, name);
        j.commitLock.lock();
        try {
            j.beforeFirstCommit = beforeFirstCommit;
            j.entryDurable = !(fresh && presence.cardinality() == 0);
            j.rewrite(presence, j.entryDurable);
            if (j.entryDurable && beforeFirstCommit != null) {
                beforeFirstCommit.run();
                j.beforeFirstCommit = null;
            }
            j.durableGranules = presence.cardinality();
        } finally {
            j.commitLock.unlock();
        }
        return j;
    }

    /** Under commitLock: replaces the journal by header + the runs of {@code snapshot}. */
    private void rewrite(PresenceBitmap snapshot) throws IOException {
        rewrite(snapshot, true);
    }

    /** {@code sync} false only for a fresh empty journal: see {@link #entryDurable}. */
    private void rewrite(PresenceBitmap snapshot, boolean sync) throws IOException {
        long newSalt = ThreadLocalRandom.current().nextLong();
        Path tmp = tmpOf(file);
        long runs = 0;
        try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            writeFully(ch, ByteBuffer.wrap(headerBytes(newSalt)));
            ByteBuffer buf = ByteBuffer.allocate(RECORD * 1024);
            CRC32C crc = new CRC32C();
            for (long g = snapshot.nextSet(0); g >= 0; ) {
                long end = snapshot.nextClear(g);
                if (buf.remaining() < RECORD) {
                    writeFully(ch, buf.flip());
                    buf.clear();
                }
                buf.putLong(g).putLong(end).putInt(recordCrc(crc, newSalt, g, end));
                runs++;
                g = end < snapshot.granules() ? snapshot.nextSet(end) : -1;
            }
            writeFully(ch, buf.flip());
            if (sync) {
                ch.force(true);
            }
        }
        Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        if (sync) {
            fsyncDirectory(dir);
        }
        FileChannel previous = out;
        out = FileChannel.open(file, StandardOpenOption.WRITE, StandardOpenOption.APPEND);
        if (previous != null) {
            previous.close();
        }
        salt = newSalt;
        appended = 0;
        runsAtRewrite = runs;
    }

    private byte[] headerBytes(long salt) {
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        try (DataOutputStream d = new DataOutputStream(body)) {
            writeString(d, header.identity());
            writeString(d, header.version());
            d.writeLong(header.size());
            d.writeInt(header.blockSize());
            d.writeLong(header.granularity());
            d.writeLong(salt);
        } catch (IOException e) {
            throw new AssertionError("in-memory streams do not fail", e);
        }
        byte[] bb = body.toByteArray();
        ByteBuffer h = ByteBuffer.allocate(MAGIC.length + 4 + bb.length + 4);
        h.put(MAGIC).putInt(bb.length).put(bb);
        CRC32C crc = new CRC32C();
        crc.update(h.array(), 0, h.position());
        h.putInt((int) crc.getValue());
        return h.array();
    }

    private static void writeString(DataOutputStream d, String s) throws IOException {
        if (s == null) {
            d.writeInt(-1);
            return;
        }
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        d.writeInt(b.length);
        d.write(b);
    }

    private static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            ch.write(b);
        }
    }

    static void fsyncDirectory(Path dir) throws IOException {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        }
    }

    // ---------------------------------------------------------------- marks and commits

    /**
     * Records that granules {@code [from, to)} were marked (their bytes already written). Called by
     * the filler before it sets the presence bits, so a granule seen present has its mark queued.
     * Starts the syncer if none runs. Never blocks on I/O.
     */
    void marked(long from, long to) {
        lock.lock();
        try {
            if (closed) {
                return; // the cache is being freed; its final commit took what was queued
            }
            if (pendingCount == pending.length) {
                coalescePending();
                if (pendingCount > pending.length * 3 / 4) {
                    pending = Arrays.copyOf(pending, pending.length * 2);
                }
            }
            pending[pendingCount++] = from;
            pending[pendingCount++] = to;
            if (!syncing) {
                syncing = true;
                // A platform thread: fsync blocks in native code, which would pin a virtual
                // thread's carrier for its whole duration.
                syncer = Thread.ofPlatform().daemon().name("lazyblock-journal " + name).start(this::syncLoop);
            }
        } finally {
            lock.unlock();
        }
    }

    /** Under lock: sorts and merges the pending runs in place. */
    private void coalescePending() {
        int n = pendingCount / 2;
        long[][] runs = new long[n][];
        for (int i = 0; i < n; i++) {
            runs[i] = new long[] {pending[2 * i], pending[2 * i + 1]};
        }
        Arrays.sort(runs, (a, b) -> Long.compare(a[0], b[0]));
        int k = 0;
        for (long[] r : runs) {
            if (k > 0 && r[0] <= pending[k - 1]) {
                pending[k - 1] = Math.max(pending[k - 1], r[1]);
            } else {
                pending[k++] = r[0];
                pending[k++] = r[1];
            }
        }
        pendingCount = k;
    }

    /** The syncer: commits every interval while marks keep coming, then exits. */
    private void syncLoop() {
        while (true) {
            lock.lock();
            try {
                long left = intervalNanos;
                while (!closed && left > 0) {
                    left = wake.awaitNanos(left);
                }
                if (closed) {
                    syncing = false;
                    return;
                }
            } catch (InterruptedException e) {
                syncing = false;
                return;
            } finally {
                lock.unlock();
            }
            try {
                commit(-1, false);
            } catch (IOException | RuntimeException e) {
                // The marks stay lost to the journal (the next run fetches them again); the bytes
                // served now are unaffected.
                log.warn("committing the presence journal of {} failed: {}", name, e.toString());
            }
            lock.lock();
            try {
                if (closed || pendingCount == 0) {
                    syncing = false;
                    return;
                }
            } finally {
                lock.unlock();
            }
        }
    }

    /** The descriptor of the cache file, set by the cache once it exists; -1 before and after. */
    private volatile int dataFd = -1;

    void attach(int fd) {
        dataFd = fd;
    }

    /**
     * Makes every mark queued so far durable, with its bytes: drain, fsync the data, append, fsync
     * the journal. With {@code syncData} the data is fsynced even when no mark is queued (a flush:
     * blocks rewritten in place have no new mark).
     *
     * @param fd the cache file's descriptor, or -1 for the attached one
     */
    void commit(int fd, boolean syncData) throws IOException {
        commitLock.lock();
        try {
            int data = fd >= 0 ? fd : dataFd;
            long[] runs;
            int n;
            long before = presence.cardinality(); // before the drain: see durableGranules
            lock.lock();
            try {
                if (closed && fd < 0) {
                    return; // freed: the final commit ran, the descriptor may be gone
                }
                if (pendingCount > 0) {
                    coalescePending();
                }
                runs = pending;
                n = pendingCount;
                pending = new long[Math.max(2 * PENDING_START, Math.min(pending.length, 2 * n))];
                pendingCount = 0;
            } finally {
                lock.unlock();
            }
            if (n == 0 && (!syncData || !entryDurable && presence.cardinality() == 0)) {
                return; // nothing to make durable (a fresh cache nothing was written to vouches for nothing)
            }
            if (data < 0) {
                throw new IOException("the cache of " + name + " has no open file to sync");
            }
            if (n > 0 && appended + n / 2 > Math.max(65_536, 4 * runsAtRewrite)) {
                // Compact: a snapshot of everything present, whose bytes the fsync below covers
                // (each was written before its bit was set, and the bit before this snapshot).
                PresenceBitmap snapshot = copyOf(presence);
                for (int i = 0; i < n; i += 2) {
                    snapshot.set(runs[i], runs[i + 1]); // marked before their bits are set
                }
                Libc.fsync(data);
                rewrite(snapshot);
            } else {
                Libc.fsync(data);
                if (n > 0) {
                    ByteBuffer b = ByteBuffer.allocate(RECORD * (n / 2));
                    CRC32C crc = new CRC32C();
                    for (int i = 0; i < n; i += 2) {
                        b.putLong(runs[i]).putLong(runs[i + 1]).putInt(recordCrc(crc, salt, runs[i], runs[i + 1]));
                    }
                    writeFully(out, b.flip());
                    out.force(false);
                    appended += n / 2;
                }
            }
            if (!entryDurable) {
                // The first commit of a fresh journal: its header (written unsynced) and its name
                // must be on disk before this commit vouches for anything.
                out.force(false);
                fsyncDirectory(dir);
                if (beforeFirstCommit != null) {
                    beforeFirstCommit.run();
                    beforeFirstCommit = null;
                }
                entryDurable = true;
            }
            durableGranules = Math.max(durableGranules, before);
        } finally {
            commitLock.unlock();
        }
    }

    private static PresenceBitmap copyOf(PresenceBitmap p) {
        PresenceBitmap c = new PresenceBitmap(p.granules());
        for (long g = p.nextSet(0); g >= 0; ) {
            long end = p.nextClear(g);
            c.set(g, end);
            g = end < p.granules() ? p.nextSet(end) : -1;
        }
        return c;
    }

    /** Granules known durable (journaled with their bytes), for statistics and tests. */
    long durableGranules() {
        return durableGranules;
    }

    /** The last commit, at the cache's last release, on its still-open descriptor; then closes. */
    void closeFinal(int fd) throws IOException {
        try {
            commit(fd, true);
        } finally {
            stop();
        }
    }

    /**
     * The cache failed (its file truncated under us): nothing it says can be vouched for. Deletes
     * the journal, durably, so the next run starts empty.
     */
    void discard() throws IOException {
        stop();
        commitLock.lock();
        try {
            Files.deleteIfExists(file);
            fsyncDirectory(dir);
        } finally {
            commitLock.unlock();
        }
    }

    private void stop() throws IOException {
        Thread running;
        lock.lock();
        try {
            closed = true;
            wake.signalAll();
            running = syncer;
        } finally {
            lock.unlock();
        }
        if (running != null && running != Thread.currentThread()) {
            // Bounded: a woken syncer sees closed and returns; a commit it is in finishes first.
            try {
                if (!running.join(Duration.ofSeconds(30))) {
                    log.warn("the journal syncer of {} did not end within 30 s", name);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        commitLock.lock();
        try {
            if (out != null) {
                out.close();
                out = null;
            }
        } finally {
            commitLock.unlock();
        }
    }
}
