package dev.lazyblock.chunker;

import dev.lazyblock.cache.CacheClosedException;
import dev.lazyblock.upstream.Upstream.RangeStream;
import dev.lazyblock.upstream.UpstreamException;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The fetch of one chunk and the readers waiting on it. A session ends exactly once: complete
 * (the chunk is marked present in the cache <em>before</em> the session leaves the chunker's
 * map) or failed (every waiter still waiting gets the error, and the map forgets the session
 * so the next reader starts over).
 *
 * <p>The fetch runs on the chunker's fetch threads, detached from the reader that started it
 * (other readers share it), under a deadline of its own enforced by a watchdog, and whatever it
 * throws ends in {@link #fail}, which releases its waiters. A reader's own small request may run
 * on the reader's thread instead ({@link #runOnCaller}), where the deadline ends it by interrupt.
 */
abstract class Session {
    final AbstractChunker chunker;
    final long chunkIndex;
    final long chunkOff;
    final int chunkLen;
    final long deadlineNanos;

    /** Guards the waiters, the progress of subclasses, {@link #ended} and {@link #streams}. */
    final ReentrantLock lock = new ReentrantLock();
    /** Guarded by {@link #lock}. Null while running; then DONE or the error. */
    private Object ended;
    private static final Object DONE = new Object();
    /** Guarded by {@link #lock}: readers not yet released, in the order the subclass keeps. */
    final ArrayList<Waiter> waiters = new ArrayList<>(4);
    /** Guarded by {@link #lock}: upstream streams to close if the session fails. */
    private final List<RangeStream> streams = new ArrayList<>(2);

    private final AtomicBoolean started = new AtomicBoolean();
    private volatile ScheduledFuture<?> watchdog;

    Session(AbstractChunker chunker, long chunkIndex) {
        this.chunker = chunker;
        this.chunkIndex = chunkIndex;
        this.chunkOff = chunkIndex * chunker.chunkSize;
        this.chunkLen = (int) Math.min(chunker.chunkSize, chunker.size - chunkOff);
        this.deadlineNanos = System.nanoTime() + chunker.options.fetchTimeout().toNanos();
    }

    /**
     * Adds a reader of {@code [relFrom, relTo)} (bytes from the chunk start). Called under the
     * chunker map's lock for this chunk.
     *
     * @return the waiter (released at once if its bytes are already here), or null if this
     *         session has failed and must be replaced
     */
    abstract Waiter join(long relFrom, long relTo);

    /**
     * Starts the fetch on first call; called by every reader after {@link #join}, outside the
     * map's lock, with its waiter (null if it needs nothing from this session); {@code last}: the
     * reader joins no other session before it waits, so this call may run its fetch
     * ({@link #runOnCaller}), which returns only when the fetch has.
     */
    void kick(Waiter w, boolean last) {
        if (start()) {
            run();
        }
    }

    /** True once, for the caller that starts the session: its deadline is watched from then on. */
    final boolean start() {
        if (!started.compareAndSet(false, true)) {
            return false;
        }
        long delay = deadlineNanos - System.nanoTime();
        watchdog = AbstractChunker.WATCHDOG.schedule(this::expire, delay, TimeUnit.NANOSECONDS);
        return true;
    }

    /** Launches the fetch work on fetch threads. */
    abstract void run();

    /**
     * A read-ahead stream of this session got its first byte at {@code firstByteAt}: a session
     * whose demand requests are due at the same moment may hold it back until they have landed
     * (request-first does, bounded). No wait by default.
     */
    void deferToDemand(long firstByteAt) {}

    /** A piece of fetch work. */
    interface Work {
        void run() throws Exception;
    }

    /**
     * Runs fetch work on a fetch thread: holding a cache lease (so the mapping outlives it even
     * if the chunker closes meanwhile), and ending the session with whatever it throws.
     */
    final void runGuarded(Work work) {
        runGuarded(work, false);
    }

    /**
     * {@link #runGuarded(Work)}, {@code demand} saying whether a reader is blocked on exactly
     * this work (it then goes ahead of queued read-ahead, see {@link FetchThreads}).
     */
    final void runGuarded(Work work, boolean demand) {
        long queuedAt = System.nanoTime();
        Runnable task = () -> {
            FetchTrace.current().start(queuedAt, demand);
            guarded(work);
        };
        try {
            if (demand) {
                pool().executeUrgent(task);
            } else {
                pool().execute(task);
            }
        } catch (java.util.concurrent.RejectedExecutionException e) {
            fail(e); // the pool is closed: every waiter gets this at once, none waits for its deadline
        }
    }

    /**
     * Whether the calling reader may run a demand fetch on its own thread, saving the hand-off to
     * a fetch thread and the wake-up back (two thread switches, ~25 µs on an idle host and up to
     * ~180 µs on a busy one, see the README's bench section). Only if the store's client honours
     * interrupts, since this session's deadline and failure then end the call by interrupting the
     * reader ({@link #stopCallersLocked}); and only if the pool has a slot free, which the reader
     * then holds, so the bound counts it. Platform and virtual readers alike: a virtual one
     * borrows its fetch's staging memory from the pool ({@link FetchThreads#lendTrace}).
     *
     * @return true if the caller now holds a slot and must call {@link #runOnCaller}
     */
    final boolean reserveCaller() {
        return chunker.upstream.honoursInterrupts() && pool().tryCallerSlot();
    }

    /**
     * Runs demand work on the reader's thread, after {@link #reserveCaller}, then gives the slot back.
     *
     * @return when its request went out ({@link System#nanoTime()}), 0 if it sent none
     */
    final long runOnCaller(TracedWork work) {
        FetchThreads pool = pool();
        boolean virtual = Thread.currentThread().isVirtual();
        FetchTrace trace = virtual ? pool.lendTrace() : FetchTrace.current();
        try {
            trace.start(System.nanoTime(), true);
            guarded(() -> work.run(trace));
            return trace.requestedAt;
        } finally {
            if (virtual) {
                pool.takeBackTrace(trace);
            }
            pool.releaseCallerSlot();
        }
    }

    /** Fetch work given the trace it records into (and stages through). */
    interface TracedWork {
        void run(FetchTrace trace) throws Exception;
    }

    /**
     * Runs fetch work on the calling thread: holding a cache lease (so the mapping outlives it even
     * if the chunker closes meanwhile), and ending the session with whatever it throws.
     */
    private void guarded(Work work) {
        try {
            chunker.cache.retain();
        } catch (RuntimeException e) {
            fail(e);
            return;
        }
        try {
            if (hasEnded()) {
                return; // timed out or failed while queued for a fetch thread: nothing to fetch for
            }
            // A reader that passed slice's check just before another fetch found the file
            // truncated may have replaced that fetch's failed session with this one: ask for
            // nothing more from the store for a cache that can no longer be trusted.
            IOException failed = chunker.cache.failure();
            if (failed != null) {
                fail(failed);
                return;
            }
            work.run();
        } catch (Throwable t) {
            fail(t);
        } finally {
            chunker.cache.release();
        }
    }

    private FetchThreads pool() {
        FetchThreads own = chunker.options.fetchThreads();
        return own != null ? own : AbstractChunker.FETCHERS;
    }

    /**
     * The session has just ended with an error, under {@link #lock}: interrupt the readers running
     * its fetches on their own threads ({@link #runOnCaller}), so a call blocked on the store ends
     * now rather than at its client's own timeout. Each clears its interrupt when it has left the
     * call. None by default.
     */
    void stopCallersLocked() {}

    /** Removes a reader that stopped waiting. */
    final void cancel(Waiter w) {
        lock.lock();
        try {
            waiters.remove(w);
        } finally {
            lock.unlock();
        }
    }

    /** Fails and clears every waiter; called under {@link #lock}. */
    private void failWaiters(Throwable error) {
        for (Waiter w : waiters) {
            w.fail(error);
        }
        waiters.clear();
    }

    /** Whether the session has ended (completed or failed); takes the lock. */
    private boolean hasEnded() {
        lock.lock();
        try {
            return ended != null;
        } finally {
            lock.unlock();
        }
    }

    /** Whether the session has ended (completed or failed). Call under {@link #lock}. */
    final boolean endedLocked() {
        return ended != null;
    }

    final boolean failedLocked() {
        return ended != null && ended != DONE;
    }

    /**
     * Registers a stream to close if the session fails (to unblock its reader thread).
     *
     * @return false if the session has already ended: the caller closes the stream itself
     */
    final boolean track(RangeStream s) {
        lock.lock();
        try {
            if (ended != null) {
                return false;
            }
            streams.add(s);
            return true;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Ends the session successfully once every byte is in the cache: mark the chunk present,
     * then leave the map. Subclasses have released their waiters already.
     */
    final void complete() {
        lock.lock();
        try {
            if (ended != null) {
                return;
            }
            ended = DONE;
        } finally {
            lock.unlock();
        }
        cancelWatchdog();
        try {
            chunker.cache.setIsCached(chunkOff, chunkLen);
        } catch (CacheClosedException e) {
            // Closed under us: the readers were failed by close(); nothing to mark.
        }
        chunker.sessions.remove(chunkIndex, this);
    }

    /** Ends the session with an error for every reader still waiting. Idempotent. */
    final void fail(Throwable error) {
        List<RangeStream> toClose;
        lock.lock();
        try {
            if (ended != null) {
                return;
            }
            ended = error;
            // Counted and logged before any reader hears of it, so a reader's error is always in
            // the metrics and the log by the time the reader can act on it. Failures are rare.
            chunker.metrics.fetchFailed(chunker.upstream.name(), error, error instanceof FetchTimeoutException);
            if (!(error instanceof CacheClosedException)) {
                AbstractChunker.log.warn("fetch of chunk {} [{}, {}) of {} failed: {}", chunkIndex, chunkOff,
                        chunkOff + chunkLen, chunker.upstream.name(), error.toString());
            }
            failWaiters(error);
            stopCallersLocked();
            toClose = new ArrayList<>(streams);
            streams.clear();
        } finally {
            lock.unlock();
        }
        cancelWatchdog();
        for (RangeStream s : toClose) {
            try {
                s.close(); // unblocks a fetch thread stuck in read()
            } catch (IOException | RuntimeException ignored) {
                // the stream is being abandoned; its error is not the one readers need
            }
        }
        chunker.sessions.remove(chunkIndex, this);
    }

    private void expire() {
        fail(new FetchTimeoutException(chunker.upstream.name(), chunkOff, chunkLen, chunker.options.fetchTimeout()));
    }

    private void cancelWatchdog() {
        ScheduledFuture<?> w = watchdog;
        if (w != null) {
            w.cancel(false);
        }
    }

    /** A reader's own exception for the fetch's error: each reader gets a fresh one. */
    IOException errorForReader(Throwable t) {
        if (t instanceof FetchTimeoutException) {
            return timeoutForReader();
        }
        if (t instanceof dev.lazyblock.frame.CorruptFrameException c) {
            return new dev.lazyblock.frame.CorruptFrameException(c);
        }
        if (t instanceof dev.lazyblock.content.CorruptChunkException c) {
            return new dev.lazyblock.content.CorruptChunkException(c);
        }
        if (t instanceof CacheClosedException c) {
            throw new CacheClosedException(c.getMessage(), c);
        }
        if (t == chunker.cache.failure()) {
            return new IOException(t.getMessage(), t); // the cache's own error, not the store's
        }
        return new UpstreamException(chunker.upstream.name(), chunkOff, chunkLen, "fetch failed: " + t.getMessage(), t);
    }

    IOException timeoutForReader() {
        return new FetchTimeoutException(chunker.upstream.name(), chunkOff, chunkLen, chunker.options.fetchTimeout());
    }

    @Override
    public String toString() {
        return "fetch of chunk " + chunkIndex + " [" + chunkOff + ", " + (chunkOff + chunkLen) + ") of "
                + chunker.upstream.name();
    }
}
