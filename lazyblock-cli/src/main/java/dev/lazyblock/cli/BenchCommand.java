package dev.lazyblock.cli;

import dev.lazyblock.bench.MissProfile;
import dev.lazyblock.bench.RandomAccessModel;
import dev.lazyblock.bench.Reference;
import dev.lazyblock.bench.ScaleModel;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.upstream.SimulatedUpstream.LatencyModel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** The benchmark model of the design brief, printed beside the reference's published figures. */
@Command(name = "bench", mixinStandardHelpOptions = true, subcommands = {NbdBenchCommand.class, TiersBenchCommand.class, DaemonBenchCommand.class, DedupBenchCommand.class},
        description = {"Replays the reference's BenchmarkRandomAccess (GCS and NFS models x every chunker)",
                "and a scale run, and prints our figures beside the reference's and the model's limit."},
        footer = {"", "Examples:", "  lazyblock bench", "  lazyblock bench --only random --iterations 100",
                "  lazyblock bench --only scale --scale-image-gib 4 --scale-reads 2000",
                "  lazyblock bench --only uffd",
                "  lazyblock bench nbd        (nbdcopy from our NBD server beside nbdkit: see bench nbd --help)"})
final class BenchCommand implements Callable<Integer> {
    @Option(names = "--only", defaultValue = "all", description = "random, scale, uffd or all (default ${DEFAULT-VALUE}).")
    String only;

    @Option(names = "--iterations", defaultValue = "40", description = "Measured iterations per variant (default ${DEFAULT-VALUE}).")
    int iterations;

    @Option(names = "--warmup", defaultValue = "10", description = "Unmeasured iterations first (default ${DEFAULT-VALUE}).")
    int warmup;

    @Option(names = "--jit-warmup", defaultValue = "3000",
            description = "Iterations per chunker against a zero-latency store first, so the JIT has compiled the read path (default ${DEFAULT-VALUE}).")
    int jitWarmup;

    @Option(names = "--scale-image-gib", defaultValue = "16", description = "Scale run image size (default ${DEFAULT-VALUE}).")
    long scaleGib;

    @Option(names = "--scale-reads", defaultValue = "10000", description = "Scale run reads (default ${DEFAULT-VALUE}).")
    int scaleReads;

    @Option(names = "--scale-threads", defaultValue = "8", description = "Scale run reader threads (default ${DEFAULT-VALUE}).")
    int scaleThreads;

    @Option(names = "--uffd-image-mib", defaultValue = "256", description = "uffd run: memory image size (default ${DEFAULT-VALUE}).")
    long uffdImageMib;

    @Option(names = "--dir", description = "Where cache files go (default: the temp directory).")
    Path dir;

    @Override
    public Integer call() throws Exception {
        if (!List.of("all", "random", "scale", "uffd").contains(only)) {
            System.err.println("--only must be random, scale, uffd or all, not " + only);
            return 2;
        }
        Path work = Files.createTempDirectory(dir == null ? Path.of(System.getProperty("java.io.tmpdir")) : dir, "lazyblock-bench");
        try {
            if (only.equals("all") || only.equals("random")) {
                randomAccess(work);
            }
            if (only.equals("all") || only.equals("scale")) {
                scale(work);
            }
            if (only.equals("all") || only.equals("uffd")) {
                UffdBench.run(work, uffdImageMib, 4, 2500);
            }
        } finally {
            Files.deleteIfExists(work);
        }
        return 0;
    }

    private void randomAccess(Path work) throws Exception {
        System.out.printf("BenchmarkRandomAccess model: %d MiB image, %d KiB blocks, %d concurrent readers, fresh chunker%n"
                        + "per iteration, %d iterations (+%d warm-up, after %d JIT warm-up iterations at zero latency) per variant,%n"
                        + "offsets from seed %d.%n"
                        + "Times are µs per reader. ratio = ours / reference (< 1 is faster). limit = TTFB + 4 KiB / bandwidth;%n"
                        + "floor = a bare 4 KiB read of the simulated store on this machine (the limit plus timer overshoot),%n"
                        + "one reader alone; bare = the same 3 readers reading the same blocks straight from the store at once,%n"
                        + "no chunker (what the store gives them on these cores). One floor read and one bare iteration follow%n"
                        + "each measured iteration, so all three are taken in the same minutes of the host.%n"
                        + "Heap bytes allocated by all threads per iteration: setup = cache + chunker, reads = the 3 reads and%n"
                        + "their fetch until close.%n%n",
                RandomAccessModel.IMAGE >> 20, RandomAccessModel.BLOCK >> 10, RandomAccessModel.READERS,
                iterations, warmup, jitWarmup, RandomAccessModel.SEED);
        String head = String.format("%-4s %-14s %8s %8s %8s %8s %6s %8s %7s %8s %7s %8s %6s %8s %8s %8s %8s",
                "", "chunker", "avg µs", "p50 µs", "worst µs", "ref avg", "ratio", "limit", "x limit", "floor", "x floor",
                "bare", "x bare", "setup B", "reads B", "ref B/op", "req/iter");
        System.out.println(head);
        System.out.println("-".repeat(head.length()));
        try (RandomAccessModel model = new RandomAccessModel(work)) {
            for (ChunkerKind kind : ChunkerKind.values()) {
                model.warmUpJit(kind, jitWarmup);
            }
            for (String backend : List.of("GCS", "NFS")) {
                double limit = Reference.limitMicros(Reference.model(backend), RandomAccessModel.BLOCK);
                for (ChunkerKind kind : List.of(ChunkerKind.STREAMING, ChunkerKind.FULL_FETCH, ChunkerKind.REQUEST_FIRST)) {
                    RandomAccessModel.Result r = model.run(backend, kind, warmup, iterations);
                    long ref = Reference.avgMicros(backend, kind);
                    long refBytes = Reference.bytesPerOp(backend, kind);
                    System.out.printf("%-4s %-14s %,8.0f %,8.0f %,8.0f %8s %6s %,8.0f %7.2f %,8.0f %7.2f %,8.0f %6.2f %,8.0f %,8.0f %8s %8.1f%n",
                            backend, kind.label(), r.avgMicros(), r.p50Micros(), r.worstMicros(),
                            ref < 0 ? "-" : String.format("%,d", ref),
                            ref < 0 ? "-" : String.format("%.2f", r.avgMicros() / ref), limit, r.avgMicros() / limit,
                            r.floorMicros(), r.avgMicros() / r.floorMicros(), r.bareMicros(),
                            r.avgMicros() / r.bareMicros(),
                            r.setupBytes(), r.readBytes(),
                            refBytes < 0 ? "-" : String.format("%,d", refBytes), r.requestsPerIteration());
                }
            }
            missBreakdown(model);
        }
        System.out.println();
    }

    /**
     * A request-first run again per backend under a JFR recording of the chunker's miss and
     * fetch events (apart from the measured runs, so the recording does not weigh on them):
     * each reader's wait, stage by stage, against the floor.
     */
    private void missBreakdown(RandomAccessModel model) throws Exception {
        System.out.printf("%nWhere a request-first miss goes (JFR: dev.lazyblock.Miss paired with the dev.lazyblock.Fetch that%n"
                + "released it; mean µs per reader over a run of %d iterations apart from the one above). hand-over = the%n"
                + "reader's path until its request goes out (from its own thread: the simulated store honours interrupts);%n"
                + "queued = until a thread sends it (~0 on the reader's own); first byte and transfer = the store (the%n"
                + "model's sleeps plus their overshoot); release = lock and unpark; wake = until the reader is back in%n"
                + "its caller. A row marked * is the slowest 5%% of that backend's misses.%n%n", iterations);
        String head = String.format("%-4s %8s %8s %8s %8s %8s", "", "wait", "p50", "p90", "max", "floor")
                + MissProfile.STAGES.stream().map(st -> String.format(" %11s", st)).reduce("", String::concat)
                + String.format(" %7s", "pairs");
        System.out.println(head);
        System.out.println("-".repeat(head.length()));
        for (String backend : List.of("GCS", "NFS")) {
            double floor = model.floorMicros(backend, 200);
            MissProfile.Breakdown b;
            try (MissProfile profile = new MissProfile()) {
                profile.start();
                model.run(backend, ChunkerKind.REQUEST_FIRST, warmup, iterations);
                b = profile.stop();
            }
            StringBuilder row = new StringBuilder(String.format("%-4s %,8.0f %,8.0f %,8.0f %,8.0f %,8.0f", backend,
                    b.waitMicros(), b.p50Micros(), b.p90Micros(), b.maxMicros(), floor));
            for (double st : b.stageMicros()) {
                row.append(String.format(" %,11.1f", st));
            }
            row.append(String.format(" %7s", b.pairs() + (b.unpaired() > 0 ? "+" + b.unpaired() : "")));
            System.out.println(row);
            StringBuilder tail = new StringBuilder(String.format("%-4s %,8.0f %8s %8s %8s %8s", backend + "*",
                    b.tailWaitMicros(), "", "", "", ""));
            for (double st : b.tailStageMicros()) {
                tail.append(String.format(" %,11.1f", st));
            }
            tail.append(String.format(" %7d", b.tailPairs()));
            System.out.println(tail);
        }
    }

    private void scale(Path work) throws Exception {
        long image = scaleGib << 30;
        System.out.printf("Scale: %d GiB image, %,d random 4 KiB reads from %d threads, NFS model (1 ms + 500 MB/s),%n"
                + "one chunker per variant over a fresh 4 KiB-granularity cache. Times are µs per read.%n%n",
                scaleGib, scaleReads, scaleThreads);
        String head = String.format("%-14s %7s %8s %8s %8s %8s %12s %10s %12s %8s %10s",
                "chunker", "wall s", "avg µs", "p50 µs", "p99 µs", "B/read", "map bytes", "blocks", "file bytes",
                "requests", "remote MiB");
        System.out.println(head);
        System.out.println("-".repeat(head.length()));
        for (ChunkerKind kind : List.of(ChunkerKind.FULL_FETCH, ChunkerKind.STREAMING, ChunkerKind.REQUEST_FIRST)) {
            ScaleModel.Result r = ScaleModel.run(work, LatencyModel.NFS, kind, image, scaleReads, scaleThreads);
            System.out.printf("%-14s %7.1f %,8.0f %,8.0f %,8.0f %,8.0f %,12d %,10d %,12d %,8d %,10d%n", kind.label(),
                    r.wallSeconds(), r.avgMicros(), r.p50Micros(), r.p99Micros(), r.bytesPerRead(), r.presenceMapBytes(),
                    r.presentBlocks(), r.cacheFileBytes(), r.remoteRequests(), r.remoteBytes() >> 20);
        }
        System.out.println();
    }
}
