package dev.lazyblock.daemon;

import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.LongAdder;

/**
 * One sandbox's read counters, also published as Prometheus series tagged {@code sandbox} and
 * {@code build}. The shared builds' chunkers count hits and misses on the reading thread, so a
 * read done with {@link #CURRENT} bound to a sandbox's meters is charged to that sandbox; closing
 * removes the series, which keeps the label set as bounded as the sandbox count.
 */
final class SandboxMeters implements AutoCloseable {
    /** Bound by {@link AttributedDevice} around each read of a shared build. */
    static final ScopedValue<SandboxMeters> CURRENT = ScopedValue.newInstance();

    // LongAdder: written by every NBD connection thread of the sandbox, read by list/get and scrapes.
    final LongAdder reads = new LongAdder();
    final LongAdder readBytes = new LongAdder();
    final LongAdder hits = new LongAdder();
    final LongAdder hitBytes = new LongAdder();
    final LongAdder misses = new LongAdder();
    final LongAdder missBytes = new LongAdder();
    final LongAdder readErrors = new LongAdder();

    private final MeterRegistry registry;
    private final List<Meter> meters = new ArrayList<>();

    SandboxMeters(MeterRegistry registry, String sandbox, String build) {
        this.registry = registry;
        if (registry != null) {
            counter("lazyblock.sandbox.reads", "reads of the shared builds", sandbox, build, reads);
            counter("lazyblock.sandbox.read.bytes", "bytes read from the shared builds", sandbox, build, readBytes);
            counter("lazyblock.sandbox.cache.hit.bytes", "bytes found in the build caches", sandbox, build, hitBytes);
            counter("lazyblock.sandbox.cache.miss.bytes", "bytes this sandbox had fetched", sandbox, build, missBytes);
            counter("lazyblock.sandbox.read.errors", "reads that failed", sandbox, build, readErrors);
        }
    }

    private void counter(String name, String help, String sandbox, String build, LongAdder a) {
        meters.add(FunctionCounter.builder(name, a, LongAdder::sum).description(help)
                .tag("sandbox", sandbox).tag("build", build).register(registry));
    }

    void hit(long bytes) {
        hits.increment();
        hitBytes.add(bytes);
    }

    void miss(long bytes) {
        misses.increment();
        missBytes.add(bytes);
    }

    /** A snapshot for the API. */
    Reads snapshot() {
        return new Reads(reads.sum(), readBytes.sum(), hits.sum(), hitBytes.sum(), misses.sum(), missBytes.sum(),
                readErrors.sum());
    }

    /** What a sandbox read of its builds: {@code missBytes} is what its misses had fetched. */
    public record Reads(long reads, long readBytes, long hits, long hitBytes, long misses, long missBytes,
                        long errors) {}

    @Override
    public void close() {
        if (registry != null) {
            meters.forEach(registry::remove);
        }
        meters.clear();
    }
}
