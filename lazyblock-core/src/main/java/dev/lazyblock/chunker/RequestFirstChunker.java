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
 */
public final class RequestFirstChunker extends AbstractChunker {
    /** Extra priority requests a chunk may make for later readers. */
    static final int MAX_EXTRA_PRIORITY = 4;
    /**
     * A reader whose blocks a flowing stream will reach within this many bytes waits for the
     * stream: at 100 MB/s that is ~2.6 ms, well under any store's time to first byte.
     */
    static final long NEAR_BYTES = 256 << 10;

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
        /** Guarded by {@link #lock}: priority ranges [from, to) in blocks, asked for but not launched. */
        private final ArrayList<long[]> pending = new ArrayList<>(2);
        /** Guarded by {@link #lock}: priority ranges launched. */
        private final ArrayList<long[]> inFlight = new ArrayList<>(4);
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
                } else if (wantsPriority(from, to)) {
                    pending.add(new long[] {from, to});
                }
                return w;
            } finally {
                lock.unlock();
            }
        }

        /** Whether a later reader of blocks [from, to) should get its own request. Under the lock. */
        private boolean wantsPriority(long from, long to) {
            if (inFlight.size() + pending.size() >= 1 + MAX_EXTRA_PRIORITY) {
                return false;
            }
            if (from >= firstFrom && to <= firstTo) {
                return false; // the first request covers it
            }
            for (long[] r : inFlight) {
                if (from >= r[0] && to <= r[1]) {
                    return false;
                }
            }
            for (long[] r : pending) {
                if (from >= r[0] && to <= r[1]) {
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

        @Override
        void kick() {
            super.kick();
            ArrayList<long[]> launch;
            lock.lock();
            try {
                if (pending.isEmpty() || endedLocked()) {
                    return;
                }
                launch = new ArrayList<>(pending);
                inFlight.addAll(pending);
                pending.clear();
            } finally {
                lock.unlock();
            }
            for (long[] r : launch) {
                runGuarded(() -> priority(r[0], r[1]), true);
            }
        }

        @Override
        void run() {
            long from, to;
            lock.lock();
            try {
                from = firstFrom;
                to = firstTo;
                inFlight.add(new long[] {from, to});
                streamEnd[0] = blocks;
                streamEnd[1] = from;
            } finally {
                lock.unlock();
            }
            runGuarded(() -> priority(from, to), true);
            if (to < blocks) {
                runGuarded(() -> stream(0, to, blocks));
            }
            if (from > 0) {
                runGuarded(() -> stream(1, 0, from));
            }
        }

        private long byteOf(long block) {
            return Math.min(block * blockSize, chunkLen);
        }

        /** One whole-range request for blocks [from, to). */
        private void priority(long from, long to) throws IOException {
            chunker.fetchWhole(this, chunkOff + byteOf(from), (int) (byteOf(to) - byteOf(from)));
            publish(from, to, -1);
        }

        /** Streams blocks [from, to), publishing the whole blocks of each batch as it lands. */
        private void stream(int which, long from, long to) throws IOException {
            long[] published = {from};
            chunker.fetchStream(this, chunkOff + byteOf(from), (int) (byteOf(to) - byteOf(from)), written -> {
                long at = chunkOff + byteOf(from) + written == chunkOff + byteOf(to) ? to : from + written / blockSize;
                if (at > published[0]) {
                    publish(published[0], at, which);
                    published[0] = at;
                }
            });
        }

        /** Blocks [from, to) are in the cache: release who can go, complete when all are. */
        private void publish(long from, long to, int stream) {
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
}
