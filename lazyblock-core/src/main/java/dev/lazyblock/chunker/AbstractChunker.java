package dev.lazyblock.chunker;

import dev.lazyblock.cache.CacheClosedException;
import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.metrics.Metrics;
import dev.lazyblock.upstream.Upstream;
import java.io.IOException;
import java.io.UncheckedIOException;
import dev.lazyblock.upstream.Upstream.RangeStream;
import dev.lazyblock.upstream.UpstreamException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.function.LongConsumer;
import java.lang.foreign.ValueLayout;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What every chunker shares: bounds, the hit path, and single-flight sessions per chunk. A
 * subclass says only how a chunk is fetched ({@link #newSession}).
 *
 * <p>The invariant that keeps a reader from missing both the bytes and the fetch: a session
 * marks its chunk present <em>before</em> it leaves {@link #sessions}, and a reader that finds
 * no session re-checks presence inside the map's per-key lock ({@code compute}) before it
 * starts one. So a reader either sees the session (and joins it) or sees the chunk present.
 */
abstract class AbstractChunker implements Chunker {
    static final Logger log = LoggerFactory.getLogger(Chunker.class);

    /**
     * Where fetches run: platform daemon threads, reused, at most
     * {@code -Dlazyblock.fetchThreads} (default 256) at once in a process (see {@link FetchThreads}).
     * Virtual threads would pin on file reads anyway, and platform threads keep allocation
     * accounting (ThreadMXBean) exact.
     */
    static final FetchThreads FETCHERS = new FetchThreads(
            Math.max(1, Integer.getInteger("lazyblock.fetchThreads", 256)), "lazyblock-fetch-");
    /** Enforces fetch deadlines; a timed-out fetch fails its waiters from here. */
    static final ScheduledThreadPoolExecutor WATCHDOG = new ScheduledThreadPoolExecutor(1,
            Thread.ofPlatform().daemon().name("lazyblock-fetch-watchdog").factory());

    static {
        WATCHDOG.setRemoveOnCancelPolicy(true);
        // Always due within a second, this keeps the head of the watchdog's queue: a fetch's
        // deadline (a minute out by default) then never becomes the head, and scheduling it never
        // wakes the watchdog thread, a futex wake and a thread switch on the path of every first
        // miss of a chunk on an idle host. One empty wake-up a second instead.
        WATCHDOG.scheduleAtFixedRate(() -> {}, 1, 1, TimeUnit.SECONDS);
    }

    /** A stream lands in the cache in batches of at least max(block, this). */
    static final int MIN_BATCH = 16 << 10;
    /** Bytes a stream may stage before writing them to the cache. */
    private static final int STREAM_STAGE = 256 << 10;

    /** A reader waits this much longer than its fetch's deadline: the watchdog fails it first. */
    private static final long READER_GRACE_NANOS = TimeUnit.SECONDS.toNanos(1);

    final Upstream upstream;
    final SparseCache cache;
    final ChunkerOptions options;
    final Metrics metrics;
    final long size;
    final int chunkSize;
    final int blockSize;
    /** Chunk index -> its fetch in flight. See the class comment for the invariant. */
    final ConcurrentHashMap<Long, Session> sessions = new ConcurrentHashMap<>();

    AbstractChunker(Upstream upstream, SparseCache cache, ChunkerOptions options) throws IOException {
        this(upstream, upstream.size(), cache, options);
    }

    /** An image of {@code size} bytes whose stored form is {@code upstream} (compressed frames, for one). */
    AbstractChunker(Upstream upstream, long size, SparseCache cache, ChunkerOptions options) {
        this.upstream = Objects.requireNonNull(upstream, "upstream");
        this.cache = Objects.requireNonNull(cache, "cache");
        this.options = Objects.requireNonNull(options, "options");
        this.metrics = options.metrics();
        this.size = size;
        this.chunkSize = options.chunkSize();
        this.blockSize = cache.blockSize();
        if (cache.size() != size) {
            throw new IllegalArgumentException("cache size " + cache.size() + " != image size " + size + " of "
                    + upstream.name());
        }
        if (chunkSize % cache.granularity() != 0) {
            throw new IllegalArgumentException("chunk size " + chunkSize + " must be a multiple of the cache granularity "
                    + cache.granularity());
        }
    }

    /**
     * One whole-range request: {@code [off, off+len)} of the image into the cache, released to
     * nobody until all of it is there. Returns early, writing nothing, if the session has already
     * ended.
     */
    final void fetchWhole(Session session, long off, int len) throws IOException {
        fetchWhole(session, off, len, FetchTrace.current());
    }

    /** {@link #fetchWhole(Session, long, int)}, staged and recorded in {@code trace}. */
    final void fetchWhole(Session session, long off, int len, FetchTrace trace) throws IOException {
        MemorySegment stage = trace.staging(len);
        if (readTracked(session, off, stage.asByteBuffer(), trace)) {
            cache.writeAt(stage, off);
            trace.writtenAt = System.nanoTime();
        }
    }

    /**
     * Reads {@code [off, off + dst.remaining())} of the stored object whole into {@code dst}, as a
     * range stream the session tracks: a session that fails (its deadline passed) closes the
     * connection and gives this thread back at once, instead of at the store client's own
     * timeouts. Counts the request in the metrics.
     *
     * @return false if the session had already ended: nothing was read
     */
    final boolean readTracked(Session session, long off, ByteBuffer dst) throws IOException {
        return readTracked(session, off, dst, FetchTrace.current());
    }

    private boolean readTracked(Session session, long off, ByteBuffer dst, FetchTrace trace) throws IOException {
        int len = dst.remaining();
        long t0 = System.nanoTime();
        trace.requestedAt = t0;
        try (RangeStream in = upstream.openRange(off, len)) {
            trace.firstByteAt = System.nanoTime();
            if (!session.track(in)) {
                return false;
            }
            while (dst.hasRemaining()) {
                if (in.read(dst) < 0) {
                    throw new UpstreamException(upstream.name(), off, len, "short read: the stream ended after "
                            + (len - dst.remaining()) + " of " + len + " bytes");
                }
            }
        }
        long t1 = System.nanoTime();
        trace.lastByteAt = t1;
        metrics.remoteRead(upstream.name(), len, t1 - t0);
        return true;
    }

    /**
     * One range stream of {@code [off, off+len)} into the cache, in batches of at least
     * max(block, 16 KiB); after each batch is in the cache, {@code landed} gets the bytes
     * written so far. Returns early, fetching nothing, if the session has already ended.
     */
    final void fetchStream(Session session, long off, int len, LongConsumer landed) throws IOException {
        int batch = Math.max(blockSize, MIN_BATCH);
        FetchTrace trace = FetchTrace.current();
        MemorySegment stage = trace.staging(Math.min(STREAM_STAGE, len));
        ByteBuffer buf = stage.asByteBuffer();
        long t0 = System.nanoTime();
        trace.requestedAt = t0;
        try (RangeStream in = upstream.openRange(off, len)) {
            trace.firstByteAt = System.nanoTime();
            if (!session.track(in)) {
                return;
            }
            session.deferToDemand(trace.firstByteAt);
            long written = 0;
            while (written < len) {
                buf.clear().limit((int) Math.min(buf.capacity(), len - written));
                int want = Math.min(batch, buf.limit());
                while (buf.position() < want) {
                    if (in.read(buf) < 0) {
                        throw new UpstreamException(upstream.name(), off, len, "short read: the stream ended after "
                                + (written + buf.position()) + " of " + len + " bytes");
                    }
                }
                cache.writeAt(stage, 0, buf.position(), off + written);
                written += buf.position();
                if (written == len) {
                    // Before the last readers are released: one who has its bytes sees them counted.
                    long t1 = System.nanoTime();
                    trace.lastByteAt = t1;
                    trace.writtenAt = t1;
                    metrics.remoteRead(upstream.name(), len, t1 - t0);
                }
                landed.accept(written);
            }
        }
        trace.commit(upstream.name(), "stream", off, len);
    }

    /** The fetch of {@code [off, off+len)} is in the cache and its readers released: a {@link FetchEvent} if wanted. */
    final void fetched(String kind, long off, long len) {
        FetchTrace.current().commit(upstream.name(), kind, off, len);
    }

    /** A session that will fetch chunk {@code chunkIndex}; not started yet. */
    abstract Session newSession(long chunkIndex);

    @Override
    public final long size() {
        return size;
    }

    @Override
    public final int blockSize() {
        return blockSize;
    }

    @Override
    public final SparseCache cache() {
        return cache;
    }

    @Override
    public final MemorySegment slice(long off, long len) throws IOException {
        long n = checkRead(off, len);
        // A failed cache (its file truncated under us) fails fast instead of fetching into a file
        // whose other blocks can no longer be trusted.
        cache.throwIfFailed();
        try {
            if (cache.isCached(off, n)) {
                metrics.cacheHit(n);
                return cache.sliceDirect(off, n);
            }
            metrics.cacheMiss(n);
            awaitFetched(off, off + n);
            return cache.sliceDirect(off, n);
        } catch (UncheckedIOException e) {
            throw e.getCause();
        }
    }

    @Override
    public final long readAt(MemorySegment dst, long off) throws IOException {
        MemorySegment src = slice(off, dst.byteSize());
        checkBeforeCopy();
        try {
            MemorySegment.copy(src, 0, dst, 0, src.byteSize());
        } catch (InternalError e) {
            // SIGBUS in the copy, turned into an error by the JVM: the file is shorter than the mapping.
            throw cache.fault("reading", off, src.byteSize(), e);
        }
        return src.byteSize();
    }

    @Override
    public final int readAt(byte[] dst, int dstOff, int len, long off) throws IOException {
        Objects.checkFromIndexSize(dstOff, len, dst.length);
        MemorySegment src = slice(off, len);
        checkBeforeCopy();
        try {
            MemorySegment.copy(src, ValueLayout.JAVA_BYTE, 0, dst, dstOff, (int) src.byteSize());
        } catch (InternalError e) {
            throw cache.fault("reading", off, src.byteSize(), e);
        }
        return (int) src.byteSize();
    }

    /**
     * The cache's size check before a copy out of the mapping: the catch of InternalError around
     * the copy alone can miss a SIGBUS, which HotSpot may deliver after the try block has ended
     * (see {@link SparseCache#checkFileBeforeCopy}).
     */
    private void checkBeforeCopy() throws IOException {
        try {
            cache.checkFileBeforeCopy();
        } catch (UncheckedIOException e) {
            throw e.getCause();
        }
    }

    /** Joins (or starts) the fetch of every chunk under {@code [from, to)}, then waits for them. */
    private void awaitFetched(long from, long to) throws IOException {
        long t0 = System.nanoTime();
        long deadline = t0 + options.fetchTimeout().toNanos() + READER_GRACE_NANOS;
        long first = from / chunkSize;
        long last = (to - 1) / chunkSize;
        if (first == last) {
            Waiter w = join(first, from - first * chunkSize, to - first * chunkSize, true);
            if (w != null) {
                long joined = System.nanoTime();
                w.await(deadline);
                missed(w, from, to, t0, joined);
            }
            return;
        }
        // Join every chunk before waiting on any, so their fetches run in parallel: only the last
        // may send its request from this thread, when every other one is out.
        Waiter[] waiters = new Waiter[(int) (last - first + 1)];
        try {
            for (long c = first; c <= last; c++) {
                long base = c * chunkSize;
                waiters[(int) (c - first)] = join(c, Math.max(from, base) - base, Math.min(to, base + chunkSize) - base,
                        c == last);
            }
            for (Waiter w : waiters) {
                if (w != null) {
                    w.await(deadline);
                }
            }
        } catch (IOException | RuntimeException e) {
            for (Waiter w : waiters) {
                if (w != null) {
                    w.session.cancel(w);
                }
            }
            throw e;
        }
    }

    /** A reader's wait on {@code w}, begun at {@code t0} and handed over at {@code joined}: a {@link MissEvent} if wanted. */
    private void missed(Waiter w, long from, long to, long t0, long joined) {
        MissEvent e = new MissEvent();
        if (!e.isEnabled()) {
            return;
        }
        long now = System.nanoTime();
        e.upstream = upstream.name();
        e.offset = from;
        e.length = to - from;
        e.wait = now - t0;
        e.handOver = (w.ownRequestAt != 0 ? w.ownRequestAt : joined) - t0;
        e.wake = w.releasedAt == 0 ? 0 : now - w.releasedAt;
        e.commit();
    }

    /**
     * A waiter on chunk {@code c} for {@code [relFrom, relTo)}, or null if those bytes are present;
     * {@code last}: the reader joins no other chunk after this one, so it may fetch on its own thread.
     */
    private Waiter join(long c, long relFrom, long relTo, boolean last) {
        long absFrom = c * chunkSize + relFrom;
        Waiter[] joined = new Waiter[1];
        Session s = sessions.compute(c, (key, current) -> {
            if (current != null) {
                Waiter w = current.join(relFrom, relTo);
                if (w != null) {
                    joined[0] = w;
                    return current;
                }
                // A failed session still in the map: replace it with a fresh fetch.
            }
            if (cache.isCached(absFrom, relTo - relFrom)) {
                return null; // a session completed between our miss and this lock
            }
            Session fresh = newSession(c);
            joined[0] = fresh.join(relFrom, relTo);
            return fresh;
        });
        if (s != null) {
            s.kick(joined[0], last);
        }
        return joined[0];
    }

    private long checkRead(long off, long len) {
        if (len < 0) {
            throw new IllegalArgumentException("length must be >= 0, got " + len);
        }
        if (off < 0 || off >= size) {
            throw new IndexOutOfBoundsException("offset " + off + " is outside the image [0, " + size + ") of "
                    + upstream.name());
        }
        return Math.min(len, size - off);
    }

    /**
     * Closes the cache, then fails every fetch in flight so no reader waits on it. Fetch threads
     * still writing hold cache leases, so the mapping outlives them.
     */
    @Override
    public void close() {
        cache.close();
        if (sessions.isEmpty()) {
            return;
        }
        CacheClosedException closed = CacheClosedException.shared("cache closed: chunker over " + upstream.name() + " closed");
        for (Session s : sessions.values()) {
            s.fail(closed);
        }
    }

    @Override
    public String toString() {
        return getClass().getSimpleName() + "[" + upstream.name() + ", " + size + " bytes, chunk " + chunkSize + "]";
    }
}
