package dev.lazyblock.metrics.micrometer;

import dev.lazyblock.metrics.Metrics;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/**
 * Core's {@link Metrics} on Micrometer. Meters are looked up once per upstream (or per error
 * cause) and kept, so the read path costs a map lookup and an increment.
 *
 * <p>Meters: {@code lazyblock.cache.reads} and {@code lazyblock.cache.read.bytes} tagged
 * {@code result=hit|miss}; {@code lazyblock.remote.requests}, {@code lazyblock.remote.bytes} and
 * the timer {@code lazyblock.fetch.latency} (a histogram, for quantiles server-side) tagged
 * {@code upstream}; {@code lazyblock.fetch.errors} tagged {@code upstream} and
 * {@code cause} (the exception's simple class name, or {@code timeout});
 * {@code lazyblock.waiters.released}. Upstream names are the redacted ones upstreams give
 * (no credentials, no query strings).
 */
public final class MicrometerMetrics implements Metrics {
    private final MeterRegistry registry;
    private final Counter hits;
    private final Counter hitBytes;
    private final Counter misses;
    private final Counter missBytes;
    private final Counter released;
    private final Counter tierHits;
    private final Counter tierHitBytes;
    private final Counter tierMisses;
    private final ConcurrentHashMap<String, Remote> remotes = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<String, Counter> errors = new ConcurrentHashMap<>();

    private record Remote(Counter requests, Counter bytes, Timer latency) {}

    public MicrometerMetrics(MeterRegistry registry) {
        this.registry = registry;
        this.hits = Counter.builder("lazyblock.cache.reads").tag("result", "hit")
                .description("reads served entirely from the local cache").register(registry);
        this.misses = Counter.builder("lazyblock.cache.reads").tag("result", "miss")
                .description("reads that waited for a fetch").register(registry);
        this.hitBytes = Counter.builder("lazyblock.cache.read.bytes").tag("result", "hit").baseUnit("bytes")
                .register(registry);
        this.missBytes = Counter.builder("lazyblock.cache.read.bytes").tag("result", "miss").baseUnit("bytes")
                .register(registry);
        this.released = Counter.builder("lazyblock.waiters.released")
                .description("readers released by a fetch's progress").register(registry);
        this.tierHits = Counter.builder("lazyblock.tier.reads").tag("result", "hit")
                .description("fetches served by the shared chunk tier").register(registry);
        this.tierMisses = Counter.builder("lazyblock.tier.reads").tag("result", "miss")
                .description("fetches the shared chunk tier could not serve (no file, or a bad one)").register(registry);
        this.tierHitBytes = Counter.builder("lazyblock.tier.read.bytes").baseUnit("bytes")
                .description("bytes read from the shared chunk tier").register(registry);
    }

    @Override
    public void tierRead(boolean hit, long bytes) {
        if (hit) {
            tierHits.increment();
            tierHitBytes.increment(bytes);
        } else {
            tierMisses.increment();
        }
    }

    @Override
    public void cacheHit(long bytes) {
        hits.increment();
        hitBytes.increment(bytes);
    }

    @Override
    public void cacheMiss(long bytes) {
        misses.increment();
        missBytes.increment(bytes);
    }

    @Override
    public void remoteRead(String upstream, long bytes, long nanos) {
        Remote r = remotes.computeIfAbsent(upstream, u -> new Remote(
                Counter.builder("lazyblock.remote.requests").tag("upstream", u).register(registry),
                Counter.builder("lazyblock.remote.bytes").tag("upstream", u).baseUnit("bytes").register(registry),
                Timer.builder("lazyblock.fetch.latency").tag("upstream", u)
                        .description("one upstream request, from asking to its last byte")
                        .publishPercentileHistogram().register(registry)));
        r.requests().increment();
        r.bytes().increment(bytes);
        r.latency().record(nanos, TimeUnit.NANOSECONDS);
    }

    @Override
    public void fetchFailed(String upstream, Throwable cause, boolean timeout) {
        String why = timeout ? "timeout" : cause.getClass().getSimpleName();
        errors.computeIfAbsent(upstream + '\0' + why, k -> Counter.builder("lazyblock.fetch.errors")
                .tag("upstream", upstream).tag("cause", why).register(registry)).increment();
    }

    @Override
    public void waitersReleased(int count) {
        released.increment(count);
    }
}
