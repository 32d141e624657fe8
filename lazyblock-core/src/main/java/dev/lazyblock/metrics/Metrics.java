package dev.lazyblock.metrics;

/**
 * What the read and fetch paths report. The core has no metrics library: the CLI binds this
 * to Micrometer, tests and benchmarks use {@link CountingMetrics}. Implementations must be
 * thread-safe and cheap: these are called on every read.
 */
public interface Metrics {
    /** A read served entirely from the local cache. */
    void cacheHit(long bytes);

    /** A read that had to wait for (some of) its bytes to be fetched. */
    void cacheMiss(long bytes);

    /** One upstream request finished: bytes received and time from request to last byte. */
    void remoteRead(String upstream, long bytes, long nanos);

    /** A fetch failed; {@code timeout} when it was the fetch's own deadline that ended it. */
    void fetchFailed(String upstream, Throwable cause, boolean timeout);

    /** Readers released by a fetch's progress. */
    void waitersReleased(int count);

    /**
     * A miss looked in the shared chunk tier: {@code hit} with the {@code bytes} read from it
     * (the stored chunk or frame), or a miss (no file, or a bad one) that went to the store.
     */
    default void tierRead(boolean hit, long bytes) {}

    /** Reports to both {@code a} and {@code b} (say, counters for a summary and a registry for scraping). */
    static Metrics both(Metrics a, Metrics b) {
        return new Metrics() {
            @Override
            public void cacheHit(long bytes) {
                a.cacheHit(bytes);
                b.cacheHit(bytes);
            }

            @Override
            public void cacheMiss(long bytes) {
                a.cacheMiss(bytes);
                b.cacheMiss(bytes);
            }

            @Override
            public void remoteRead(String upstream, long bytes, long nanos) {
                a.remoteRead(upstream, bytes, nanos);
                b.remoteRead(upstream, bytes, nanos);
            }

            @Override
            public void fetchFailed(String upstream, Throwable cause, boolean timeout) {
                a.fetchFailed(upstream, cause, timeout);
                b.fetchFailed(upstream, cause, timeout);
            }

            @Override
            public void waitersReleased(int count) {
                a.waitersReleased(count);
                b.waitersReleased(count);
            }

            @Override
            public void tierRead(boolean hit, long bytes) {
                a.tierRead(hit, bytes);
                b.tierRead(hit, bytes);
            }
        };
    }

    /** Reports nothing. */
    Metrics NONE = new Metrics() {
        @Override
        public void cacheHit(long bytes) {}

        @Override
        public void cacheMiss(long bytes) {}

        @Override
        public void remoteRead(String upstream, long bytes, long nanos) {}

        @Override
        public void fetchFailed(String upstream, Throwable cause, boolean timeout) {}

        @Override
        public void waitersReleased(int count) {}
    };
}
