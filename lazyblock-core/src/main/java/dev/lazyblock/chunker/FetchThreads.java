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
 */
final class FetchThreads {
    private final ExecutorService threads;
    private final Semaphore slots;
    private final ConcurrentLinkedQueue<Runnable> urgent = new ConcurrentLinkedQueue<>();
    private final ConcurrentLinkedQueue<Runnable> waiting = new ConcurrentLinkedQueue<>();
    private final LongAdder completed = new LongAdder();
    private final int bound;

    FetchThreads(int bound, String namePrefix) {
        if (bound < 1) {
            throw new IllegalArgumentException("fetch threads must be at least 1, got " + bound);
        }
        this.bound = bound;
        this.slots = new Semaphore(bound);
        this.threads = Executors.newCachedThreadPool(Thread.ofPlatform().daemon().name(namePrefix, 0).factory());
    }

    /** Runs read-ahead work: after every queued demand fetch. */
    void execute(Runnable task) {
        waiting.add(task);
        drain();
    }

    /** Runs a demand fetch: before any queued read-ahead. */
    void executeUrgent(Runnable task) {
        urgent.add(task);
        drain();
    }

    private Runnable next() {
        Runnable r = urgent.poll();
        return r != null ? r : waiting.poll();
    }

    private void drain() {
        while ((!urgent.isEmpty() || !waiting.isEmpty()) && slots.tryAcquire()) {
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

    int bound() {
        return bound;
    }

    /** Fetches waiting for a thread. */
    int waiting() {
        return urgent.size() + waiting.size();
    }

    /** Fetches running now. */
    int running() {
        return bound - slots.availablePermits();
    }

    /** Fetches ended since the process started. */
    long completed() {
        return completed.sum();
    }

    @Override
    public String toString() {
        return "FetchThreads[" + running() + " of " + bound + " running, " + waiting() + " waiting, " + completed()
                + " done]";
    }
}
