package dev.lazyblock.chunker;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.util.concurrent.locks.LockSupport;

/**
 * One reader waiting for part of one chunk: the range it needs, in its session's units (bytes
 * for progress sessions, blocks for block sessions), and how to wake it.
 */
final class Waiter {
    private static final Object RELEASED = new Object();

    final long from;
    final long to;
    final Session session;
    private final Thread thread = Thread.currentThread();
    /**
     * {@code null} while waiting, then {@link #RELEASED} or the fetch's error. Written once, by
     * the session under its lock; volatile so the parked reader sees it (and, through the write's
     * release, the bytes the fetch stored before releasing it).
     */
    private volatile Object outcome;
    /**
     * When {@link #release} was called ({@link System#nanoTime()}), 0 before: for {@link MissEvent}.
     * Written before {@link #outcome}'s volatile write and read after its volatile read.
     */
    long releasedAt;
    /**
     * Set by the session in {@code join} (under its lock) when this reader's own blocks get a
     * request of their own, which this reader then launches from {@code kick}, outside the map's
     * lock. Written and read by the reader's thread only.
     */
    boolean fetchesOwn;
    /**
     * When this reader's own request went out from its own thread ({@link Session#runOnCaller}),
     * 0 if it did not: for {@link MissEvent}, whose hand-over then ends there. Reader's thread only.
     */
    long ownRequestAt;

    Waiter(Session session, long from, long to) {
        this.session = session;
        this.from = from;
        this.to = to;
    }

    void release() {
        releasedAt = System.nanoTime();
        outcome = RELEASED;
        LockSupport.unpark(thread);
    }

    void fail(Throwable error) {
        outcome = error;
        LockSupport.unpark(thread);
    }

    /** Parks until released, failed, interrupted, or the deadline passes. */
    void await(long deadlineNanos) throws IOException {
        while (true) {
            Object o = outcome;
            if (o == RELEASED) {
                return;
            }
            if (o instanceof Throwable t) {
                throw session.errorForReader(t);
            }
            long left = deadlineNanos - System.nanoTime();
            if (left <= 0) {
                session.cancel(this);
                if (outcome != null) {
                    continue; // released or failed while we gave up: take that outcome
                }
                throw session.timeoutForReader();
            }
            LockSupport.parkNanos(this, left);
            if (Thread.interrupted()) {
                session.cancel(this); // the fetch goes on for the other readers
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted while waiting for " + session);
            }
        }
    }
}
