package dev.lazyblock.chunker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.lazyblock.cache.CacheClosedException;
import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.testing.Await;
import dev.lazyblock.upstream.UpstreamException;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A request-first reader sends its own small request from its own thread when the store's
 * client honours interrupts: the session's deadline, failure and close still end that call (by
 * interrupting the reader, whose interrupt is then cleared), the reader's own caller may still
 * interrupt it (a fetch thread then sends the request for the other readers), and the fetch
 * bound counts the reader, platform or virtual. Stores that do not honour interrupts hand the
 * request to a fetch thread as before.
 */
class ReaderThreadFetchTest {
    private static final int CHUNK = 1 << 20;
    private static final int BLOCK = 4096;
    /** Mid-chunk, so both streams are longer than a block and only the reader's request is one. */
    private static final long OFF = CHUNK / 2;

    @TempDir
    Path dir;

    private final byte[] image = image(4);
    private int caches;

    private static byte[] image(int chunks) {
        byte[] b = new byte[chunks * CHUNK];
        new Random(23).nextBytes(b);
        return b;
    }

    private Chunker chunker(TestUpstream up, ChunkerOptions options) throws IOException {
        return ChunkerKind.REQUEST_FIRST.create(up, SparseCache.create(dir.resolve("c" + caches++), up.size()),
                options.withChunkSize(CHUNK));
    }

    private byte[] expected(long off, int len) {
        return Arrays.copyOfRange(image, (int) off, (int) off + len);
    }

    private static byte[] read(Chunker c, long off) throws IOException {
        byte[] got = new byte[BLOCK];
        c.readAt(got, 0, BLOCK, off);
        return got;
    }

    /** Where the request for exactly the block at {@link #OFF} was sent from. */
    private static AtomicReference<Thread> senderOfTheReadersRequest(TestUpstream up) {
        AtomicReference<Thread> sender = new AtomicReference<>();
        up.onRequest = (o, len) -> {
            if (o == OFF && len == BLOCK) {
                sender.compareAndSet(null, Thread.currentThread());
            }
        };
        return sender;
    }

    /** Runs {@code task} on a new platform thread; the future holds its result or error. */
    private static <T> CompletableFuture<T> onPlatformThread(String name, java.util.concurrent.Callable<T> task,
                                                            AtomicReference<Thread> thread) {
        CompletableFuture<T> f = new CompletableFuture<>();
        Thread t = Thread.ofPlatform().daemon().name(name).unstarted(() -> {
            try {
                f.complete(task.call());
            } catch (Throwable e) {
                f.completeExceptionally(e);
            }
        });
        if (thread != null) {
            thread.set(t);
        }
        t.start();
        return f;
    }

    @Test
    void theReadersOwnRequestGoesOutOnItsThreadWhenTheStoreHonoursInterrupts() throws Exception {
        TestUpstream up = new TestUpstream(image);
        AtomicReference<Thread> sender = senderOfTheReadersRequest(up);
        try (Chunker c = chunker(up, ChunkerOptions.DEFAULTS)) {
            assertArrayEquals(expected(OFF, BLOCK), read(c, OFF));
        }
        assertSame(Thread.currentThread(), sender.get(), "sent by the reader itself");
    }

    @Test
    void aStoreThatIgnoresInterruptsGetsTheReadersRequestFromAFetchThread() throws Exception {
        TestUpstream up = new TestUpstream(image);
        up.honoursInterrupts = false;
        AtomicReference<Thread> sender = senderOfTheReadersRequest(up);
        try (Chunker c = chunker(up, ChunkerOptions.DEFAULTS)) {
            assertArrayEquals(expected(OFF, BLOCK), read(c, OFF));
        }
        assertTrue(sender.get().getName().startsWith("lazyblock-fetch-"), sender.get().getName());
    }

    @Test
    void aVirtualReaderSendsItsOwnRequestAndItsDeadlineStillEndsIt() throws Exception {
        TestUpstream up = new TestUpstream(image);
        AtomicReference<Thread> sender = senderOfTheReadersRequest(up);
        try (Chunker c = chunker(up, ChunkerOptions.DEFAULTS.withFetchTimeout(Duration.ofMillis(300)))) {
            CompletableFuture<byte[]> got = new CompletableFuture<>();
            Thread reader = Thread.ofVirtual().start(() -> {
                try {
                    got.complete(read(c, OFF));
                } catch (Throwable e) {
                    got.completeExceptionally(e);
                }
            });
            assertArrayEquals(expected(OFF, BLOCK), got.get(30, TimeUnit.SECONDS));
            assertSame(reader, sender.get(), "sent by the virtual reader itself");

            // A stalled one on a virtual reader ends at the deadline, its interrupt cleared.
            up.stall = true;
            sender.set(null);
            long off = 2L * CHUNK + OFF;
            up.onRequest = (o, len) -> {
                if (o == off && len == BLOCK) {
                    sender.compareAndSet(null, Thread.currentThread());
                }
            };
            CompletableFuture<Boolean> interruptedAfter = new CompletableFuture<>();
            Thread stalled = Thread.ofVirtual().start(() -> {
                try {
                    IOException e = assertThrows(IOException.class, () -> read(c, off));
                    assertInstanceOf(FetchTimeoutException.class, e, e.toString());
                    interruptedAfter.complete(Thread.currentThread().isInterrupted());
                } catch (Throwable e) {
                    interruptedAfter.completeExceptionally(e);
                }
            });
            assertFalse(interruptedAfter.get(10, TimeUnit.SECONDS), "the session's interrupt is not left to the caller");
            assertSame(stalled, sender.get(), "the stalled request was the virtual reader's own");
        } finally {
            up.unstall();
        }
    }

    @Test
    void aPoolThatHandsOverVirtualReadersSendsTheirRequestFromAFetchThreadAndTheirPlatformPeersOwn()
            throws Exception {
        TestUpstream up = new TestUpstream(image);
        AtomicReference<Thread> sender = senderOfTheReadersRequest(up);
        try (FetchThreads pool = new FetchThreads(8, 0, "handing-fetch-", true);
             Chunker c = chunker(up, ChunkerOptions.DEFAULTS.withFetchThreads(pool))) {
            CompletableFuture<byte[]> got = new CompletableFuture<>();
            Thread.ofVirtual().start(() -> {
                try {
                    got.complete(read(c, OFF));
                } catch (Throwable e) {
                    got.completeExceptionally(e);
                }
            });
            assertArrayEquals(expected(OFF, BLOCK), got.get(30, TimeUnit.SECONDS));
            assertTrue(sender.get().getName().startsWith("handing-fetch-"), "a virtual reader's request went out "
                    + "from " + sender.get());
            sender.set(null);
            long off = CHUNK + OFF;
            up.onRequest = (o, len) -> {
                if (o == off && len == BLOCK) {
                    sender.compareAndSet(null, Thread.currentThread());
                }
            };
            assertArrayEquals(expected(off, BLOCK), read(c, off));
            assertSame(Thread.currentThread(), sender.get(), "a platform reader still sends its own");
        }
    }

    @Test
    void aStalledRequestOnTheReadersThreadEndsAtTheDeadlineAndLeavesNoInterrupt() throws Exception {
        TestUpstream up = new TestUpstream(image);
        up.stall = true; // for 60 s unless interrupted: far past the 10 s this test waits
        AtomicReference<Thread> sender = senderOfTheReadersRequest(up);
        ChunkerOptions opts = ChunkerOptions.DEFAULTS.withFetchTimeout(Duration.ofMillis(300));
        try (Chunker c = chunker(up, opts)) {
            CompletableFuture<Boolean> interruptedAfter = onPlatformThread("reader", () -> {
                IOException e = assertThrows(IOException.class, () -> read(c, OFF));
                assertInstanceOf(FetchTimeoutException.class, e, e.toString());
                return Thread.currentThread().isInterrupted();
            }, null);
            assertFalse(interruptedAfter.get(10, TimeUnit.SECONDS), "the session's interrupt is not left to the caller");
            assertEquals("reader", sender.get().getName(), "the stalled request was the reader's own");
            up.unstall();
            assertArrayEquals(expected(OFF, BLOCK), read(c, OFF), "the next read fetches again and succeeds");
        } finally {
            up.unstall();
        }
    }

    @Test
    void closingTheChunkerReleasesAReaderBlockedInItsOwnRequest() throws Exception {
        TestUpstream up = new TestUpstream(image);
        up.stall = true;
        AtomicReference<Thread> sender = senderOfTheReadersRequest(up);
        try {
            Chunker c = chunker(up, ChunkerOptions.DEFAULTS);
            CompletableFuture<Boolean> interruptedAfter = onPlatformThread("reader", () -> {
                assertThrows(CacheClosedException.class, () -> read(c, OFF));
                return Thread.currentThread().isInterrupted();
            }, null);
            Await.until(() -> sender.get() != null, Duration.ofSeconds(10), () -> "the reader never sent its request");
            c.close();
            assertFalse(interruptedAfter.get(10, TimeUnit.SECONDS), "released by close, its interrupt cleared");
        } finally {
            up.unstall();
        }
    }

    @Test
    void aReaderInterruptedByItsCallerHandsItsRequestToAFetchThreadForTheOthers() throws Exception {
        TestUpstream up = new TestUpstream(image);
        up.stall = true;
        List<Thread> senders = new java.util.concurrent.CopyOnWriteArrayList<>();
        up.onRequest = (o, len) -> {
            if (o == OFF && len == BLOCK) {
                senders.add(Thread.currentThread());
            }
        };
        try (Chunker c = chunker(up, ChunkerOptions.DEFAULTS)) {
            AtomicReference<Thread> first = new AtomicReference<>();
            CompletableFuture<byte[]> interrupted = onPlatformThread("first", () -> read(c, OFF), first);
            Await.until(() -> senders.size() == 1, Duration.ofSeconds(10), () -> "the first reader never sent its request");
            // A second reader of the same block waits on the first one's request: it asks for none of its own.
            CompletableFuture<byte[]> second = onPlatformThread("second", () -> read(c, OFF + 100), null);
            Await.until(() -> ((AbstractChunker) c).sessions.get(0L).waiters.size() == 2, Duration.ofSeconds(10),
                    () -> "the second reader never joined");
            first.get().interrupt();
            ExecutionException e = assertThrows(ExecutionException.class, () -> interrupted.get(10, TimeUnit.SECONDS));
            assertInstanceOf(InterruptedIOException.class, e.getCause(), e.getCause().toString());
            Await.until(() -> senders.size() == 2, Duration.ofSeconds(10), () -> "nobody sent the request again");
            assertTrue(senders.get(1).getName().startsWith("lazyblock-fetch-"), senders.get(1).getName());
            up.unstall();
            byte[] got = second.get(30, TimeUnit.SECONDS);
            assertArrayEquals(expected(OFF + 100, BLOCK), got, "the other reader is served");
        } finally {
            up.unstall();
        }
    }

    @Test
    void theFetchBoundCountsAReaderFetchingOnItsOwnThread() throws Exception {
        TestUpstream up = new TestUpstream(image);
        up.stall = true;
        AtomicReference<Thread> sender = senderOfTheReadersRequest(up);
        try (FetchThreads pool = new FetchThreads(1, "bounded-fetch-");
             Chunker c = chunker(up, ChunkerOptions.DEFAULTS.withFetchThreads(pool))) {
            CompletableFuture<byte[]> reader = onPlatformThread("reader", () -> read(c, OFF), null);
            Await.until(() -> sender.get() != null, Duration.ofSeconds(10), () -> "the reader never sent its request");
            assertEquals("reader", sender.get().getName());
            assertEquals(1, pool.running(), "the reader holds the pool's one slot");
            assertEquals(1, pool.waiting(), "so the chunk's streams wait for it: " + pool);
            up.unstall();
            assertArrayEquals(expected(OFF, BLOCK), reader.get(30, TimeUnit.SECONDS));
            Await.until(() -> c.cache().isCached(0, CHUNK), Duration.ofSeconds(30), () -> "the chunk never completed: " + pool);
            Await.until(() -> pool.running() == 0, Duration.ofSeconds(10), () -> "the slots were not given back: " + pool);
        } finally {
            up.unstall();
        }
    }

    /**
     * Readers interrupted at random by a chaos thread while the store pauses (interruptibly)
     * on every request: each read returns the right bytes or an InterruptedIOException, never
     * anything else, and what the interrupted readers asked for is still fetched for the rest.
     */
    @Test
    void readersInterruptedAtRandomGetTheirBytesOrAnInterruptAndNothingElse() throws Exception {
        TestUpstream up = new TestUpstream(image);
        up.maxDelayMicros = 1500;
        int threads = 8;
        AtomicInteger interruptsSeen = new AtomicInteger();
        ConcurrentLinkedQueue<Throwable> wrong = new ConcurrentLinkedQueue<>();
        for (int round = 0; round < 4; round++) {
            try (Chunker c = chunker(up, ChunkerOptions.DEFAULTS)) {
                AtomicBoolean done = new AtomicBoolean();
                List<Thread> readers = startReaders(c, round, threads, 40, InterruptedIOException.class, interruptsSeen,
                        wrong, true);
                Thread chaos = Thread.ofPlatform().daemon().start(() -> {
                    SplittableRandom rnd = new SplittableRandom(7);
                    while (!done.get()) {
                        LockSupport.parkNanos(rnd.nextLong(200_000, 2_000_000));
                        readers.get(rnd.nextInt(threads)).interrupt();
                    }
                });
                joinAll(readers);
                done.set(true);
                chaos.join(10_000);
                for (int off = 0; off < image.length; off += CHUNK / 4) {
                    assertArrayEquals(expected(off, BLOCK), read(c, off), "after the storm, at " + off);
                }
            }
        }
        throwIfAny(wrong, "reads failed other than by their interrupt");
        assertTrue(interruptsSeen.get() > 0, "the chaos thread interrupted no read: the test tested nothing");
    }

    /**
     * Requests failing at random while several readers run their own requests in one session:
     * the session's failure interrupts the others' calls, and every reader then has the
     * session's error (not an interrupt) and no interrupt left on its thread.
     */
    @Test
    void aFailedSessionLeavesNoInterruptOnTheReadersItStopped() throws Exception {
        TestUpstream up = new TestUpstream(image);
        up.maxDelayMicros = 800;
        up.failEvery = 5;
        int threads = 8;
        AtomicInteger failures = new AtomicInteger();
        ConcurrentLinkedQueue<Throwable> wrong = new ConcurrentLinkedQueue<>();
        for (int round = 0; round < 6; round++) {
            try (Chunker c = chunker(up, ChunkerOptions.DEFAULTS)) {
                joinAll(startReaders(c, round, threads, 30, UpstreamException.class, failures, wrong, false));
            }
        }
        throwIfAny(wrong, "reads went wrong");
        if (failures.get() == 0) {
            fail("no read failed: the test tested nothing");
        }
    }

    /**
     * Starts {@code threads} platform readers of {@code reads} random blocks each: a read gets the
     * right bytes or an {@code expected} error (counted in {@code seen}); anything else goes to
     * {@code wrong}. {@code interruptsExpected}: someone interrupts them, so each clears its flag
     * after a read; otherwise a flag left set after a read is itself wrong.
     */
    private List<Thread> startReaders(Chunker c, int round, int threads, int reads, Class<? extends IOException> expected,
                                      AtomicInteger seen, ConcurrentLinkedQueue<Throwable> wrong,
                                      boolean interruptsExpected) {
        List<Thread> readers = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            long seed = round * 100L + t;
            readers.add(Thread.ofPlatform().daemon().name("reader-" + t).start(() -> {
                SplittableRandom rnd = new SplittableRandom(seed);
                for (int i = 0; i < reads; i++) {
                    long off = rnd.nextLong(image.length - BLOCK);
                    try {
                        if (!Arrays.equals(expected(off, BLOCK), read(c, off))) {
                            wrong.add(new AssertionError("wrong bytes at " + off));
                        }
                    } catch (Throwable e) {
                        if (expected.isInstance(e)) {
                            seen.incrementAndGet();
                        } else {
                            wrong.add(e);
                        }
                    }
                    if (Thread.interrupted() && !interruptsExpected) {
                        wrong.add(new AssertionError("an interrupt was left on " + Thread.currentThread().getName()
                                + " after reading " + off));
                    }
                }
            }));
        }
        return readers;
    }

    private static void joinAll(List<Thread> readers) throws InterruptedException {
        for (Thread r : readers) {
            r.join(TimeUnit.SECONDS.toMillis(60));
            assertFalse(r.isAlive(), r.getName() + " still reading after 60 s");
        }
    }

    private static void throwIfAny(ConcurrentLinkedQueue<Throwable> wrong, String what) {
        if (!wrong.isEmpty()) {
            AssertionError e = new AssertionError(wrong.size() + " " + what);
            wrong.forEach(e::addSuppressed);
            throw e;
        }
    }
}
