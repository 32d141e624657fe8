package dev.lazyblock.chunker;

import dev.lazyblock.metrics.Metrics;
import dev.lazyblock.content.ContentCache;
import dev.lazyblock.content.ContentCipher;
import dev.lazyblock.content.ContentIndex;
import java.time.Duration;

/**
 * How a chunker fetches.
 *
 * @param chunkSize    bytes per remote fetch unit: a power of two, a multiple of the cache's block
 * @param fetchTimeout a fetch that has not completed by then fails every reader waiting on it
 * @param metrics      where reads and fetches are reported
 * @param fetchThreads where fetches run, and how many at once; null: the process's pool
 */
public record ChunkerOptions(int chunkSize, Duration fetchTimeout, Metrics metrics, FetchThreads fetchThreads,
                             ContentIndex contentIndex, ContentCipher contentCipher,
                             ContentCache contentCache) {
    public static final int DEFAULT_CHUNK_SIZE = 4 << 20;
    /** Above any single 4 MiB fetch from a healthy store; the NBD I/O timeout (90 s) stays above it. */
    public static final Duration DEFAULT_FETCH_TIMEOUT = Duration.ofSeconds(60);

    public static final ChunkerOptions DEFAULTS =
            new ChunkerOptions(DEFAULT_CHUNK_SIZE, DEFAULT_FETCH_TIMEOUT, Metrics.NONE, null, null, null, null);

    public ChunkerOptions(int chunkSize, Duration fetchTimeout, Metrics metrics) {
        this(chunkSize, fetchTimeout, metrics, null, null, null, null);
    }

    public ChunkerOptions(int chunkSize, Duration fetchTimeout, Metrics metrics, FetchThreads fetchThreads) {
        this(chunkSize, fetchTimeout, metrics, fetchThreads, null, null, null);
    }

    public ChunkerOptions {
        if (chunkSize <= 0 || Integer.bitCount(chunkSize) != 1) {
            throw new IllegalArgumentException("chunk size must be a power of two, got " + chunkSize);
        }
        if (fetchTimeout.isNegative() || fetchTimeout.isZero()) {
            throw new IllegalArgumentException("fetch timeout must be positive, got " + fetchTimeout);
        }
        if (metrics == null) {
            throw new IllegalArgumentException("metrics must not be null (use Metrics.NONE)");
        }
    }

    public ChunkerOptions withMetrics(Metrics m) {
        return new ChunkerOptions(chunkSize, fetchTimeout, m, fetchThreads, contentIndex, contentCipher, contentCache);
    }

    public ChunkerOptions withFetchTimeout(Duration t) {
        return new ChunkerOptions(chunkSize, t, metrics, fetchThreads, contentIndex, contentCipher, contentCache);
    }

    public ChunkerOptions withChunkSize(int size) {
        return new ChunkerOptions(size, fetchTimeout, metrics, fetchThreads, contentIndex, contentCipher, contentCache);
    }

    /** Fetches run on {@code pool} (a daemon's own bound) instead of the process's. */
    public ChunkerOptions withFetchThreads(FetchThreads pool) {
        return new ChunkerOptions(chunkSize, fetchTimeout, metrics, pool, contentIndex, contentCipher, contentCache);
    }

    /**
     * Content-addressed builds opened with these options find chunks other open builds hold in
     * {@code index} (one per host or daemon) and copy them locally instead of fetching them; null:
     * none.
     */
    public ChunkerOptions withContentIndex(ContentIndex index) {
        return new ChunkerOptions(chunkSize, fetchTimeout, metrics, fetchThreads, index, contentCipher, contentCache);
    }

    /** Encrypted content-addressed builds are read with {@code cipher}: their tenant's secret; null: none. */
    public ChunkerOptions withContentCipher(ContentCipher cipher) {
        return new ChunkerOptions(chunkSize, fetchTimeout, metrics, fetchThreads, contentIndex, cipher, contentCache);
    }

    /**
     * Content-addressed builds opened with these options keep their chunks in {@code cache}, the
     * host's files by hash, mapped into each build's (scratch) cache instead of copied, so a chunk
     * many builds hold is held once; null: each build copies its chunks into its own cache.
     */
    public ChunkerOptions withContentCache(ContentCache cache) {
        return new ChunkerOptions(chunkSize, fetchTimeout, metrics, fetchThreads, contentIndex, contentCipher, cache);
    }
}
