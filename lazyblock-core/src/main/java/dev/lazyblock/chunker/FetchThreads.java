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
 * The queue and the semaphore are each linearizable, so of two such racing threads at least one
 * sees the other's step: either the submitter gets the freed slot or the other finds the task.
 */
final class FetchThreads {
    private final ExecutorService threads;
    private final Semaphore slots;
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

    void execute(Runnable task) {
        waiting.add(task);
        drain();
    }

    private void drain() {
        while (!waiting.isEmpty() && slots.tryAcquire()) {
            Runnable next = waiting.poll();
            if (next == null) {
                slots.release(); // another drain took it; look again
                continue;
            }
            threads.execute(() -> {
                // Keeps its slot and its thread for whatever waits next, then gives the slot back
                // and looks once more (see the class comment).
                for (Runnable r = next; r != null; r = waiting.poll()) {
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
        return waiting.size();
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
