package dev.lazyblock.chunker;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.upstream.Upstream;
import java.io.IOException;
import java.util.ArrayList;

/**
 * The block a reader waits for arrives first, instead of after every byte before it in the
 * chunk: a miss costs one small request (time to first byte + a block), close to the physical
 * limit, while the rest of the chunk streams in behind it.
 *
 * <p>Per chunk, the first reader's blocks are fetched by a small <em>priority</em> request,
 * and two streams fetch the rest: from the end of those blocks to the chunk's end, and from
 * the chunk's start up to them. No byte is fetched twice by these three. A later reader whose
 * blocks are not there yet gets a priority request of its own, unless a stream will reach them
 * within {@link #NEAR_BYTES}, up to {@link #MAX_EXTRA_PRIORITY} per chunk; those few blocks are
 * the only bytes fetched twice. So a chunk costs at most {@code 3 + MAX_EXTRA_PRIORITY} upstream
 * requests.
 *
 * <p>The streams go out with the first reader's request and their first bytes come with its
 * own, so each stream defers to the priority requests in flight at its first byte (bounded by
 * {@link #DEFER_NANOS}): the blocks readers wait for go first on the CPU as well as at the store.
 */
public final class RequestFirstChunker extends AbstractChunker {
    /** Extra priority requests a chunk may make for later readers. */
    static final int MAX_EXTRA_PRIORITY = 4;
    /**
     * A reader whose blocks a flowing stream will reach within this many bytes waits for the
     * stream: at 100 MB/s that is ~2.6 ms, well under any store's time to first byte.
     */
    static final long NEAR_BYTES = 256 << 10;
    /**
     * Longest a stream defers to the demand requests in flight at its first byte (see
     * {@link BlockSession#deferToDemand}): they went out with it or before, so their bytes are
     * due with its own; the bound only matters for a store that stalls on one of them.
     */
    static final long DEFER_NANOS = 1_000_000;
    /** How often a deferring stream looks whether the demand requests have landed. */
    static final long DEFER_POLL_NANOS = 20_000;

    public RequestFirstChunker(Upstream upstream, SparseCache cache, ChunkerOptions options) throws IOException {
        super(upstream, cache, options);
    }

    @Override
    Session newSession(long chunkIndex) {
        return new BlockSession(this, chunkIndex);
    }

    /** Readiness by block, since bytes arrive out of order. */
    static final class BlockSession extends Session {
        private final int blocks;
        private final int blockSize;
        /** Guarded by {@link #lock}: a bit per block of the chunk that is in the cache. */
        private final long[] ready;
        /** Guarded by {@link #lock}. */
        private int readyCount;
        /** Guarded by {@link #lock}: priority requests asked for by readers. */
        private final ArrayList<Priority> inFlight = new ArrayList<>(4);
        /** Guarded by {@link #lock}: the next block each stream will deliver, -1 before its first byte. */
        private final long[] streamNext = {-1, -1};
        private final long[] streamEnd = {0, 0};
        /** Guarded by {@link #lock}: the first reader's range; drives the initial plan. */
        private long firstFrom = -1;
        private long firstTo = -1;

        BlockSession(AbstractChunker chunker, long chunkIndex) {
            super(chunker, chunkIndex);
            this.blockSize = chunker.blockSize;
            this.blocks = (chunkLen + blockSize - 1) / blockSize;
            this.ready = new long[(blocks + 63) >>> 6];
        }

        @Override
        Waiter join(long relFrom, long relTo) {
            long from = relFrom / blockSize;
            long to = (relTo + blockSize - 1) / blockSize;
            lock.lock();
            try {
                if (failedLocked()) {
                    return null;
                }
                Waiter w = new Waiter(this, from, to);
                if (allReady(from, to)) {
                    w.release();
                    return w;
                }
                waiters.add(w);
                if (firstFrom < 0) {
                    firstFrom = from;
                    firstTo = to;
                    inFlight.add(new Priority(from, to));
                    w.fetchesOwn = true;
                } else if (wantsPriority(from, to)) {
                    inFlight.add(new Priority(from, to));
                    w.fetchesOwn = true;
                }
                return w;
            } finally {
                lock.unlock();
            }
        }

        /** Whether a later reader of blocks [from, to) should get its own request. Under the lock. */
        private boolean wantsPriority(long from, long to) {
            if (inFlight.size() >= 1 + MAX_EXTRA_PRIORITY) {
                return false;
            }
            for (Priority r : inFlight) { // the first reader's among them
                if (from >= r.from && to <= r.to) {
                    return false;
                }
            }
            for (int s = 0; s < 2; s++) {
                long next = streamNext[s];
                if (next >= 0 && from >= next && to <= streamEnd[s] && (to - next) * blockSize <= NEAR_BYTES) {
                    return false; // a flowing stream is about to deliver it
                }
            }
            return true;
        }

        /**
         * A reader whose blocks got a request of their own sends it, before the first reader
         * starts the streams: the request a reader is blocked on takes the first idle fetch thread.
         * Where it may ({@link #reserveCaller}), the reader sends it from its own thread instead,
         * after the streams' hand-over (this thread is busy with its request from then on).
         */
        @Override
        void kick(Waiter w, boolean last) {
            boolean first = start();
            if (w != null && w.fetchesOwn) {
                w.fetchesOwn = false;
                long from = w.from;
                long to = w.to;
                if (last && reserveCaller()) {
                    if (first) {
                        run();
                    }
                    w.ownRequestAt = runOnCaller(trace -> priority(from, to, trace, true));
                    return;
                }
                runGuarded(() -> priority(from, to, FetchTrace.current(), false), true);
            }
            if (first) {
                run();
            }
        }

        /** Interrupts the readers blocked in their own requests (see {@link Session#stopCallersLocked}). */
        @Override
        void stopCallersLocked() {
            for (Priority p : inFlight) {
                Thread t = p.caller;
                if (t != null && t != Thread.currentThread()) {
                    p.stopped = true;
                    t.interrupt();
                }
            }
        }

        /** The streams around the first reader's blocks; its own request went out from {@link #kick}. */
        @Override
        void run() {
            long from, to;
            lock.lock();
            try {
                from = firstFrom;
                to = firstTo;
                streamEnd[0] = blocks;
                streamEnd[1] = from;
            } finally {
                lock.unlock();
            }
            // One hand-over on the reader's path, not two: the thread that takes the streams
            // passes the second one on before it sends its own request.
            if (to < blocks && from > 0) {
                runGuarded(() -> {
                    runGuarded(() -> stream(1, 0, from));
                    stream(0, to, blocks);
                });
            } else if (to < blocks) {
                runGuarded(() -> stream(0, to, blocks));
            } else if (from > 0) {
                runGuarded(() -> stream(1, 0, from));
            }
        }

        private long byteOf(long block) {
            return Math.min(block * blockSize, chunkLen);
        }

        /**
         * One whole-range request for blocks [from, to), unless a stream brought them meanwhile;
         * {@code onCaller}: from its reader's thread ({@link #runOnCaller}).
         */
        private void priority(long from, long to, FetchTrace trace, boolean onCaller) throws IOException {
            Priority p = null;
            lock.lock();
            try {
                if (allReady(from, to) || endedLocked()) {
                    return;
                }
                for (Priority r : inFlight) {
                    if (r.from == from && r.to == to && !r.landed) {
                        p = r;
                        p.sentAt = System.nanoTime();
                        if (onCaller) {
                            // Registered under the lock that fail() holds to interrupt, after the
                            // check that the session has not ended: an interrupt comes now or never.
                            p.caller = Thread.currentThread();
                        }
                        break;
                    }
                }
            } finally {
                lock.unlock();
            }
            long off = chunkOff + byteOf(from);
            int len = (int) (byteOf(to) - byteOf(from));
            Throwable failed = null;
            try {
                chunker.fetchWhole(this, off, len, trace);
            } catch (Throwable t) {
                failed = t;
            }
            boolean stopped = onCaller && leftCall(p);
            if (failed != null) {
                if (onCaller && !stopped && Thread.currentThread().isInterrupted()) {
                    // The reader's own caller interrupted it (not this session): its wait ends on
                    // that, while a fetch thread sends the request again for any other reader.
                    runGuarded(() -> priority(from, to, FetchTrace.current(), false), true);
                    return;
                }
                throw rethrow(failed);
            }
            publish(from, to, -1, p);
            trace.commit(chunker.upstream.name(), "priority", off, len);
        }

        private static IOException rethrow(Throwable t) {
            if (t instanceof RuntimeException r) {
                throw r;
            }
            if (t instanceof Error e) {
                throw e;
            }
            return t instanceof IOException io ? io : new IOException(t);
        }

        /**
         * The reader running {@code p} on its own thread has left the store's call: no interrupt
         * from this session can come after this. Clears the one that came, if any.
         *
         * @return whether this session interrupted the reader (it has then failed)
         */
        private boolean leftCall(Priority p) {
            if (p == null) {
                return false;
            }
            boolean stopped;
            lock.lock();
            try {
                p.caller = null;
                stopped = p.stopped;
            } finally {
                lock.unlock();
            }
            if (stopped) {
                Thread.interrupted(); // ours, delivered under the lock before we took it: not the caller's to see
            }
            return stopped;
        }

        /**
         * Called by a stream at its first byte: a priority request sent by then and not yet landed
         * has its first byte due about now too (they went out together), and its reader is blocked
         * on it; the stream's first batches (copies and cache writes) would compete with it for
         * the CPU (measured: ~70 µs more per NFS-model miss on 2 cores; the README's bench section).
         * So the stream waits for those, at most {@link #DEFER_NANOS}: demand bytes go first on
         * the CPU as they do at the store. Its own bytes wait in the store's stream meanwhile.
         *
         * <p>The stream looks again every {@link #DEFER_POLL_NANOS} rather than being signalled:
         * a signal would be one more system call on the priority request's path, its reader
         * waiting behind it, while a stream a few tens of µs late costs nothing.
         */
        @Override
        void deferToDemand(long firstByteAt) {
            long deadline = firstByteAt + DEFER_NANOS;
            while (deadline - System.nanoTime() > 0) {
                lock.lock();
                try {
                    if (endedLocked() || !landsBefore(firstByteAt)) {
                        return;
                    }
                } finally {
                    lock.unlock();
                }
                java.util.concurrent.locks.LockSupport.parkNanos(DEFER_POLL_NANOS);
                if (Thread.currentThread().isInterrupted()) {
                    return; // the stream's next read fails on it
                }
            }
        }

        /** Whether a priority request sent by {@code t} has not landed yet. Under the lock. */
        private boolean landsBefore(long t) {
            for (Priority p : inFlight) {
                if (!p.landed && p.sentAt != 0 && p.sentAt - t <= 0) {
                    return true;
                }
            }
            return false;
        }

        /** Streams blocks [from, to), publishing the whole blocks of each batch as it lands. */
        private void stream(int which, long from, long to) throws IOException {
            long[] published = {from};
            chunker.fetchStream(this, chunkOff + byteOf(from), (int) (byteOf(to) - byteOf(from)), written -> {
                long at = chunkOff + byteOf(from) + written == chunkOff + byteOf(to) ? to : from + written / blockSize;
                if (at > published[0]) {
                    publish(published[0], at, which, null);
                    published[0] = at;
                }
            });
        }

        /**
         * Blocks [from, to) are in the cache: release who can go, complete when all are. From
         * {@code stream} (0 or 1, else -1), or from priority request {@code landed}, if not null.
         */
        private void publish(long from, long to, int stream, Priority landed) {
            int released = 0;
            boolean full;
            lock.lock();
            try {
                if (endedLocked()) {
                    return;
                }
                for (long b = from; b < to; b++) {
                    long bit = 1L << b;
                    int w = (int) (b >>> 6);
                    if ((ready[w] & bit) == 0) {
                        ready[w] |= bit;
                        readyCount++;
                    }
                }
                if (stream >= 0) {
                    streamNext[stream] = to;
                }
                if (landed != null) {
                    landed.landed = true; // no signal: a deferring stream looks again shortly (see deferToDemand)
                }
                for (int i = waiters.size() - 1; i >= 0; i--) {
                    Waiter w = waiters.get(i);
                    if (allReady(w.from, w.to)) {
                        waiters.remove(i).release();
                        released++;
                    }
                }
                full = readyCount == blocks;
            } finally {
                lock.unlock();
            }
            if (released > 0) {
                chunker.metrics.waitersReleased(released);
            }
            if (full) {
                complete();
            }
        }

        private boolean allReady(long from, long to) {
            for (long b = from; b < to; b++) {
                if ((ready[(int) (b >>> 6)] & (1L << b)) == 0) {
                    return false;
                }
            }
            return true;
        }
    }

    /** A priority request for a reader's blocks [from, to). Fields guarded by the session's lock. */
    private static final class Priority {
        final long from;
        final long to;
        /** {@link System#nanoTime()} when the request went out, 0 before. */
        long sentAt;
        /** Its blocks are published. */
        boolean landed;
        /** The reader sending it from its own thread while it is in the store's call, else null. */
        Thread caller;
        /** The session interrupted {@link #caller}: it failed while the request was out. */
        boolean stopped;

        Priority(long from, long to) {
            this.from = from;
            this.to = to;
        }
    }
}
