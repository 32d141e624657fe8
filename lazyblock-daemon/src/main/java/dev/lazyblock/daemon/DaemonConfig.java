package dev.lazyblock.daemon;

import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.content.ContentCipher;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.Objects;

/**
 * The daemon's bounds and choices. Every limit is enforced with a clear error (HTTP 429 for a
 * limit, 503 for a read that waited too long), never by growing.
 *
 * @param stateDir        holds {@code builds/} (one persistent cache per build, shared by its
 *                        sandboxes, kept across runs) and {@code sandboxes/<id>/} (overlay, sockets)
 * @param maxSandboxes    sandboxes open at once
 * @param maxBuilds       builds open at once (referenced or idle); idle ones are closed LRU to make room
 * @param maxStores       object stores (buckets, directories, HTTP origins) the daemon keeps open
 * @param readsPerSandbox reads of the shared builds one sandbox may have in flight: its share of
 *                        the host's fetch threads, so one sandbox cannot take them all
 * @param readWait        how long a read waits for one of its sandbox's slots before failing
 * @param chunker         how misses are fetched
 * @param fetchTimeout    how long a read waits for its bytes from the store
 * @param drainTimeout    how long pause and delete wait for a sandbox's in-flight NBD requests
 * @param memoryAcceptTimeout how long a sandbox's memory handler waits for its VMM to connect
 * @param diskBudgetBytes what the build caches and the sandboxes' overlays may occupy on disk
 *                        together; closed builds' caches are removed LRU to stay under it (open
 *                        ones never are); 0: no budget
 * @param minFreeBytes    free space to keep on the state directory's file system (with a budget)
 * @param uffdHolder      the {@code lazyblock uffd-holder} socket that keeps VMs' userfaultfds
 *                        across restarts, or null
 * @param maxFetchThreads fetches from the stores running at once, host-wide: the daemon's own
 *                        fetch pool, shared by every build, plus a quarter as many kept for
 *                        demand misses alone; past it, demand misses wait ahead of read-ahead
 * @param tenants         tenant name -> the cipher of its secret, for encrypted images ({@link #withTenants})
 */
public record DaemonConfig(Path stateDir, int maxSandboxes, int maxBuilds, int maxStores, int readsPerSandbox,
                           Duration readWait, ChunkerKind chunker, Duration fetchTimeout, Duration drainTimeout,
                           Duration memoryAcceptTimeout, long diskBudgetBytes, long minFreeBytes, Path uffdHolder,
                           int maxFetchThreads, Map<String, ContentCipher> tenants) {

    public DaemonConfig {
        Objects.requireNonNull(stateDir, "stateDir");
        Objects.requireNonNull(chunker, "chunker");
        positive("maxSandboxes", maxSandboxes);
        positive("maxBuilds", maxBuilds);
        positive("maxStores", maxStores);
        positive("readsPerSandbox", readsPerSandbox);
        positive("maxFetchThreads", maxFetchThreads);
        positive("readWait", readWait);
        positive("fetchTimeout", fetchTimeout);
        positive("drainTimeout", drainTimeout);
        positive("memoryAcceptTimeout", memoryAcceptTimeout);
        tenants = Map.copyOf(Objects.requireNonNull(tenants, "tenants"));
        for (String t : tenants.keySet()) {
            if (!Daemon.ID.matcher(t).matches()) {
                throw new IllegalArgumentException("invalid tenant name '" + t + "': expected 1 to 64 of "
                        + "[A-Za-z0-9._-], starting with a letter or digit");
            }
        }
        if (diskBudgetBytes < 0 || minFreeBytes < 0) {
            throw new IllegalArgumentException("diskBudgetBytes and minFreeBytes must be >= 0, got " + diskBudgetBytes
                    + " and " + minFreeBytes);
        }
    }

    public static DaemonConfig defaults(Path stateDir) {
        return new DaemonConfig(stateDir, 1024, 256, 64, 64, Duration.ofSeconds(30), ChunkerKind.REQUEST_FIRST,
                Duration.ofSeconds(60), Duration.ofSeconds(30), Duration.ofMinutes(10), 0, 0, null, 256, Map.of());
    }

    public DaemonConfig withMaxSandboxes(int n) {
        return new DaemonConfig(stateDir, n, maxBuilds, maxStores, readsPerSandbox, readWait, chunker, fetchTimeout,
                drainTimeout, memoryAcceptTimeout, diskBudgetBytes, minFreeBytes, uffdHolder, maxFetchThreads, tenants);
    }

    public DaemonConfig withMaxBuilds(int n) {
        return new DaemonConfig(stateDir, maxSandboxes, n, maxStores, readsPerSandbox, readWait, chunker, fetchTimeout,
                drainTimeout, memoryAcceptTimeout, diskBudgetBytes, minFreeBytes, uffdHolder, maxFetchThreads, tenants);
    }

    public DaemonConfig withReadsPerSandbox(int n) {
        return new DaemonConfig(stateDir, maxSandboxes, maxBuilds, maxStores, n, readWait, chunker, fetchTimeout,
                drainTimeout, memoryAcceptTimeout, diskBudgetBytes, minFreeBytes, uffdHolder, maxFetchThreads, tenants);
    }

    public DaemonConfig withChunker(ChunkerKind k) {
        return new DaemonConfig(stateDir, maxSandboxes, maxBuilds, maxStores, readsPerSandbox, readWait, k,
                fetchTimeout, drainTimeout, memoryAcceptTimeout, diskBudgetBytes, minFreeBytes, uffdHolder, maxFetchThreads,
                tenants);
    }

    public DaemonConfig withFetchTimeout(Duration d) {
        return new DaemonConfig(stateDir, maxSandboxes, maxBuilds, maxStores, readsPerSandbox, readWait, chunker, d,
                drainTimeout, memoryAcceptTimeout, diskBudgetBytes, minFreeBytes, uffdHolder, maxFetchThreads, tenants);
    }

    public DaemonConfig withMemoryAcceptTimeout(Duration d) {
        return new DaemonConfig(stateDir, maxSandboxes, maxBuilds, maxStores, readsPerSandbox, readWait, chunker,
                fetchTimeout, drainTimeout, d, diskBudgetBytes, minFreeBytes, uffdHolder, maxFetchThreads, tenants);
    }

    public DaemonConfig withDiskBudget(long bytes, long minFree) {
        return new DaemonConfig(stateDir, maxSandboxes, maxBuilds, maxStores, readsPerSandbox, readWait, chunker,
                fetchTimeout, drainTimeout, memoryAcceptTimeout, bytes, minFree, uffdHolder, maxFetchThreads, tenants);
    }

    /**
     * Keeps each sandbox's userfaultfd in the {@code lazyblock uffd-holder} on {@code socket}, so
     * a daemon that restarts (or crashes) takes it back and a running VM's faults are served on;
     * null (the default): a restart leaves running VMs' faults waiting.
     */
    public DaemonConfig withUffdHolder(Path socket) {
        return new DaemonConfig(stateDir, maxSandboxes, maxBuilds, maxStores, readsPerSandbox, readWait, chunker,
                fetchTimeout, drainTimeout, memoryAcceptTimeout, diskBudgetBytes, minFreeBytes, socket, maxFetchThreads,
                tenants);
    }

    /** Fetches from the stores running at once, over every sandbox and build of the daemon (256). */
    public DaemonConfig withMaxFetchThreads(int n) {
        return new DaemonConfig(stateDir, maxSandboxes, maxBuilds, maxStores, readsPerSandbox, readWait, chunker,
                fetchTimeout, drainTimeout, memoryAcceptTimeout, diskBudgetBytes, minFreeBytes, uffdHolder, n, tenants);
    }

    /**
     * The tenants whose convergently encrypted images the daemon may serve, by name: a create
     * request names its sandbox's tenant, and that tenant's secret opens the image's encrypted
     * builds (its own instance of each, never shared with another tenant). Secrets stay in the
     * daemon's memory: neither the API nor the state directory ever holds one, so a restart needs
     * the same tenants again.
     */
    public DaemonConfig withTenants(Map<String, ContentCipher> t) {
        return new DaemonConfig(stateDir, maxSandboxes, maxBuilds, maxStores, readsPerSandbox, readWait, chunker,
                fetchTimeout, drainTimeout, memoryAcceptTimeout, diskBudgetBytes, minFreeBytes, uffdHolder,
                maxFetchThreads, t);
    }

    private static void positive(String what, int n) {
        if (n <= 0) {
            throw new IllegalArgumentException(what + " must be positive, got " + n);
        }
    }

    private static void positive(String what, Duration d) {
        if (d == null || d.isNegative() || d.isZero()) {
            throw new IllegalArgumentException(what + " must be a positive duration, got " + d);
        }
    }
}
