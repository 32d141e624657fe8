package dev.lazyblock.metrics;

import java.util.concurrent.atomic.LongAccumulator;
import java.util.concurrent.atomic.LongAdder;

/** {@link Metrics} as plain counters: for tests, benchmarks and the CLI's summaries. */
public final class CountingMetrics implements Metrics {
    private final LongAdder hits = new LongAdder();
    private final LongAdder hitBytes = new LongAdder();
    private final LongAdder misses = new LongAdder();
    private final LongAdder missBytes = new LongAdder();
    private final LongAdder remoteRequests = new LongAdder();
    private final LongAdder remoteBytes = new LongAdder();
    private final LongAdder remoteNanos = new LongAdder();
    private final LongAccumulator remoteMaxNanos = new LongAccumulator(Math::max, 0);
    private final LongAdder fetchErrors = new LongAdder();
    private final LongAdder fetchTimeouts = new LongAdder();
    private final LongAdder waitersReleased = new LongAdder();
    private final LongAdder tierHits = new LongAdder();
    private final LongAdder tierHitBytes = new LongAdder();
    private final LongAdder tierMisses = new LongAdder();

    @Override
    public void cacheHit(long bytes) {
        hits.increment();
        hitBytes.add(bytes);
    }

    @Override
    public void cacheMiss(long bytes) {
        misses.increment();
        missBytes.add(bytes);
    }

    @Override
    public void remoteRead(String upstream, long bytes, long nanos) {
        remoteRequests.increment();
        remoteBytes.add(bytes);
        remoteNanos.add(nanos);
        remoteMaxNanos.accumulate(nanos);
    }

    @Override
    public void fetchFailed(String upstream, Throwable cause, boolean timeout) {
        (timeout ? fetchTimeouts : fetchErrors).increment();
    }

    @Override
    public void waitersReleased(int count) {
        waitersReleased.add(count);
    }

    @Override
    public void tierRead(boolean hit, long bytes) {
        if (hit) {
            tierHits.increment();
            tierHitBytes.add(bytes);
        } else {
            tierMisses.increment();
        }
    }

    /** A consistent-enough copy of the counters. */
    public Snapshot snapshot() {
        return new Snapshot(hits.sum(), hitBytes.sum(), misses.sum(), missBytes.sum(), remoteRequests.sum(),
                remoteBytes.sum(), remoteNanos.sum(), remoteMaxNanos.get(), fetchErrors.sum(), fetchTimeouts.sum(),
                waitersReleased.sum(), tierHits.sum(), tierHitBytes.sum(), tierMisses.sum());
    }

    public record Snapshot(long hits, long hitBytes, long misses, long missBytes, long remoteRequests,
                           long remoteBytes, long remoteNanos, long remoteMaxNanos, long fetchErrors,
                           long fetchTimeouts, long waitersReleased, long tierHits, long tierHitBytes,
                           long tierMisses) {}
}
