package dev.lazyblock.cli;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.chunker.ChunkTier;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.metrics.CountingMetrics;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * Fetches a whole image into a kept cache directory through the same chunkers serve uses, so a
 * later {@code serve --cache-dir} of that image reads it locally from the first request.
 */
@Command(name = "warm", mixinStandardHelpOptions = true,
        description = {"Fetches all of IMAGE into the cache kept in DIR.",
                "Every build of a layered image, chunks in parallel; `serve IMAGE --cache-dir DIR` then reads",
                "it without fetching. Bytes already there (an earlier warm or serve) are",
                "not fetched again. Progress (bytes, rate, ETA) on a terminal, else one",
                "summary line."},
        footer = {"", "Examples:",
                "  lazyblock warm https://example.com/rootfs.ext4 --cache-dir /var/cache/lb",
                "  lazyblock warm s3://bucket/vm1/<build>.header --cache-dir /var/cache/lb",
                "  lazyblock serve https://example.com/rootfs.ext4 --cache-dir /var/cache/lb"})
final class WarmCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "IMAGE", description = "Path or URL of a raw image or a layer header.")
    String image;

    @Option(names = "--cache-dir", paramLabel = "DIR",
            description = "The kept cache directory to fill (the one serve --cache-dir reads).")
    Path cacheDir;

    @Option(names = "--content-cache", paramLabel = "SIZE", defaultValue = "16G",
            description = "Content-addressed layers: their chunks go to DIR/content as files by hash, at most SIZE, "
                    + "where `serve --cache-dir DIR` maps them from (default ${DEFAULT-VALUE}; 0: into the build's "
                    + "kept cache instead).")
    String contentCacheSize;

    @Option(names = "--parallel", paramLabel = "N", defaultValue = "8",
            description = "Chunks fetched at once (default ${DEFAULT-VALUE}).")
    int parallel;

    @Option(names = "--chunker", defaultValue = "full-fetch",
            description = "How chunks are fetched: full-fetch, streaming or request-first (default ${DEFAULT-VALUE}: "
                    + "one request per chunk, the fewest for a whole image).")
    String chunker;

    @Option(names = "--layered", description = "IMAGE is a layered image's header, whatever its name.")
    boolean layered;

    @Mixin
    TierOptions tier = new TierOptions();

    @Override
    public Integer call() throws Exception {
        ChunkerKind kind;
        try {
            kind = ChunkerKind.parse(chunker);
        } catch (IllegalArgumentException e) {
            System.err.println("lazyblock warm: " + e.getMessage());
            return 2;
        }
        if (cacheDir == null) {
            System.err.println("lazyblock warm: needs --cache-dir DIR (or cache-dir in the config file): the cache "
                    + "is kept there for `serve --cache-dir DIR`");
            return 2;
        }
        if (parallel < 1) {
            System.err.println("lazyblock warm: --parallel must be at least 1, got " + parallel);
            return 2;
        }
        ExportCommand.ContentSettings content;
        try {
            content = ExportCommand.ContentSettings.parse(contentCacheSize); // encrypted content-addressed layers too
        } catch (IllegalArgumentException e) {
            System.err.println("lazyblock warm: " + e.getMessage());
            return 2;
        }
        Caches caches = new Caches(Files.createDirectories(cacheDir), true);
        CountingMetrics metrics = new CountingMetrics();
        ChunkerOptions options = ChunkerOptions.DEFAULTS.withMetrics(metrics).withContentCipher(content.cipher());
        List<AutoCloseable> closeLast = new ArrayList<>();
        dev.lazyblock.content.ContentCache files;
        try {
            // Where `serve --cache-dir` looks for content-addressed chunks: warm fills the same files.
            files = caches.openContent(content.cacheBytes(), "warm");
            if (files != null) {
                closeLast.add(files);
                options = options.withContentCache(files);
            }
        } catch (IOException e) {
            System.err.println("lazyblock warm: --content-cache: " + e.getMessage());
            return 2;
        }
        try {
            ChunkTier shared = tier.open(caches);
            if (shared != null) {
                closeLast.add(shared); // closed after the images
            }
        } catch (IllegalArgumentException e) {
            System.err.println("lazyblock warm: " + e.getMessage());
            return 2;
        }
        IOException failure = null;
        String description;
        long total = 0;
        long already = 0;
        try {
            ServeCommand.Source src = ServeCommand.open(image, layered || ServeCommand.isHeader(image), caches, kind,
                    options, closeLast);
            description = src.description();
            for (Chunker c : src.chunkers()) {
                total += c.size();
                already += presentBytes(c.cache());
            }
            Progress progress = Progress.onTerminal(System.err, "warm", total);
            progress.skip(already);
            try (ExecutorService pool = Executors.newFixedThreadPool(parallel,
                    Thread.ofPlatform().daemon().name("lazyblock-warm-", 0).factory())) {
                List<Future<?>> work = new ArrayList<>();
                int chunk = options.chunkSize();
                for (Chunker c : src.chunkers()) {
                    for (long off = 0; off < c.size(); off += chunk) {
                        long from = off;
                        long len = Math.min(chunk, c.size() - off);
                        if (c.cache().isCached(from, len)) {
                            continue;
                        }
                        work.add(pool.submit(() -> {
                            c.slice(from, len);
                            progress.add(len);
                            return null;
                        }));
                    }
                }
                for (Future<?> f : work) {
                    try {
                        f.get();
                    } catch (ExecutionException e) {
                        if (failure == null) {
                            failure = e.getCause() instanceof IOException io ? io : new IOException(e.getCause());
                            work.forEach(w -> w.cancel(false)); // fail fast: what is done stays cached
                        }
                    } catch (java.util.concurrent.CancellationException cancelled) {
                        // after a failure
                    }
                }
            }
            if (failure == null) {
                try {
                    awaitMarked(src.chunkers(), options);
                } catch (IOException e) {
                    failure = e;
                }
            }
            progress.finish();
        } finally {
            for (AutoCloseable c : closeLast) {
                try {
                    c.close();
                } catch (Exception e) {
                    System.err.println("lazyblock warm: closing " + c + ": " + e);
                }
            }
            if (!caches.awaitSaved(ServeCommand.SAVE_TIMEOUT)) {
                System.err.println("lazyblock warm: fetches still running after " + ServeCommand.SAVE_TIMEOUT.toSeconds()
                        + " s; the cache in " + cacheDir + " may not be saved");
            }
        }
        CountingMetrics.Snapshot m = metrics.snapshot();
        if (failure != null) {
            System.err.println("lazyblock warm: " + failure.getMessage() + "; what was fetched is kept, rerun to go on");
            return 1;
        }
        // A content-addressed build's chunks found among the host's chunk files are mapped, neither
        // fetched nor in its own cache: said apart, or a second warm would seem to have done nothing.
        long mapped = files == null ? 0 : files.hitBytes();
        System.out.printf("warmed %s: %,d bytes in %s (%,d fetched now in %,d requests, %,d already cached%s)%s%n",
                description, total, cacheDir, m.remoteBytes(), m.remoteRequests(), already,
                mapped == 0 ? "" : String.format(", %,d mapped from the chunk files in %s", mapped,
                        cacheDir.resolve("content")),
                tier.dir == null ? "" : String.format("; shared tier: %,d chunks (%,d bytes) read from it, %,d missed",
                        m.tierHits(), m.tierHitBytes(), m.tierMisses()));
        return 0;
    }

    /**
     * Waits until every chunk is marked present. A chunker releases a reader once its bytes are in
     * the cache and marks the chunk just after; closing in between would lose the mark (a closed
     * cache marks nothing), and the saved map would miss bytes that are there.
     */
    private static void awaitMarked(List<Chunker> chunkers, ChunkerOptions options) throws IOException {
        long deadline = System.nanoTime() + options.fetchTimeout().toNanos();
        for (Chunker c : chunkers) {
            while (!c.cache().isCached(0, c.size())) {
                c.cache().throwIfFailed();
                if (System.nanoTime() - deadline > 0) {
                    throw new IOException("fetches of " + c + " did not mark their chunks within "
                            + options.fetchTimeout().toSeconds() + " s");
                }
                java.util.concurrent.locks.LockSupport.parkNanos(1_000_000);
            }
        }
    }

    private static long presentBytes(SparseCache cache) {
        return Math.min(cache.size(), cache.presence().cardinality() * cache.granularity());
    }
}
