package dev.lazyblock.chunker;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * What a fetch thread keeps from one fetch to the next: the native memory its fetched bytes
 * land in before one pwrite puts them in the cache, and the timestamps of the fetch it is
 * running, which become a {@link FetchEvent} when a recording wants one.
 *
 * <p>Confined to its thread (a thread-local): no field is shared, so none needs ordering. Held
 * per thread rather than per fetch so the read path allocates nothing for it. A virtual reader
 * sending its own request (one thread per request, so a thread-local would be made anew each
 * time) borrows one from its fetch pool instead and passes it along explicitly; the pool's queue
 * orders one borrower's writes before the next one's reads.
 */
final class FetchTrace {
    private static final ThreadLocal<FetchTrace> CURRENT = ThreadLocal.withInitial(FetchTrace::new);

    /** Grows to the largest whole-range request the thread has made (a chunk at most). */
    private MemorySegment stage;
    boolean demand;
    /** {@link System#nanoTime()} stamps of the running fetch, 0 where a stage did not happen. */
    long queuedAt;
    long requestedAt;
    long firstByteAt;
    long lastByteAt;
    long writtenAt;

    static FetchTrace current() {
        return CURRENT.get();
    }

    /** A fetch thread picked up work handed over at {@code queuedAt}. */
    void start(long queuedAt, boolean demand) {
        this.queuedAt = queuedAt;
        this.demand = demand;
        this.requestedAt = 0;
        this.firstByteAt = 0;
        this.lastByteAt = 0;
        this.writtenAt = 0;
    }

    MemorySegment staging(long len) {
        if (stage == null || stage.byteSize() < len) {
            stage = Arena.ofAuto().allocate(len, 4096);
        }
        return stage.asSlice(0, len);
    }

    /**
     * Commits the fetch of {@code [off, off+len)} as a {@link FetchEvent} if a recording enabled
     * it; its readers were released just now. When none is, the event object is never published
     * and the JIT removes it.
     */
    void commit(String upstream, String kind, long off, long len) {
        FetchEvent e = new FetchEvent();
        if (!e.isEnabled() || requestedAt == 0) {
            return;
        }
        long now = System.nanoTime();
        long written = writtenAt != 0 ? writtenAt : now;
        e.upstream = upstream;
        e.kind = kind;
        e.demand = demand;
        e.offset = off;
        e.length = len;
        e.queued = requestedAt - queuedAt;
        e.firstByte = firstByteAt - requestedAt;
        e.transfer = lastByteAt - firstByteAt;
        e.write = written - lastByteAt;
        e.release = now - written;
        e.commit();
    }
}
