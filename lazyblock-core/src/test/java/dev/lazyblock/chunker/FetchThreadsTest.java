package dev.lazyblock.chunker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.testing.Await;
import dev.lazyblock.testing.Seeds;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.Test;

/** The bounded fetch threads under many submitters: every task once, never more than the bound at once. */
class FetchThreadsTest {

    @Test
    void manySubmittersRunEveryTaskOnceAndNeverMoreThanTheBoundAtOnce() throws Exception {
        for (long seed : Seeds.seeds(3).toArray()) {
            Seeds.replayable(seed, () -> stress(seed));
        }
    }

    private static void stress(long seed) throws Exception {
        SplittableRandom sizes = new SplittableRandom(seed);
        int bound = 1 + sizes.nextInt(6);
        int reserve = sizes.nextInt(Math.min(bound, 3));
        FetchThreads pool = new FetchThreads(bound, reserve, "fetch-threads-test-", false);
        AtomicInteger readAhead = new AtomicInteger();
        AtomicInteger mostReadAhead = new AtomicInteger();
        int submitters = 16;
        int each = 400;
        AtomicIntegerArray ran = new AtomicIntegerArray(submitters * each);
        AtomicInteger running = new AtomicInteger();
        AtomicInteger most = new AtomicInteger();
        CountDownLatch done = new CountDownLatch(submitters * each);
        List<Thread> threads = new ArrayList<>();
        for (int s = 0; s < submitters; s++) {
            int submitter = s;
            threads.add(Thread.ofPlatform().start(() -> {
                SplittableRandom rnd = new SplittableRandom(seed * 31 + submitter);
                for (int i = 0; i < each; i++) {
                    int id = submitter * each + i;
                    int work = rnd.nextInt(4);
                    boolean fails = rnd.nextInt(1000) == 0;
                    boolean demand = rnd.nextBoolean();
                    Runnable task = () -> {
                        int now = running.incrementAndGet();
                        most.accumulateAndGet(now, Math::max);
                        if (!demand) {
                            mostReadAhead.accumulateAndGet(readAhead.incrementAndGet(), Math::max);
                        }
                        try {
                            switch (work) {
                                case 0 -> Thread.yield();
                                case 1 -> LockSupport.parkNanos(20_000);
                                default -> { }
                            }
                            ran.incrementAndGet(id);
                            if (fails) {
                                throw new IllegalStateException("a task that throws keeps nobody waiting");
                            }
                        } finally {
                            if (!demand) {
                                readAhead.decrementAndGet();
                            }
                            running.decrementAndGet();
                            done.countDown();
                        }
                    };
                    if (demand) {
                        pool.executeUrgent(task);
                    } else {
                        pool.execute(task);
                    }
                    if (rnd.nextInt(8) == 0) {
                        Thread.yield();
                    }
                }
            }));
        }
        for (Thread t : threads) {
            t.join();
        }
        assertTrue(done.await(60, TimeUnit.SECONDS), "tasks left waiting: " + pool);
        for (int id = 0; id < ran.length(); id++) {
            assertEquals(1, ran.get(id), "task " + id + " ran");
        }
        assertTrue(most.get() <= bound, most.get() + " tasks ran at once, the bound is " + bound);
        assertTrue(mostReadAhead.get() <= bound - reserve, mostReadAhead.get() + " read-ahead tasks ran at once, "
                + reserve + " of the bound of " + bound + " are for demand");
        Await.until(() -> pool.running() == 0 && pool.waiting() == 0, Duration.ofSeconds(30), pool::toString);
        assertEquals(submitters * each, pool.completed());
    }

    @Test
    void aDemandFetchGoesAheadOfQueuedReadAhead() throws Exception {
        FetchThreads pool = new FetchThreads(1, "fetch-threads-order-");
        CountDownLatch busy = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        pool.execute(() -> {
            busy.countDown();
            try {
                release.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        assertTrue(busy.await(30, TimeUnit.SECONDS));
        List<String> order = java.util.Collections.synchronizedList(new ArrayList<>());
        CountDownLatch all = new CountDownLatch(5);
        for (int i = 0; i < 3; i++) {
            int n = i;
            pool.execute(() -> {
                order.add("ahead" + n);
                all.countDown();
            });
        }
        pool.executeUrgent(() -> {
            order.add("demand0");
            all.countDown();
        });
        pool.executeUrgent(() -> {
            order.add("demand1");
            all.countDown();
        });
        release.countDown();
        assertTrue(all.await(30, TimeUnit.SECONDS), pool.toString());
        assertEquals(List.of("demand0", "demand1", "ahead0", "ahead1", "ahead2"), order,
                "demand fetches in arrival order, then read-ahead in arrival order");
    }

    @Test
    void aDemandFetchStartsFromTheReserveWhileReadAheadHoldsEverySlot() throws Exception {
        FetchThreads pool = new FetchThreads(3, 1, "fetch-threads-reserve-", false);
        CountDownLatch holding = new CountDownLatch(2);
        CountDownLatch release = new CountDownLatch(1);
        for (int i = 0; i < 2; i++) {
            pool.execute(() -> {
                holding.countDown();
                try {
                    release.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
        }
        assertTrue(holding.await(30, TimeUnit.SECONDS), pool.toString());
        CountDownLatch third = new CountDownLatch(1);
        pool.execute(third::countDown); // read-ahead: waits for a slot, never takes the reserve
        CountDownLatch demand = new CountDownLatch(1);
        pool.executeUrgent(demand::countDown);
        assertTrue(demand.await(30, TimeUnit.SECONDS), "the demand fetch waited for read-ahead: " + pool);
        assertEquals(1, third.getCount(), "read-ahead ran on the demand reserve: " + pool);
        release.countDown();
        assertTrue(third.await(30, TimeUnit.SECONDS), pool.toString());
        Await.until(() -> pool.running() == 0 && pool.waiting() == 0, Duration.ofSeconds(30), pool::toString);
        pool.close();
    }

    @Test
    void aBoundBelowOneIsRefused() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new FetchThreads(0, "x-"));
        assertEquals("fetch threads must be at least 1, got 0", e.getMessage());
        IllegalArgumentException all = assertThrows(IllegalArgumentException.class,
                () -> new FetchThreads(4, 4, "x-", false));
        assertEquals("the demand reserve must be 0 to 3 of 4 fetch threads, got 4", all.getMessage());
    }
}
