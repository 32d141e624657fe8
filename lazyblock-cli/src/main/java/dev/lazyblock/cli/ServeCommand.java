package dev.lazyblock.cli;

import dev.lazyblock.cache.PersistentCache;
import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.chunker.ChunkTier;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.FrameChunker;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.device.Device;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.device.Overlay;
import dev.lazyblock.device.WorkingSet;
import dev.lazyblock.device.WorkingSetRecorder;
import dev.lazyblock.metrics.CountingMetrics;
import dev.lazyblock.metrics.Metrics;
import dev.lazyblock.metrics.micrometer.CacheGauges;
import dev.lazyblock.metrics.micrometer.MetricsServer;
import dev.lazyblock.metrics.micrometer.MicrometerMetrics;
import dev.lazyblock.nbd.NbdExport;
import dev.lazyblock.nbd.NbdServer;
import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.UpstreamProvider;
import dev.lazyblock.upstream.Upstreams;
import java.io.IOException;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * Serves an image over NBD until SIGINT or SIGTERM: a raw image through a chunker and a sparse
 * cache, or a layered image through its header; writable through a copy-on-write overlay.
 */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = {"Serves IMAGE over NBD; what clients read is fetched on demand into a cache.",
                "IMAGE: a path, or a file://, https:// or s3:// URL (s3 needs lazyblock-s3),",
                "of a raw image or of a layered image's header (--layered, or *.header).",
                "Prints the URI for clients; Ctrl-C or SIGTERM stops it and prints cache",
                "statistics."},
        footer = {"", "Examples:",
                "  lazyblock serve rootfs.ext4",
                "  lazyblock serve https://example.com/rootfs.ext4 --export rootfs",
                "  lazyblock serve rootfs.ext4 --writable --listen 127.0.0.1:10810",
                "  lazyblock serve /srv/layers/vm1/<build-id>.header --writable",
                "then, from another shell:",
                "  nbdinfo nbd://127.0.0.1:10809/rootfs.ext4",
                "  qemu-img info -f raw nbd://127.0.0.1:10809/rootfs.ext4"})
final class ServeCommand implements Callable<Integer> {
    private static final Logger log = LoggerFactory.getLogger(ServeCommand.class);

    @Parameters(index = "0", paramLabel = "IMAGE", description = "Path or URL of a raw image or a layer header.")
    String image;

    @Option(names = "--export", paramLabel = "NAME",
            description = "Export name (default: the image's file name, without .header).")
    String exportName;

    @Option(names = "--writable", description = "Accept writes, into a copy-on-write overlay (the image is never written).")
    boolean writable;

    @Option(names = "--listen", paramLabel = "HOST:PORT", defaultValue = "127.0.0.1:10809",
            description = "Address to listen on (default ${DEFAULT-VALUE}; port 0 picks a free one).")
    String listen;

    @Option(names = "--chunker", defaultValue = "request-first",
            description = "How misses are fetched: request-first, streaming or full-fetch (default ${DEFAULT-VALUE}).")
    String chunker;

    @Option(names = "--readers", paramLabel = "KIND", defaultValue = "platform",
            description = "Threads that read the clients' sockets: platform (one per connection; less latency per "
                    + "request at queue depth 1) or virtual (no platform thread per connection) (default "
                    + "${DEFAULT-VALUE}).")
    String readers;

    @Option(names = "--cache-dir", paramLabel = "DIR",
            description = "Keep the image's cache in DIR across runs (what `lazyblock warm` fills): each chunk is "
                    + "kept once its bytes are on disk, a crash included, and the next serve of the same image reads "
                    + "them locally. Default: scratch files in a new temp directory, unlinked at once, gone at exit.")
    Path cacheDir;

    @Option(names = "--content-cache", paramLabel = "SIZE", defaultValue = "16G",
            description = "Content-addressed layers: keep their chunks as files by hash in the cache directory "
                    + "(content/), at most SIZE (e.g. 16G), mapped into every build that holds them instead of "
                    + "copied, so a chunk several layers share is held once on disk and in memory; with --cache-dir "
                    + "they are kept across runs. 0: copy each chunk into its build's cache (default: ${DEFAULT-VALUE}).")
    String contentCacheSize;

    @Option(names = "--overlay-dir", paramLabel = "DIR",
            description = "With --writable: keep the clients' writes in DIR across runs and crashes; NBD FLUSH and FUA "
                    + "make them durable. The next serve of the same image and export with the same DIR goes on "
                    + "with them. Default: a scratch overlay, gone at exit.")
    Path overlayDir;

    @Option(names = "--layered", description = "IMAGE is a layered image's header, whatever its name.")
    boolean layered;

    @Option(names = "--export-layer", description = "With --writable over a layered image: when serve stops, "
            + "export what clients wrote as a new layer next to the image's header, and print its header's key.")
    boolean exportLayer;

    @Option(names = "--metrics", paramLabel = "HOST:PORT",
            description = "Serve Prometheus metrics at http://HOST:PORT/metrics (bind to loopback unless you mean it).")
    String metricsListen;

    @Option(names = "--record-working-set", paramLabel = "FILE",
            description = "When serve stops, save the chunks clients read, in first-read order, to FILE "
                    + "(for --prefetch on the next boot of the same image).")
    Path recordWorkingSet;

    @Option(names = "--prefetch", paramLabel = "FILE",
            description = "At start, fetch the chunks of a working set saved by --record-working-set, in its order, "
                    + "beside what clients ask for (which goes first).")
    Path prefetch;

    @Option(names = "--prefetch-parallel", paramLabel = "N", defaultValue = "4",
            description = "Chunks prefetched at once (default ${DEFAULT-VALUE}).")
    int prefetchParallel;

    /** The --prefetch in progress or done, if any (for tests). */
    volatile java.util.concurrent.CompletableFuture<Long> prefetched;

    /** How long a stop waits for fetches in flight to end, so a kept cache's map is saved. */
    static final java.time.Duration SAVE_TIMEOUT = java.time.Duration.ofSeconds(90);

    /** The metrics endpoint, when asked for (for tests). */
    volatile MetricsServer metricsServer;

    /** Counted down once the server listens (for tests). */
    final CountDownLatch started = new CountDownLatch(1);
    /** The running server (for tests). */
    volatile NbdServer server;
    private final CountDownLatch stop = new CountDownLatch(1);
    private final CountDownLatch done = new CountDownLatch(1);

    /** Stops a running {@code serve} as SIGTERM would. */
    void stop() {
        stop.countDown();
    }

    @Option(names = "--compress", paramLabel = "CODEC", defaultValue = "none",
            description = "With --export-layer: store the new layer's diff as zstd or lz4 frames (default ${DEFAULT-VALUE}).")
    String compress;

    @Mixin
    TierOptions tier = new TierOptions();

    @Override
    public Integer call() throws Exception {
        PrintStream out = System.out;
        ChunkerKind kind;
        InetSocketAddress address;
        boolean platformReaders;
        try {
            kind = ChunkerKind.parse(chunker);
            address = parseListen(listen);
            platformReaders = switch (readers.strip().toLowerCase(java.util.Locale.ROOT)) {
                case "platform" -> true;
                case "virtual" -> false;
                default -> throw new IllegalArgumentException("--readers: expected platform or virtual, got '"
                        + readers + "'");
            };
        } catch (IllegalArgumentException e) {
            System.err.println("lazyblock serve: " + e.getMessage());
            return 2;
        }
        String name = exportName != null ? exportName : defaultExportName(image);
        try {
            NbdExport.validateName(name);
        } catch (IllegalArgumentException e) {
            System.err.println("lazyblock serve: " + e.getMessage() + " (choose one with --export)");
            return 2;
        }
        try {
            ExportCommand.compression(compress, null);
        } catch (IllegalArgumentException e) {
            System.err.println("lazyblock serve: --compress: " + e.getMessage());
            return 2;
        }
        if (exportLayer && !writable) {
            System.err.println("lazyblock serve: --export-layer needs --writable (there is nothing to export otherwise)");
            return 2;
        }
        if (overlayDir != null && !writable) {
            System.err.println("lazyblock serve: --overlay-dir needs --writable (a read-only export writes nothing)");
            return 2;
        }
        if (exportLayer && !(layered || isHeader(image))) {
            System.err.println("lazyblock serve: --export-layer needs a layered image (a *.header, or --layered): "
                    + "a layer is written over its parent header");
            return 2;
        }
        WorkingSet toPrefetch = null;
        if (prefetch != null) {
            try {
                toPrefetch = WorkingSet.load(prefetch);
            } catch (IOException e) {
                System.err.println("lazyblock serve: --prefetch: " + e.getMessage());
                return 2;
            }
        }
        ExportCommand.ContentSettings content;
        try {
            content = ExportCommand.ContentSettings.parse(contentCacheSize); // encrypted content-addressed layers too
        } catch (IllegalArgumentException e) {
            System.err.println("lazyblock serve: " + e.getMessage());
            return 2;
        }
        boolean ownDir = cacheDir == null;
        Caches caches = new Caches(ownDir ? Files.createTempDirectory("lazyblock-serve") : Files.createDirectories(cacheDir),
                !ownDir);
        CountingMetrics metrics = new CountingMetrics();
        List<AutoCloseable> closeLast = new ArrayList<>();
        dev.lazyblock.content.ContentCache files;
        try {
            files = caches.openContent(content.cacheBytes(), "serve"); // before the tier: its budget bounds them too
        } catch (IOException e) {
            System.err.println("lazyblock serve: --content-cache: " + e.getMessage());
            return 2;
        }
        if (files != null) {
            closeLast.add(files); // after the images: their mappings keep what they map anyway
        }
        try {
            ChunkTier shared = tier.open(caches);
            if (shared != null) {
                closeLast.add(shared); // closed after the images
            }
        } catch (IllegalArgumentException e) {
            System.err.println("lazyblock serve: " + e.getMessage());
            return 2;
        }
        Metrics reported = metrics;
        if (metricsListen != null) {
            InetSocketAddress at;
            try {
                at = parseListen(metricsListen);
            } catch (IllegalArgumentException e) {
                System.err.println("lazyblock serve: --metrics: " + e.getMessage());
                return 2;
            }
            metricsServer = new MetricsServer(at);
            closeLast.add(metricsServer);
            reported = Metrics.both(metrics, new MicrometerMetrics(metricsServer.registry()));
        }
        // One per process: a content-addressed layer's chunks another open build holds are mapped
        // (the content cache) or copied (the index), not fetched.
        ChunkerOptions options = ChunkerOptions.DEFAULTS.withMetrics(reported)
                .withContentIndex(new dev.lazyblock.content.ContentIndex())
                .withContentCipher(content.cipher());
        if (files != null) {
            options = options.withContentCache(files);
        }
        Thread hook = null;
        try {
            Source src;
            try {
                src = open(image, layered || isHeader(image), caches, kind, options, closeLast);
            } catch (IllegalArgumentException e) {
                // The image is not one these settings can read (an encrypted build without its
                // tenant's secret, or with another's): a usage error, not a crash.
                System.err.println("lazyblock serve: " + image + ": " + e.getMessage());
                return 2;
            }
            Device device = src.device();
            WorkingSetRecorder recorder = null;
            if (recordWorkingSet != null) {
                recorder = new WorkingSetRecorder(device, options.chunkSize());
                device = recorder;
            }
            Overlay overlay = null;
            PersistentCache.Opened keptOverlay = null;
            NbdExport export;
            if (writable) {
                SparseCache written;
                if (overlayDir != null) {
                    try {
                        keptOverlay = PersistentCache.openOverlay(overlayDir, overlayIdentity(name, src),
                                src.version(), device.size(), device.blockSize());
                    } catch (IOException e) {
                        System.err.println("lazyblock serve: --overlay-dir: " + e.getMessage());
                        return 2;
                    }
                    written = keptOverlay.cache();
                    overlayReleased = keptOverlay;
                } else {
                    written = SparseCache.create(caches.dir().resolve("overlay-" + UUID.randomUUID() + ".cache"),
                            device.size(), device.blockSize(), device.blockSize());
                }
                overlay = new Overlay(device, written);
                closeLast.addFirst(overlay);
                export = NbdExport.writable(name, overlay);
            } else {
                export = NbdExport.readOnly(name, device);
            }
            export = export.withDescription("lazyblock: " + src.description());
            server = NbdServer.builder().export(export).listen(address).platformReaders(platformReaders).start();
            Thread main = Thread.currentThread();
            hook = new Thread(() -> {
                stop.countDown();
                try {
                    // Let the serving thread close the server and print the statistics first.
                    done.await(NbdServer.DEFAULT_DRAIN_TIMEOUT.toSeconds() + 10, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }, "lazyblock-serve-shutdown");
            Runtime.getRuntime().addShutdownHook(hook);

            out.printf("serving %s: %,d bytes, %s, %s chunker, %s%n", src.description(), device.size(),
                    !writable ? "read-only" : keptOverlay == null ? "writable (copy-on-write overlay)"
                            : String.format("writable (overlay kept in %s; %,d bytes written by earlier runs)",
                            overlayDir, keptOverlay.restoredBytes()), kind.label(), "cache in " + caches.dir()
                            + (caches.persistent() ? String.format(" (kept; %,d bytes present from earlier runs)",
                            caches.restoredBytes()) : ""));
            if (!address.getAddress().isLoopbackAddress()) {
                out.println("warning: listening on " + address + ", beyond this machine; NBD has no authentication here");
            }
            if (metricsServer != null) {
                for (Chunker c : src.chunkers()) {
                    CacheGauges.register(metricsServer.registry(), c.toString(), c.cache());
                }
                out.println("metrics at http://" + metricsServer.address().getHostString() + ":"
                        + metricsServer.address().getPort() + "/metrics");
            }
            out.println("export '" + name + "' at " + server.uri(name));
            out.println("  nbdinfo " + server.uri(name));
            out.println("  qemu-img info -f raw " + server.uri(name));
            out.println("Ctrl-C or SIGTERM stops the server.");
            out.flush();
            if (toPrefetch != null) {
                long t0 = System.nanoTime();
                int chunks = toPrefetch.offsets().size();
                // Below the recorder and the overlay: a prefetch is neither a client's read nor a write.
                prefetched = toPrefetch.prefetch(src.device(), Math.max(1, prefetchParallel));
                prefetched.whenComplete((n, e) ->
                        log.info("prefetch of {} chunks from {}: {} read in {} ms{}", chunks, prefetch, n,
                                (System.nanoTime() - t0) / 1_000_000, e == null ? "" : ", failed: " + e));
            }
            started.countDown();
            stop.await();

            server.close();
            out.println();
            out.println("stopped. " + statistics(server.stats(), metrics, src.chunkers(), overlay));
            if (recorder != null) {
                WorkingSet ws = recorder.workingSet();
                ws.save(recordWorkingSet);
                out.printf("working set: %,d chunks read, saved to %s%n", ws.offsets().size(), recordWorkingSet);
            }
            if (exportLayer) {
                LayeredImage parent = (LayeredImage) src.device();
                Progress progress = Progress.onTerminal(System.err, "export layer", LayerExporter.writtenBytes(overlay));
                LayerExporter.Compression compression = ExportCommand.compression(compress, caches.dir());
                LayerExporter.Layer layer = LayerExporter.export(overlay, parent.header(), src.layer().store(),
                        LayeredImage.dirOf(src.layer().key()), caches.dir(), progress::add, compression);
                progress.finish();
                out.printf("exported layer %s: %,d blocks stored (%,d bytes%s), %,d zero, %,d unchanged; header %s%n",
                        layer.header().buildId(), layer.storedBlocks(), layer.diffBytes(),
                        compression.enabled() ? String.format(", %,d %s", layer.storedBytes(), compress) : "",
                        layer.zeroBlocks(), layer.unchangedBlocks(), src.layer().store().name() + "/" + layer.headerKey());
            }
            out.flush();
            return 0;
        } finally {
            started.countDown();
            for (AutoCloseable c : closeLast) {
                try {
                    c.close();
                } catch (Exception e) {
                    System.err.println("lazyblock serve: closing " + c + ": " + e);
                }
            }
            PersistentCache.Opened kept = overlayReleased;
            if (kept != null && !kept.awaitReleased(SAVE_TIMEOUT)) {
                System.err.println("lazyblock serve: writes still running after " + SAVE_TIMEOUT.toSeconds()
                        + " s; the overlay in " + overlayDir + " keeps what was flushed");
            }
            if (ownDir) {
                deleteTree(caches.dir());
            } else if (!caches.awaitSaved(SAVE_TIMEOUT)) {
                System.err.println("lazyblock serve: fetches still running after " + SAVE_TIMEOUT.toSeconds()
                        + " s; the cache in " + caches.dir() + " may not be saved (the next run starts it empty)");
            }
            done.countDown();
            if (hook != null) {
                try {
                    Runtime.getRuntime().removeShutdownHook(hook);
                } catch (IllegalStateException shuttingDown) {
                    // the hook is what stopped us
                }
            }
        }
    }

    /** A kept overlay, once open: awaited at stop so its last commit is on disk before exit. */
    private volatile PersistentCache.Opened overlayReleased;

    /**
     * What a kept overlay belongs to: the export over the image. Its journal also records the
     * image's version, so an overlay is never laid over other bytes than those it was written over.
     */
    static String overlayIdentity(String exportName, Source src) {
        return "overlay of export '" + exportName + "' over " + src.identity();
    }

    /**
     * What serve reads; for a layered image also where its header lives, to export a layer beside it.
     *
     * @param identity what names the image (its store and key)
     * @param version  what names its bytes (the store's version of the object, a layered image's
     *                 build id); null if the store tells none
     */
    record Source(Device device, String description, List<Chunker> chunkers, UpstreamProvider.StoreAndKey layer,
                  String identity, String version) {}

    static Source open(String image, boolean header, Caches caches, ChunkerKind kind, ChunkerOptions options,
                       List<AutoCloseable> closeLast) throws IOException {
        if (header) {
            UpstreamProvider.StoreAndKey sk = Upstreams.store(image);
            closeLast.add(sk.store());
            LayeredImage li = LayeredImage.open(sk.store(), sk.key(), kind, options, caches, caches.tier());
            closeLast.addFirst(li);
            List<Chunker> chunkers = li.chunkers().stream().filter(c -> c != null).toList();
            return new Source(li, "layered image " + li.header().buildId() + " (" + li.header().builds().size()
                    + " builds, " + li.header().mappings().size() + " mappings) from " + sk.store().name(), chunkers, sk,
                    sk.store().name() + "/" + sk.key(), "build " + li.header().buildId());
        }
        Upstream up = Upstreams.open(image);
        closeLast.add(up);
        long size = up.size();
        String version = up.version();
        SparseCache cache = caches.create(up.name(), version, size, SparseCache.DEFAULT_BLOCK_SIZE);
        ChunkTier tier = caches.tier();
        String description = up.name();
        Chunker c;
        try {
            if (tier != null && version != null) {
                // Keyed by name and version: hosts share the chunks of the same bytes, and a
                // replaced object starts a key of its own instead of meeting the old one's chunks.
                String key = Caches.tierKey(up.name(), version);
                if (tier.budget() != null) {
                    closeLast.add(tier.budget().pin(key)); // released after the chunker closes
                }
                c = FrameChunker.raw(up, key, cache, options, tier);
                description += " (chunks shared through the tier as " + key + ")";
            } else {
                if (tier != null) {
                    System.err.println("lazyblock: " + up.name() + " is read without the tier: its store tells no "
                            + "version (ETag, generation) to key shared chunks by");
                }
                c = kind.create(up, cache, options);
            }
        } catch (IOException | RuntimeException e) {
            cache.close();
            throw e;
        }
        closeLast.addFirst(c);
        return new Source(c, description, List.of(c), null, up.name(), version);
    }

    static boolean isHeader(String image) {
        String path = image.contains("://") ? URI.create(image).getPath() : image;
        return path != null && path.endsWith(".header");
    }

    /** The image's last path segment, without {@code .header}; "image" if that is not a usable name. */
    static String defaultExportName(String image) {
        String path = image;
        if (image.contains("://")) {
            try {
                path = URI.create(image).getPath();
            } catch (IllegalArgumentException e) {
                path = "";
            }
        }
        path = path == null ? "" : path;
        String last = path.substring(path.lastIndexOf('/') + 1);
        if (last.endsWith(".header")) {
            last = last.substring(0, last.length() - ".header".length());
        }
        try {
            return last.isEmpty() ? "image" : NbdExport.validateName(last);
        } catch (IllegalArgumentException e) {
            return "image";
        }
    }

    /** HOST:PORT, [IPv6]:PORT or :PORT (loopback). */
    static InetSocketAddress parseListen(String s) {
        int colon = s.lastIndexOf(':');
        if (colon < 0) {
            throw new IllegalArgumentException("--listen wants HOST:PORT, got '" + s + "'");
        }
        String host = s.substring(0, colon);
        int port;
        try {
            port = Integer.parseInt(s.substring(colon + 1));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--listen: bad port in '" + s + "'");
        }
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("--listen: port " + port + " is out of range");
        }
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        if (host.isEmpty()) {
            return new InetSocketAddress(InetAddress.getLoopbackAddress(), port);
        }
        InetSocketAddress a = new InetSocketAddress(host, port);
        if (a.isUnresolved()) {
            throw new IllegalArgumentException("--listen: cannot resolve host '" + host + "'");
        }
        return a;
    }

    static String statistics(NbdServer.Stats s, CountingMetrics metrics, List<Chunker> chunkers, Overlay overlay)
            throws IOException {
        CountingMetrics.Snapshot m = metrics.snapshot();
        StringBuilder b = new StringBuilder();
        b.append(String.format("NBD: %,d connections, %,d requests, %,d bytes read, %,d bytes written, %,d errors%n",
                s.connections(), s.requests(), s.bytesRead(), s.bytesWritten(), s.errors()));
        b.append(String.format("reads: %,d cache hits (%,d bytes), %,d misses (%,d bytes); remote: %,d requests, "
                        + "%,d bytes, %.1f ms average, %,d errors, %,d timeouts%n", m.hits(), m.hitBytes(), m.misses(),
                m.missBytes(), m.remoteRequests(), m.remoteBytes(),
                m.remoteRequests() == 0 ? 0.0 : m.remoteNanos() / 1e6 / m.remoteRequests(), m.fetchErrors(),
                m.fetchTimeouts()));
        if (m.tierHits() + m.tierMisses() > 0) {
            b.append(String.format("shared tier: %,d chunks (%,d bytes) read from it, %,d missed%n", m.tierHits(),
                    m.tierHitBytes(), m.tierMisses()));
        }
        for (Chunker c : chunkers) {
            SparseCache cache = c.cache();
            long present = cache.presence().cardinality() * cache.granularity();
            b.append(String.format("cache: %,d of %,d bytes present (%.1f%%), %,d bytes on disk, presence map %,d bytes%n",
                    Math.min(present, cache.size()), cache.size(),
                    cache.size() == 0 ? 100.0 : 100.0 * Math.min(present, cache.size()) / cache.size(),
                    cache.isClosed() ? 0 : cache.fileSize(), cache.presence().retainedBytes()));
        }
        if (overlay != null) {
            SparseCache w = overlay.cache();
            b.append(String.format("overlay: %,d blocks written (%,d bytes on disk)%n", w.presence().cardinality(),
                    w.isClosed() ? 0 : w.fileSize()));
        }
        return b.toString().stripTrailing();
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException ignored) {
                    // best effort: cache files are unlinked at creation anyway
                }
            });
        } catch (IOException ignored) {
            // best effort
        }
    }
}
