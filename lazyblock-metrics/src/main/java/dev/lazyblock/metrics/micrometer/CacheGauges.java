package dev.lazyblock.metrics.micrometer;

import dev.lazyblock.cache.SparseCache;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import java.io.IOException;

/** Gauges of one cache: presence-map memory, blocks present, bytes its file occupies on disk. */
public final class CacheGauges {
    private CacheGauges() {}

    /** Registers the gauges, tagged {@code cache=name}; a closed cache reads as NaN. */
    public static void register(MeterRegistry registry, String name, SparseCache cache) {
        Gauge.builder("lazyblock.cache.presence.map.bytes", cache, c -> safe(() -> c.presence().retainedBytes()))
                .tag("cache", name).baseUnit("bytes").description("heap held by the presence bitmap").register(registry);
        Gauge.builder("lazyblock.cache.present.granules", cache, c -> safe(() -> c.presence().cardinality()))
                .tag("cache", name).register(registry);
        Gauge.builder("lazyblock.cache.file.allocated.bytes", cache, c -> safe(c::fileSize))
                .tag("cache", name).baseUnit("bytes").description("disk blocks the sparse cache file occupies")
                .register(registry);
        Gauge.builder("lazyblock.cache.size.bytes", cache, c -> (double) c.size()).tag("cache", name).baseUnit("bytes")
                .register(registry);
    }

    private interface LongSource {
        long get() throws IOException;
    }

    private static double safe(LongSource s) {
        try {
            return s.get();
        } catch (IOException | RuntimeException e) {
            return Double.NaN; // closed or gone: a gauge never throws into a scrape
        }
    }
}
