package dev.lazyblock.chunker;

import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.LongAdder;

/**
 * The threads fetches run on: reused while busy (a cached pool: an idle thread takes the next
 * fetch, one goes after 60 s idle), and never more than {@code bound} at once. A store that stalls
 * under a storm of misses would otherwise hold one thread per miss until its client's timeouts.
 * Past the bound, fetches wait in arrival order; their deadlines run while they wait.
 *
 * <p>No fetch is left waiting while a slot is free: {@link #execute} publishes its task and then
 * tries for a slot; a thread out of work gives its slot back and then looks for waiting tasks.
 * The queues and the semaphore are each linearizable, so of two such racing threads at least one
 * sees the other's step: either the submitter gets the freed slot or the other finds the task.
 *
 * <p>Two lanes: a demand fetch (the bytes a reader is blocked on) waits in {@code urgent}, which
 * every free thread empties before it takes from {@code waiting} (the rest of a chunk, read
 * ahead). So when the bound is reached, a reader's miss goes ahead of every queued read-ahead,
 * its own sandbox's or another's; running work is never preempted. The argument above holds for
 * both lanes: a submitter publishes to one, a thread out of work looks in both.
 *
 * <p>A reader may run its own demand fetch on its own thread ({@link #tryCallerSlot}): it then
 * holds a slot like a fetch thread, so the bound counts it.
 *
 * <p>Chunkers share the process's pool ({@code -Dlazyblock.fetchThreads}, 256) unless their
 * {@link ChunkerOptions#fetchThreads()} name one of their own: a host daemon bounds its fetches
 * with its own, closed with it. After {@link #close()} a new fetch fails at once.
 */
public final class FetchThreads implements AutoCloseable {
    private final ExecutorService threads;
    private final Semaphore slots;
    private final ConcurrentLinkedQueue<Runnable> urgent = new ConcurrentLinkedQueue<>();
    private final ConcurrentLinkedQueue<Runnable> waiting = new ConcurrentLinkedQueue<>();
    private final LongAdder completed = new LongAdder();
    /**
     * Traces lent to virtual readers running their own fetch: at most one per slot is out at once,
     * so at most {@code bound} are ever made, each staging up to the largest request it ran (a
     * chunk at most), as a fetch thread's own does.
     */
    private final ConcurrentLinkedQueue<FetchTrace> traces = new ConcurrentLinkedQueue<>();
    private final int bound;
    private volatile boolean closed;

    /**
     * @param bound      fetches running at once, at least 1
     * @param namePrefix the threads' names, numbered
     */
    public FetchThreads(int bound, String namePrefix) {
        if (bound < 1) {
            throw new IllegalArgumentException("fetch threads must be at least 1, got " + bound);
        }
        this.bound = bound;
        this.slots = new Semaphore(bound);
        this.threads = Executors.newCachedThreadPool(Thread.ofPlatform().daemon().name(namePrefix, 0).factory());
    }

    /** Runs read-ahead work: after every queued demand fetch. */
    void execute(Runnable task) {
        checkOpen();
        waiting.add(task);
        drain();
    }

    /** Runs a demand fetch: before any queued read-ahead. */
    void executeUrgent(Runnable task) {
        checkOpen();
        urgent.add(task);
        drain();
    }

    /**
     * A slot for a demand fetch its reader runs on its own thread, if one is free now and no
     * demand fetch is queued for one (those go first); the caller gives it back with
     * {@link #releaseCallerSlot}. The bound then counts that reader like a fetch thread.
     */
    boolean tryCallerSlot() {
        return !closed && urgent.isEmpty() && slots.tryAcquire();
    }

    /** A trace for a virtual reader's own fetch, while it holds a {@link #tryCallerSlot} slot. */
    FetchTrace lendTrace() {
        FetchTrace t = traces.poll();
        return t != null ? t : new FetchTrace();
    }

    void takeBackTrace(FetchTrace t) {
        traces.offer(t);
    }

    /** Gives back a {@link #tryCallerSlot} slot, and hands it on to waiting work (see the class comment). */
    void releaseCallerSlot() {
        completed.increment();
        slots.release();
        drain();
    }

    private Runnable next() {
        Runnable r = urgent.poll();
        return r != null ? r : waiting.poll();
    }

    private void drain() {
        // Closed: the threads are shut down; what is queued is failed by its deadline.
        while (!closed && (!urgent.isEmpty() || !waiting.isEmpty()) && slots.tryAcquire()) {
            Runnable next = next();
            if (next == null) {
                slots.release(); // another drain took it; look again
                continue;
            }
            threads.execute(() -> {
                // Keeps its slot and its thread for whatever waits next, then gives the slot back
                // and looks once more (see the class comment).
                for (Runnable r = next; r != null; r = next()) {
                    try {
                        r.run();
                    } catch (RuntimeException | Error e) {
                        Thread t = Thread.currentThread();
                        t.getUncaughtExceptionHandler().uncaughtException(t, e);
                    } finally {
                        completed.increment();
                    }
                }
                slots.release();
                drain();
            });
        }
    }

    private void checkOpen() {
        if (closed) {
            throw new java.util.concurrent.RejectedExecutionException(this + " is closed: no more fetches");
        }
    }

    public int bound() {
        return bound;
    }

    /** Fetches waiting for a thread. */
    public int waiting() {
        return urgent.size() + waiting.size();
    }

    /** Fetches running now. */
    public int running() {
        return bound - slots.availablePermits();
    }

    /** Fetches ended since the pool was made. */
    public long completed() {
        return completed.sum();
    }

    /**
     * Refuses new fetches; running ones finish, and the threads end as they run out of work.
     * Fetches still queued are failed by their deadlines. Close after the chunkers using it.
     */
    @Override
    public void close() {
        closed = true;
        threads.shutdown();
    }

    @Override
    public String toString() {
        return "FetchThreads[" + running() + " of " + bound + " running, " + waiting() + " waiting, " + completed()
                + " done]";
    }
}
