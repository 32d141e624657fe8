package dev.lazyblock.daemon;

import dev.lazyblock.metrics.CountingMetrics;
import dev.lazyblock.metrics.Metrics;

/**
 * The metrics every shared chunker reports to: host-wide totals (and Micrometer's, when there is
 * a registry), with hits and misses also charged to the sandbox whose read it is. Hits and misses
 * are recorded on the reading thread, inside the sandbox's {@link SandboxMeters#CURRENT} binding;
 * remote reads happen on fetch threads, shared by all the sandboxes waiting on a chunk, so they
 * count for the host only.
 */
final class HostMetrics implements Metrics {
    final CountingMetrics host = new CountingMetrics();
    private final Metrics out;

    HostMetrics(Metrics exported) {
        this.out = exported == null ? host : Metrics.both(host, exported);
    }

    @Override
    public void cacheHit(long bytes) {
        out.cacheHit(bytes);
        if (SandboxMeters.CURRENT.isBound()) {
            SandboxMeters.CURRENT.get().hit(bytes);
        }
    }

    @Override
    public void cacheMiss(long bytes) {
        out.cacheMiss(bytes);
        if (SandboxMeters.CURRENT.isBound()) {
            SandboxMeters.CURRENT.get().miss(bytes);
        }
    }

    @Override
    public void remoteRead(String upstream, long bytes, long nanos) {
        out.remoteRead(upstream, bytes, nanos);
    }

    @Override
    public void fetchFailed(String upstream, Throwable cause, boolean timeout) {
        out.fetchFailed(upstream, cause, timeout);
    }

    @Override
    public void waitersReleased(int count) {
        out.waitersReleased(count);
    }

    @Override
    public void tierRead(boolean hit, long bytes) {
        out.tierRead(hit, bytes);
    }
}
