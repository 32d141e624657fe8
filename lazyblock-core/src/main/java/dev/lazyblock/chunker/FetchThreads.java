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
 * holds a slot like a fetch thread, so the bound counts it. A pool made with
 * {@code virtualReadersHandOver} keeps that to platform readers.
 *
 * <p>A pool may keep a <em>demand reserve</em>: threads of the bound that only demand fetches
 * take, so read-ahead never holds them all. Each permit, a slot or the reserve's, is released and
 * then followed by a look at both lanes, so the argument above holds for each.
 *
 * <p>Chunkers share the process's pool ({@code -Dlazyblock.fetchThreads}, 256) unless their
 * {@link ChunkerOptions#fetchThreads()} name one of their own: a host daemon bounds its fetches
 * with its own, closed with it. After {@link #close()} a new fetch fails at once.
 */
public final class FetchThreads implements AutoCloseable {
    private final ExecutorService threads;
    private final Semaphore slots;
    /** The bound's permits for demand fetches alone; {@link #slots} has the rest (see the four-argument constructor). */
    private final Semaphore reserve;
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
    /** Virtual readers hand their demand fetch to a fetch thread instead of running it (see {@link #tryCallerSlot}). */
    private final boolean virtualReadersHandOver;
    private volatile boolean closed;

    /**
     * @param bound      fetches running at once, at least 1
     * @param namePrefix the threads' names, numbered
     */
    public FetchThreads(int bound, String namePrefix) {
        this(bound, 0, namePrefix, false);
    }

    /**
     * @param demandReserve          of the {@code bound} threads, how many only demand fetches may
     *                               take: when read-ahead holds every other one (long streams of
     *                               many chunks), a reader's miss still starts at once instead of
     *                               waiting for a stream to end; 0 to {@code bound - 1}
     * @param virtualReadersHandOver a virtual reader's demand fetch runs on one of these threads,
     *                               not on the reader: for a host whose cores are saturated (a
     *                               daemon of many sandboxes), see {@link #tryCallerSlot}
     */
    public FetchThreads(int bound, int demandReserve, String namePrefix, boolean virtualReadersHandOver) {
        if (bound < 1) {
            throw new IllegalArgumentException("fetch threads must be at least 1, got " + bound);
        }
        if (demandReserve < 0 || demandReserve >= bound) {
            throw new IllegalArgumentException("the demand reserve must be 0 to " + (bound - 1) + " of " + bound
                    + " fetch threads, got " + demandReserve);
        }
        this.virtualReadersHandOver = virtualReadersHandOver;
        this.bound = bound;
        this.slots = new Semaphore(bound - demandReserve);
        this.reserve = new Semaphore(demandReserve);
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
        // A virtual reader waiting in the store's call is woken by the JDK's timer or poller thread
        // and then queued for one of the few carriers: on saturated cores that measured 40-170 ms
        // late where a fetch thread, woken by the kernel, was on time (the daemon's bench, 2 cores,
        // 50 sandboxes), and the miss tail followed. Handed over, its wait ends with one unpark.
        if (virtualReadersHandOver && Thread.currentThread().isVirtual()) {
            return false;
        }
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
        while (!closed) {
            // A demand fetch takes a slot, else one of the reserve; read-ahead only a slot.
            Semaphore held = null;
            if (!urgent.isEmpty()) {
                held = slots.tryAcquire() ? slots : reserve.tryAcquire() ? reserve : null;
            }
            if (held == null && !waiting.isEmpty() && slots.tryAcquire()) {
                held = slots;
            }
            if (held == null) {
                return;
            }
            boolean demandOnly = held == reserve;
            Runnable next = demandOnly ? urgent.poll() : next();
            if (next == null) {
                held.release(); // another drain took it; look again
                continue;
            }
            Semaphore permit = held;
            threads.execute(() -> {
                // Keeps its permit and its thread for whatever waits next (a reserve permit: demand
                // only), then gives the permit back and looks once more (see the class comment).
                for (Runnable r = next; r != null; r = demandOnly ? urgent.poll() : next()) {
                    try {
                        r.run();
                    } catch (RuntimeException | Error e) {
                        Thread t = Thread.currentThread();
                        t.getUncaughtExceptionHandler().uncaughtException(t, e);
                    } finally {
                        completed.increment();
                    }
                }
                permit.release();
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

    /** Fetches running now (the demand reserve's included). */
    public int running() {
        return bound - slots.availablePermits() - reserve.availablePermits();
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
