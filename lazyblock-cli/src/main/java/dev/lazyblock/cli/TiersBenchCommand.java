package dev.lazyblock.cli;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.ChunkTier;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.device.LayerHeader;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.frame.FrameCodec;
import dev.lazyblock.frame.FrameCodecs;
import dev.lazyblock.frame.FrameTable;
import dev.lazyblock.upstream.DirectoryStore;
import dev.lazyblock.upstream.ObjectStore;
import dev.lazyblock.upstream.SimulatedUpstream;
import dev.lazyblock.upstream.SimulatedUpstream.LatencyModel;
import dev.lazyblock.upstream.Upstream;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Storage-side costs of a layer: its compressed size per codec, decompression throughput per
 * core, and random 4 KiB reads behind the GCS model, uncompressed against zstd and LZ4, cold
 * and through a warm shared tier (a second host).
 */
@Command(name = "tiers", mixinStandardHelpOptions = true,
        description = {"Compressed size per codec, decompression MB/s per core, and the time of",
                "random 4 KiB reads behind the GCS model (20 ms + 100 MB/s per request):",
                "uncompressed, zstd, LZ4, and a second host through a warm shared tier.",
                "Without --image, builds an ext4 root image with mkfs.ext4 -d from real files."},
        footer = {"", "Examples:", "  lazyblock bench tiers",
                "  lazyblock bench tiers --image rootfs.ext4 --reads 10000"})
final class TiersBenchCommand implements Callable<Integer> {
    @Option(names = "--image", paramLabel = "FILE", description = "A raw image (default: build an ext4 root image).")
    Path image;

    @Option(names = "--image-mib", defaultValue = "1024", description = "Size of the built image (default ${DEFAULT-VALUE}).")
    int imageMib;

    @Option(names = "--rootfs-from", split = ",", paramLabel = "DIR",
            defaultValue = "/usr/bin,/usr/sbin,/usr/lib/python3.11,/usr/share/doc,/usr/share/man,/usr/share/locale,"
                    + "/usr/share/perl,/usr/share/i18n,/usr/share/zoneinfo",
            description = "Directories copied into the built image, while they fit in 85% of it.")
    List<Path> rootfsFrom;

    @Option(names = "--reads", defaultValue = "10000", description = "Random 4 KiB reads per row (default ${DEFAULT-VALUE}).")
    int reads;

    @Option(names = "--threads", defaultValue = "8", description = "Reader threads (default ${DEFAULT-VALUE}).")
    int threads;

    @Option(names = "--frame-kib", defaultValue = "2048",
            description = "Uncompressed KiB per frame (default ${DEFAULT-VALUE}).")
    int frameKib;

    @Option(names = "--dir", description = "Work directory (default: the temp directory).")
    Path dir;

    static final int BLOCK = 4096;

    /**
     * A store whose data objects (diffs and content-addressed chunks: everything but headers) answer through
     * the latency model; counts requests and bytes. With {@link LatencyModel#NONE} it only counts.
     */
    static final class ModelStore implements ObjectStore {
        final ObjectStore inner;
        final LatencyModel model;
        final AtomicLong requests = new AtomicLong();
        final AtomicLong bytes = new AtomicLong();
        final List<SimulatedUpstream> opened = new ArrayList<>();

        final int pieceSize;

        ModelStore(ObjectStore inner, LatencyModel model) {
            this(inner, model, SimulatedUpstream.DEFAULT_PIECE_SIZE);
        }

        /** {@code pieceSize}: how finely a streamed body arrives (see {@link SimulatedUpstream}). */
        ModelStore(ObjectStore inner, LatencyModel model, int pieceSize) {
            this.inner = inner;
            this.model = model;
            this.pieceSize = pieceSize;
        }

        @Override
        public String name() {
            return model == LatencyModel.NONE ? inner.name() : inner.name() + " (GCS model)";
        }

        @Override
        public synchronized Upstream open(String key) throws IOException {
            Upstream u = inner.open(key);
            if (key.endsWith(".header")) {
                return u;
            }
            SimulatedUpstream s = new SimulatedUpstream(u, model, pieceSize);
            opened.add(s);
            return s;
        }

        synchronized long requests() {
            return opened.stream().mapToLong(SimulatedUpstream::requestCount).sum();
        }

        synchronized long bytes() {
            return opened.stream().mapToLong(SimulatedUpstream::bytesServed).sum();
        }

        @Override
        public void put(String key, Path file) throws IOException {
            inner.put(key, file);
        }

        @Override
        public void put(String key, byte[] b) throws IOException {
            inner.put(key, b);
        }

        @Override
        public boolean exists(String key) throws IOException {
            return inner.exists(key);
        }

        @Override
        public void delete(String key) throws IOException {
            inner.delete(key);
        }

        @Override
        public void close() throws IOException {
            inner.close();
        }
    }

    /** Reads slower than this waited on a fetch (a hit from the local cache takes a few µs). */
    static final long MISS_MICROS = 100;

    record Row(String name, double seconds, double avgMicros, double p50Micros, double p99Micros, long misses,
               double missMicros, long requests, long bytes, String note) {}

    @Override
    public Integer call() throws Exception {
        Path work = Files.createTempDirectory(dir != null ? Files.createDirectories(dir)
                : Path.of(System.getProperty("java.io.tmpdir")), "lazyblock-bench-tiers-");
        try {
            Path img = image != null ? image : buildRootfs(work);
            long size = Files.size(img);
            System.out.printf("image: %s, %,d bytes%n%n", image != null ? img : "ext4 built by mkfs.ext4 -d from "
                    + describeSources(), size);
            DirectoryStore store = new DirectoryStore(work.resolve("store"));
            String[] codecs = {"none", "lz4", "zstd"};
            LayerExporter.Layer[] layers = new LayerExporter.Layer[codecs.length];
            System.out.printf("frames of %,d KiB%n%n", frameKib);
            System.out.println("| codec | stored bytes | % of image | ratio | compress s (" + Runtime.getRuntime()
                    .availableProcessors() + " threads) | decompress MB/s per core |");
            System.out.println("|---|---|---|---|---|---|");
            for (int i = 0; i < codecs.length; i++) {
                FrameCodec codec = FrameCodecs.byName(codecs[i]);
                long t0 = System.nanoTime();
                LayerExporter.Compression c = ExportCommand.compression(codecs[i], work, frameKib);
                layers[i] = LayerExporter.publishBase(img, BLOCK, store, codecs[i], n -> { },
                        c.enabled() ? new LayerExporter.Compression(c.codec(), c.frameSize(), c.threads(), work) : c);
                double secs = (System.nanoTime() - t0) / 1e9;
                long stored = layers[i].storedBytes();
                String mbps = "-";
                LayerHeader.Build b = layers[i].header().builds().getFirst();
                if (b.compressed()) {
                    mbps = String.format("%,.0f", decompressMBps(work.resolve("store").resolve(layers[i].diffKey()),
                            b.frames(), codec));
                }
                System.out.printf("| %s | %,d | %.1f%% | %.2fx | %.1f | %s |%n", codecs[i], stored, 100.0 * stored / size,
                        (double) size / stored, secs, mbps);
            }
            System.out.println();

            long[] offsets = new long[reads];
            Random r = new Random(42);
            for (int i = 0; i < reads; i++) {
                offsets[i] = (long) r.nextInt((int) (size / BLOCK)) * BLOCK;
            }
            List<Row> rows = new ArrayList<>();
            for (int i = 0; i < codecs.length; i++) {
                rows.add(run(codecs[i] + ", cold", store, layers[i], offsets, work, null, ""));
            }
            for (int i = 0; i < codecs.length; i++) {
                Path tierDir = work.resolve("tier-" + codecs[i]);
                try (ChunkTier tier = new ChunkTier(tierDir, 4096)) {
                    run("(fill)", store, layers[i], offsets, work, tier, "");
                    tier.awaitWrites(600_000);
                    double tierMicros = tierReadMicros(tier, layers[i]);
                    rows.add(run(codecs[i] + ", second host, warm tier", store, layers[i], offsets, work, tier,
                            String.format("tier's own read of one %s: %,.0f µs", codecs[i].equals("none")
                                    ? "4 MiB chunk" : frameKib + " KiB frame", tierMicros)));
                }
            }
            System.out.printf("%,d random 4 KiB reads, %d threads, offsets from seed 42 shared by every row; store behind "
                    + "the GCS model (20 ms + 100 MB/s per request); fresh local cache per row%n%n", reads, threads);
            System.out.println("| row | total s | avg µs per read | p50 µs | p99 µs | reads that waited (> 100 µs) "
                    + "| their avg µs | bucket requests | bucket MiB | note |");
            System.out.println("|---|---|---|---|---|---|---|---|---|---|");
            for (Row row : rows) {
                System.out.printf("| %s | %.2f | %,.0f | %,.0f | %,.0f | %,d | %,.0f | %,d | %.1f | %s |%n", row.name(),
                        row.seconds(), row.avgMicros(), row.p50Micros(), row.p99Micros(), row.misses(), row.missMicros(),
                        row.requests(), row.bytes() / 1048576.0, row.note());
            }
            return 0;
        } finally {
            deleteTree(work);
        }
    }

    private Row run(String name, DirectoryStore store, LayerExporter.Layer layer, long[] offsets, Path work, ChunkTier tier,
                    String note) throws Exception {
        ModelStore gcs = new ModelStore(store, LatencyModel.GCS);
        Path caches = Files.createDirectories(work.resolve("caches-" + UUID.randomUUID()));
        long[] micros = new long[offsets.length];
        long t0;
        long t1;
        try (LayeredImage img = LayeredImage.open(gcs, layer.headerKey(), ChunkerKind.REQUEST_FIRST,
                ChunkerOptions.DEFAULTS, (id, sz, bs) -> SparseCache.create(caches.resolve(UUID.randomUUID() + ".c"), sz,
                        bs, bs), tier)) {
            AtomicInteger next = new AtomicInteger();
            ConcurrentLinkedQueue<Throwable> errors = new ConcurrentLinkedQueue<>();
            List<Thread> ts = new ArrayList<>();
            t0 = System.nanoTime();
            for (int t = 0; t < threads; t++) {
                ts.add(Thread.ofPlatform().start(() -> {
                    try (Arena arena = Arena.ofConfined()) {
                        MemorySegment buf = arena.allocate(BLOCK);
                        for (int i; (i = next.getAndIncrement()) < offsets.length; ) {
                            long s = System.nanoTime();
                            img.readAt(buf, offsets[i]);
                            micros[i] = (System.nanoTime() - s) / 1000;
                        }
                    } catch (Throwable e) {
                        errors.add(e);
                    }
                }));
            }
            for (Thread t : ts) {
                t.join();
            }
            t1 = System.nanoTime();
            if (!errors.isEmpty()) {
                throw new IOException("a read failed: " + errors.peek(), errors.peek());
            }
        } finally {
            deleteTree(caches);
        }
        long[] sorted = micros.clone();
        Arrays.sort(sorted);
        long[] slow = Arrays.stream(micros).filter(m -> m > MISS_MICROS).toArray();
        return new Row(name, (t1 - t0) / 1e9, Arrays.stream(micros).average().orElse(0), sorted[sorted.length / 2],
                sorted[(int) (sorted.length * 0.99)], slow.length, Arrays.stream(slow).average().orElse(0),
                gcs.requests(), gcs.bytes(), note);
    }

    /** Single-threaded decompression of every frame (after one pass to warm the JIT): uncompressed MB/s. */
    private static double decompressMBps(Path stored, FrameTable t, FrameCodec codec) throws IOException {
        byte[] all = Files.readAllBytes(stored);
        double best = 0;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment src = arena.allocate(all.length);
            MemorySegment.copy(MemorySegment.ofArray(all), 0, src, 0, all.length);
            MemorySegment dst = arena.allocate(t.frameSize());
            for (int pass = 0; pass < 3; pass++) {
                long t0 = System.nanoTime();
                for (int f = 0; f < t.frames(); f++) {
                    codec.decompress(src.asSlice(t.compressedOffset(f), t.compressedSize(f)),
                            dst.asSlice(0, t.uncompressedSize(f)));
                }
                best = Math.max(best, t.size() / ((System.nanoTime() - t0) / 1e9) / 1e6);
            }
        }
        return best;
    }

    /** The tier's own latency: reading each of a build's tier files once, on average. */
    private static double tierReadMicros(ChunkTier tier, LayerExporter.Layer layer) {
        LayerHeader.Build b = layer.header().builds().getFirst();
        String build = b.id().toString();
        int n = b.compressed() ? b.frames().frames() : (int) ((b.size() + ChunkerOptions.DEFAULT_CHUNK_SIZE - 1)
                / ChunkerOptions.DEFAULT_CHUNK_SIZE);
        long total = 0;
        int count = 0;
        try (Arena arena = Arena.ofConfined()) {
            for (int i = 0; i < n; i++) {
                long len = b.compressed() ? b.frames().compressedSize(i)
                        : Math.min(ChunkerOptions.DEFAULT_CHUNK_SIZE, b.size() - (long) i * ChunkerOptions.DEFAULT_CHUNK_SIZE);
                MemorySegment dst = arena.allocate(len);
                long t0 = System.nanoTime();
                if (tier.read(build, i, dst)) {
                    total += System.nanoTime() - t0;
                    count++;
                }
            }
        }
        return count == 0 ? 0 : total / 1000.0 / count;
    }

    private String describeSources() {
        return rootfsFrom.stream().filter(Files::isDirectory).map(Path::toString).reduce((a, b) -> a + ", " + b)
                .orElse("(nothing)");
    }

    /** An ext4 image of real files: the source directories hard-linked (or copied) into a staging tree, then mkfs.ext4 -d. */
    private Path buildRootfs(Path work) throws Exception {
        Path stage = Files.createDirectories(work.resolve("rootfs"));
        long budget = (long) imageMib * 85 / 100 << 20;
        long used = 0;
        List<Path> taken = new ArrayList<>();
        for (Path src : rootfsFrom) {
            if (!Files.isDirectory(src)) {
                continue;
            }
            long du = duBytes(src);
            if (used + du > budget) {
                continue;
            }
            Path dst = stage.resolve(src.toString().substring(1).replace('/', '_'));
            if (exec(List.of("cp", "-al", src.toString(), dst.toString())) != 0) {
                deleteTree(dst);
                if (exec(List.of("cp", "-a", src.toString(), dst.toString())) != 0) {
                    throw new IOException("cannot copy " + src + " into the staging tree");
                }
            }
            used += du;
            taken.add(src);
        }
        rootfsFrom = taken;
        Path img = work.resolve("rootfs.ext4");
        if (exec(List.of("mkfs.ext4", "-q", "-F", "-d", stage.toString(), img.toString(), imageMib + "M")) != 0) {
            throw new IOException("mkfs.ext4 -d failed (is e2fsprogs installed? bin/install-tools)");
        }
        deleteTree(stage);
        System.out.printf("built %s: %,d MiB of files in a %,d MiB ext4 image%n", img, used >> 20, imageMib);
        return img;
    }

    private static long duBytes(Path p) throws Exception {
        Process pr = new ProcessBuilder("du", "-sb", p.toString()).redirectErrorStream(false).start();
        String out = new String(pr.getInputStream().readAllBytes()).trim();
        pr.waitFor();
        return Long.parseLong(out.split("\\s+")[0]);
    }

    private static int exec(List<String> cmd) throws Exception {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD)
                .start();
        return p.waitFor();
    }

    static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p)) {
            return;
        }
        try (var s = Files.walk(p)) {
            for (Path q : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(q);
            }
        }
    }
}
