package dev.lazyblock.chunker;


/**
 * A session whose bytes arrive in order from the chunk's start: {@code bytesReady} only grows,
 * and waiters, sorted by the end they need, are released from the front as it passes them.
 * Full-fetch advances once, at the end; streaming advances batch by batch. Here
 * {@link #waiters} is kept sorted by {@link Waiter#to}, ascending.
 */
abstract class ProgressSession extends Session {
    /** Guarded by {@link #lock}. Monotonic: a multiple of the block size, or the chunk length. */
    private long bytesReady;

    ProgressSession(AbstractChunker chunker, long chunkIndex) {
        super(chunker, chunkIndex);
    }

    @Override
    final Waiter join(long relFrom, long relTo) {
        lock.lock();
        try {
            if (failedLocked()) {
                return null;
            }
            Waiter w = new Waiter(this, relFrom, relTo);
            if (bytesReady >= relTo) {
                w.release();
                return w;
            }
            int i = waiters.size();
            while (i > 0 && waiters.get(i - 1).to > relTo) {
                i--;
            }
            waiters.add(i, w);
            return w;
        } finally {
            lock.unlock();
        }
    }

    /** Publishes that {@code [0, ready)} is in the cache and releases the waiters it covers. */
    final void advance(long ready) {
        int released = 0;
        lock.lock();
        try {
            if (endedLocked() || ready <= bytesReady) {
                return;
            }
            bytesReady = ready;
            while (!waiters.isEmpty() && waiters.getFirst().to <= ready) {
                waiters.removeFirst().release();
                released++;
            }
        } finally {
            lock.unlock();
        }
        if (released > 0) {
            chunker.metrics.waitersReleased(released);
        }
    }

    @Override
    final void run() {
        runGuarded(this::fetch, true); // the first reader waits on it
    }

    /** Fills the chunk, calling {@link #advance} as bytes land, then {@link #complete}. */
    abstract void fetch() throws Exception;
}
