package dev.lazyblock.chunker;

import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.UpstreamException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BiConsumer;

/**
 * An in-memory object with faults on demand, for the chunkers' waiter logic: random delays,
 * failures part-way through a request, and stalls that last until {@link #unstall()}. Real
 * protocols are tested against real servers in the upstream package.
 */
class TestUpstream implements Upstream {
    final byte[] data;
    /** Chance that a request fails (half of them after delivering some bytes). */
    volatile double failProbability;
    /** When > 0, every n-th request fails too, so a test is sure to see failures. */
    volatile int failEvery;
    private final java.util.concurrent.atomic.AtomicInteger requestCount = new java.util.concurrent.atomic.AtomicInteger();
    /** Upper bound of a random pause before a request and between stream pieces, in µs. */
    volatile int maxDelayMicros;
    volatile boolean stall;
    /**
     * What {@link #honoursInterrupts()} says: true, since every wait here ends on an interrupt,
     * so chunkers may send a reader's request from its own thread; false to keep every request
     * on fetch threads.
     */
    volatile boolean honoursInterrupts = true;
    /**
     * Like a store that answers, then stops sending mid-body: {@code readFully} delivers half and
     * waits for {@link #unstall()} (a blocked socket read that nothing but its own timeout ends);
     * a range stream delivers its first piece, then its reads wait for unstall or close.
     */
    volatile boolean stallBody;
    /** Reads blocked in a stalled body now. */
    final java.util.concurrent.atomic.AtomicInteger stalledBodies = new java.util.concurrent.atomic.AtomicInteger();
    private final CountDownLatch unstalled = new CountDownLatch(1);
    /** Every request as {offset, length}. */
    final List<long[]> requests = new CopyOnWriteArrayList<>();
    /** Called at the start of every request: tests assert invariants there. */
    volatile BiConsumer<Long, Long> onRequest = (off, len) -> { };

    TestUpstream(byte[] data) {
        this.data = data;
    }

    void unstall() {
        stall = false;
        stallBody = false;
        unstalled.countDown();
    }

    @Override
    public boolean honoursInterrupts() {
        return honoursInterrupts;
    }

    @Override
    public String name() {
        return "test://object";
    }

    @Override
    public long size() {
        return data.length;
    }

    private void begin(long off, long len) throws IOException {
        if (off < 0 || len < 0 || off + len > data.length) {
            throw new UpstreamException(name(), off, len, "range outside the object of " + data.length + " bytes");
        }
        requests.add(new long[] {off, len});
        onRequest.accept(off, len);
        pause();
        if (stall) {
            try {
                // Bounded so a broken test cannot hang the build; the chunker's timeout is far shorter.
                unstalled.await(60, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while stalled", e);
            }
        }
    }

    /** A random pause, which an interrupt ends with an error, as a real client's wait would. */
    private void pause() throws java.io.InterruptedIOException {
        int max = maxDelayMicros;
        if (max > 0) {
            LockSupport.parkNanos(ThreadLocalRandom.current().nextInt(max) * 1000L);
            if (Thread.currentThread().isInterrupted()) {
                throw new java.io.InterruptedIOException("interrupted while the store was slow");
            }
        }
    }

    private boolean failNow() {
        int every = failEvery;
        if (every > 0 && requestCount.incrementAndGet() % every == 0) {
            return true;
        }
        return ThreadLocalRandom.current().nextDouble() < failProbability;
    }

    /** Blocks until unstalled (or {@code closed} says so), counted in {@link #stalledBodies}. */
    private void stallBody(java.util.function.BooleanSupplier closed) throws IOException {
        stalledBodies.incrementAndGet();
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60); // a broken test cannot hang the build
            while (stall || stallBody) {
                if (closed.getAsBoolean()) {
                    throw new IOException("stream closed while stalled");
                }
                if (System.nanoTime() > deadline) {
                    throw new IOException("stalled for 60 s");
                }
                if (Thread.currentThread().isInterrupted()) {
                    throw new java.io.InterruptedIOException("interrupted while the body stalled");
                }
                LockSupport.parkNanos(2_000_000);
            }
        } finally {
            stalledBodies.decrementAndGet();
        }
    }

    @Override
    public void readFully(long off, ByteBuffer dst) throws IOException {
        int len = dst.remaining();
        begin(off, len);
        if (stallBody) {
            dst.put(data, (int) off, len / 2);
            stallBody(() -> false);
            dst.put(data, (int) off + len / 2, len - len / 2);
            return;
        }
        if (failNow()) {
            dst.put(data, (int) off, len / 2); // part of it lands before the failure
            throw new UpstreamException(name(), off, len, "injected failure");
        }
        dst.put(data, (int) off, len);
    }

    @Override
    public RangeStream openRange(long off, long len) throws IOException {
        begin(off, len);
        boolean fail = failNow();
        long failAt = fail ? ThreadLocalRandom.current().nextLong(len + 1) : -1;
        return new RangeStream() {
            long pos;
            volatile boolean closed;

            @Override
            public int read(ByteBuffer dst) throws IOException {
                if (closed) {
                    throw new IOException("stream closed");
                }
                if (pos == len) {
                    return -1;
                }
                if (fail && pos >= failAt) {
                    throw new UpstreamException(name(), off, len, "injected failure mid-stream at " + pos);
                }
                if (stallBody && pos > 0) {
                    stallBody(() -> closed);
                }
                pause();
                int n = (int) Math.min(Math.min(dst.remaining(), len - pos),
                        ThreadLocalRandom.current().nextInt(1, 40_000));
                if (fail) {
                    n = (int) Math.max(1, Math.min(n, failAt - pos));
                }
                dst.put(data, (int) (off + pos), n);
                pos += n;
                return n;
            }

            @Override
            public void close() {
                closed = true;
            }
        };
    }

    @Override
    public void close() {
        unstall();
    }
}
