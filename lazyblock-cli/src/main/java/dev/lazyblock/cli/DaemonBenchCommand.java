package dev.lazyblock.cli;

import dev.lazyblock.daemon.ControlServer;
import dev.lazyblock.daemon.Daemon;
import dev.lazyblock.daemon.DaemonClient;
import dev.lazyblock.daemon.DaemonConfig;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.upstream.DirectoryStore;
import dev.lazyblock.upstream.SimulatedUpstream.LatencyModel;
import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.UpstreamProvider;
import dev.lazyblock.upstream.Upstreams;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Many sandboxes from one template in one daemon, behind the GCS model: what starting one more
 * sandbox costs (create-to-first-byte), what the store sends (against the shared working set),
 * how the misses' tail grows with the crowd, and what an idle sandbox holds (RSS, threads);
 * then create/delete cycles to show nothing grows.
 */
@Command(name = "daemon", mixinStandardHelpOptions = true,
        description = {"Sandboxes from one template in one lazyblockd, behind the GCS model (20 ms +",
                "100 MB/s per request). Sandboxes are created one after another through the",
                "control socket, as an orchestrator starts VMs; each then reads the template's",
                "boot set and a private random part over its own NBD socket while the next starts.",
                "Prints per row: create-to-first-byte p50/p99, bytes from the store against the",
                "working set, p99 miss latency against 1 sandbox, RSS and threads per idle",
                "sandbox; then create/delete cycles with fds, threads, RSS and heap before/after."},
        footer = {"", "Examples:", "  lazyblock bench daemon", "  lazyblock bench daemon --sandboxes 1,10 --cycles 100"})
final class DaemonBenchCommand implements Callable<Integer> {
    @Option(names = "--sandboxes", split = ",", defaultValue = "1,10,50,200",
            description = "Rows: sandboxes per run (default ${DEFAULT-VALUE}).")
    List<Integer> sandboxes;

    @Option(names = "--image-mib", defaultValue = "512", description = "Template size (default ${DEFAULT-VALUE}).")
    int imageMib;

    @Option(names = "--boot-mib", defaultValue = "128",
            description = "The boot set is spread over the template's first MiB (default ${DEFAULT-VALUE}).")
    int bootMib;

    @Option(names = "--boot-reads", defaultValue = "256", description = "Reads in the boot set (default ${DEFAULT-VALUE}).")
    int bootReads;

    @Option(names = "--private-reads", defaultValue = "16",
            description = "Random 4 KiB reads per sandbox past the boot region (default ${DEFAULT-VALUE}).")
    int privateReads;

    @Option(names = "--chunker", defaultValue = "request-first",
            description = "The daemon's chunker: request-first, streaming or full-fetch (default ${DEFAULT-VALUE}).")
    String chunker;

    @Option(names = "--cycles", defaultValue = "1000", description = "Create/read/delete cycles at the end (default ${DEFAULT-VALUE}).")
    int cycles;

    @Option(names = "--fetch-threads", defaultValue = "256",
            description = "The daemon's host-wide fetch bound (default ${DEFAULT-VALUE}).")
    int fetchThreads;

    @Option(names = "--piece-kib", defaultValue = "64",
            description = "The model's bodies arrive in pieces this large (default ${DEFAULT-VALUE}, a few TCP "
                    + "segments): with 4 KiB pieces the model's own wake-ups, a thousand per chunk, take the "
                    + "2 cores that the daemon is measured on.")
    int pieceKib;

    @Option(names = "--dir", description = "Work directory (default: the temp directory).")
    Path dir;

    @Option(names = "--think-us", paramLabel = "MICROS", defaultValue = "0",
            description = "Each sandbox's reader pauses this long after each read, as a booting guest computes "
                    + "between its reads (default ${DEFAULT-VALUE}: reads back to back, which keeps 2 cores saturated "
                    + "from ~20 sandboxes on).")
    long thinkMicros;

    static final int CHUNK = 4 << 20;
    /** A read slower than this waited on the store (a hit over NBD takes tens of µs). */
    static final long MISS_NANOS = 5_000_000L;

    record Read(long off, int len) {}

    /** One row's figures. */
    record Row(int sandboxes, double createP50, double createP99, double firstByteP50, double firstByteP99,
               long storeBytes, long storeRequests, long workingSet, double missP99, double readP99, long misses,
               double rssMibPerSandbox, double threadsPerSandbox, double heapKibPerSandbox, double fdsPerSandbox,
               double seconds) {}

    @Override
    public Integer call() throws Exception {
        PrintStream out = System.out;
        // One log line per create and delete is what a daemon's operator wants, not a benchmark's reader.
        if (org.slf4j.LoggerFactory.getLogger("dev.lazyblock.daemon") instanceof ch.qos.logback.classic.Logger l
                && System.getenv("LAZYBLOCK_LOG_LEVEL") == null) {
            l.setLevel(ch.qos.logback.classic.Level.WARN);
        }
        Path work = Files.createTempDirectory(dir == null ? Path.of(System.getProperty("java.io.tmpdir")) : dir,
                "lazyblock-bench-daemon-");
        try {
            long size = (long) imageMib << 20;
            Path raw = work.resolve("template.raw");
            writeRandom(raw, size, 1);
            Path storeDir = Files.createDirectories(work.resolve("store"));
            String headerKey;
            try (DirectoryStore ds = new DirectoryStore(storeDir)) {
                headerKey = LayerExporter.publishBase(raw, 4096, ds, "tpl").headerKey();
            }
            Files.delete(raw);
            String image = storeDir.resolve(headerKey).toString();
            List<Read> boot = bootSet(new Random(2), Math.min(size, (long) bootMib << 20), bootReads);
            out.printf("template: %,d MiB, boot set %d reads over the first %d MiB, %d private 4 KiB reads per "
                    + "sandbox; GCS model (%d ms + %d MB/s per request)%n", imageMib, bootReads, bootMib,
                    privateReads, LatencyModel.GCS.ttfbNanos() / 1_000_000,
                    LatencyModel.GCS.bytesPerSecond() / 1_000_000);
            row(work, image, size, boot, 2); // warm-up, not reported: class loading, JIT, the pools' first threads
            List<Row> rows = new ArrayList<>();
            for (int n : sandboxes) {
                Row r = row(work, image, size, boot, n);
                rows.add(r);
                out.printf("  %d sandboxes: create-to-first-byte p50 %.2f ms, store sent %.2fx the working set, "
                        + "miss p99 %.1f ms, %.2f MiB anonymous RSS per idle sandbox (%.1f s)%n", n, r.firstByteP50(),
                        (double) r.storeBytes() / r.workingSet(), r.missP99(), r.rssMibPerSandbox(), r.seconds());
                out.flush();
            }
            out.println();
            out.println(table(rows));
            if (cycles > 0) {
                out.println(cycles(work, image));
            }
            out.flush();
            return 0;
        } finally {
            deleteTree(work);
        }
    }

    static String table(List<Row> rows) {
        double missBase = rows.isEmpty() ? 0 : rows.getFirst().missP99();
        StringBuilder sb = new StringBuilder();
        sb.append("| sandboxes | create p50 / p99 ms | create-to-first-byte p50 / p99 ms | store bytes / working set "
                + "| store requests | miss p99 ms (vs first row) | read p99 ms | per idle sandbox: anonymous RSS "
                + "| heap | platform threads | fds |\n");
        sb.append("|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (Row r : rows) {
            sb.append(String.format("| %d | %.2f / %.2f | %.2f / %.2f | %,d / %,d MiB = %.2fx | %,d | %.1f (%.2fx) "
                            + "| %.1f | %.2f MiB | %.0f KiB | %.2f | %.1f |%n", r.sandboxes(), r.createP50(), r.createP99(),
                    r.firstByteP50(), r.firstByteP99(), r.storeBytes() >> 20, r.workingSet() >> 20,
                    (double) r.storeBytes() / r.workingSet(), r.storeRequests(), r.missP99(),
                    missBase == 0 ? 0 : r.missP99() / missBase, r.readP99(), r.rssMibPerSandbox(),
                    r.heapKibPerSandbox(), r.threadsPerSandbox(), r.fdsPerSandbox()));
        }
        return sb.toString();
    }

    private Row row(Path work, String image, long size, List<Read> boot, int n) throws Exception {
        Path state = work.resolve("state-" + n);
        ConcurrentLinkedQueue<TiersBenchCommand.ModelStore> made = new ConcurrentLinkedQueue<>();
        Daemon.Images images = new Daemon.Images() {
            @Override
            public UpstreamProvider.StoreAndKey store(String url) throws IOException {
                UpstreamProvider.StoreAndKey sk = Upstreams.store(url);
                TiersBenchCommand.ModelStore m = new TiersBenchCommand.ModelStore(sk.store(), LatencyModel.GCS,
                        pieceKib * 1024);
                made.add(m);
                return new UpstreamProvider.StoreAndKey(m, sk.key());
            }

            @Override
            public Upstream open(String url) throws IOException {
                throw new IOException("the daemon benchmark serves layered images only");
            }
        };
        long t0 = System.nanoTime();
        long[] create = new long[n];
        long[] firstByte = new long[n];
        ConcurrentLinkedQueue<long[]> readNanos = new ConcurrentLinkedQueue<>();
        TreeSet<Long> chunks = new TreeSet<>();
        boot.forEach(r -> touch(chunks, r));
        List<Thread> readers = new ArrayList<>();
        Row row;
        try (Daemon daemon = new Daemon(DaemonConfig.defaults(state).withMaxSandboxes(Math.max(n, 1))
                .withChunker(dev.lazyblock.chunker.ChunkerKind.parse(chunker)).withMaxFetchThreads(fetchThreads), null, images);
             ControlServer api = ControlServer.start(daemon, null, state.resolve("api.sock"), null)) {
            DaemonClient client = new DaemonClient(api.socket(), Duration.ofSeconds(120));
            gc();
            long anonBefore = rssAnonBytes();
            ConcurrentLinkedQueue<Throwable> failed = new ConcurrentLinkedQueue<>();
            for (int i = 0; i < n; i++) {
                String id = "sb" + i;
                List<Read> mine = privateSet(new Random(1000 + i), size, (long) bootMib << 20, privateReads);
                mine.forEach(r -> touch(chunks, r));
                long c0 = System.nanoTime();
                DaemonClient.Reply reply = client.post("/v1/sandboxes", "{\"id\":\"" + id + "\",\"image\":\""
                        + image.replace("\\", "\\\\").replace("\"", "\\\"") + "\"}");
                long c1 = System.nanoTime();
                if (reply.status() != 201) {
                    throw new IOException("create " + id + ": " + reply.status() + " " + reply.body());
                }
                NbdClient nbd = new NbdClient(state.resolve("sandboxes").resolve(id).resolve("nbd.sock"), id);
                ByteBuffer buf = ByteBuffer.allocateDirect(64 * 1024);
                Read first = boot.getFirst();
                nbd.read(first.off(), buf.clear().limit(first.len()));
                long c2 = System.nanoTime();
                create[i] = c1 - c0;
                firstByte[i] = c2 - c0;
                readers.add(Thread.ofVirtual().name("reader-" + id).start(() -> {
                    long[] lat = new long[boot.size() - 1 + mine.size()];
                    int k = 0;
                    try (nbd) {
                        for (Read r : boot.subList(1, boot.size())) {
                            long s0 = System.nanoTime();
                            nbd.read(r.off(), buf.clear().limit(r.len()));
                            lat[k++] = System.nanoTime() - s0;
                            think();
                        }
                        for (Read r : mine) {
                            long s0 = System.nanoTime();
                            nbd.read(r.off(), buf.clear().limit(r.len()));
                            lat[k++] = System.nanoTime() - s0;
                            think();
                        }
                    } catch (IOException e) {
                        failed.add(e);
                    }
                    readNanos.add(Arrays.copyOf(lat, k));
                }));
            }
            for (Thread t : readers) {
                t.join();
            }
            if (!failed.isEmpty()) {
                throw new IOException(failed.size() + " readers failed, the first: " + failed.peek(), failed.peek());
            }
            double seconds = (System.nanoTime() - t0) / 1e9;
            // What the idle sandboxes hold. Threads, heap and fds: the process with them open, less
            // the process once they are deleted (the shared build, its cache and the fetch threads
            // stay in both). Memory the JVM took from the OS is not given back on delete, so RSS is
            // its growth since before the first create: an upper bound, the host's fetch threads'
            // stacks and heap growth included; the mapped cache files are not anonymous memory.
            gc();
            long[] idle = {rssAnonBytes(), platformThreads(), heapUsed(), openFds()};
            long storeBytes = made.stream().mapToLong(TiersBenchCommand.ModelStore::bytes).sum();
            long storeRequests = made.stream().mapToLong(TiersBenchCommand.ModelStore::requests).sum();
            for (int i = 0; i < n; i++) {
                DaemonClient.Reply d = client.delete("/v1/sandboxes/sb" + i);
                if (d.status() != 204) {
                    throw new IOException("delete sb" + i + ": " + d.status() + " " + d.body());
                }
            }
            gc();
            long[] empty = {rssAnonBytes(), platformThreads(), heapUsed(), openFds()};
            long[] all = readNanos.stream().flatMapToLong(Arrays::stream).sorted().toArray();
            long[] misses = Arrays.stream(all).filter(x -> x >= MISS_NANOS).toArray();
            Arrays.sort(create);
            Arrays.sort(firstByte);
            row = new Row(n, ms(pct(create, 50)), ms(pct(create, 99)), ms(pct(firstByte, 50)), ms(pct(firstByte, 99)),
                    storeBytes, storeRequests, (long) chunks.size() * CHUNK, ms(pct(misses, 99)), ms(pct(all, 99)),
                    misses.length, (idle[0] - anonBefore) / 1048576.0 / n, (double) (idle[1] - empty[1]) / n,
                    Math.max(0, idle[2] - empty[2]) / 1024.0 / n, (double) (idle[3] - empty[3]) / n, seconds);
        }
        deleteTree(state);
        return row;
    }

    /** Create, read 4 KiB, delete, many times: what the process holds before and after. */
    private String cycles(Path work, String image) throws Exception {
        Path state = work.resolve("state-cycles");
        StringBuilder sb = new StringBuilder();
        try (Daemon daemon = new Daemon(DaemonConfig.defaults(state), null);
             ControlServer api = ControlServer.start(daemon, null, state.resolve("api.sock"), null)) {
            DaemonClient client = new DaemonClient(api.socket(), Duration.ofSeconds(120));
            ByteBuffer buf = ByteBuffer.allocateDirect(4096);
            int warm = Math.min(100, cycles);
            long[] before = null;
            long t0 = 0;
            for (int i = 0; i < warm + cycles; i++) {
                if (i == warm) {
                    gc();
                    before = new long[] {openFds(), platformThreads(), rssBytes(), heapUsed()};
                    t0 = System.nanoTime();
                }
                String id = "cy" + (i % 3);
                DaemonClient.Reply r = client.post("/v1/sandboxes", "{\"id\":\"" + id + "\",\"image\":\""
                        + image.replace("\\", "\\\\").replace("\"", "\\\"") + "\"}");
                if (r.status() != 201) {
                    throw new IOException("create " + id + ": " + r.status() + " " + r.body());
                }
                try (NbdClient nbd = new NbdClient(state.resolve("sandboxes").resolve(id).resolve("nbd.sock"),
                        id)) {
                    nbd.read((long) (i % 64) * 4096, buf.clear());
                }
                DaemonClient.Reply d = client.delete("/v1/sandboxes/" + id);
                if (d.status() != 204) {
                    throw new IOException("delete " + id + ": " + d.status() + " " + d.body());
                }
            }
            double perCycle = (System.nanoTime() - t0) / 1e6 / cycles;
            gc();
            long[] after = {openFds(), platformThreads(), rssBytes(), heapUsed()};
            sb.append(String.format("%,d create/read/delete cycles (after %d to warm up), %.2f ms each:%n%n", cycles,
                    warm, perCycle));
            sb.append("| | before | after |\n|---|---|---|\n");
            sb.append(String.format("| open fds | %d | %d |%n", before[0], after[0]));
            sb.append(String.format("| platform threads | %d | %d |%n", before[1], after[1]));
            sb.append(String.format("| RSS | %.1f MiB | %.1f MiB |%n", before[2] / 1048576.0, after[2] / 1048576.0));
            sb.append(String.format("| heap after GC | %.1f MiB | %.1f MiB |%n", before[3] / 1048576.0,
                    after[3] / 1048576.0));
        }
        deleteTree(state);
        return sb.toString();
    }

    private void think() {
        if (thinkMicros > 0) {
            java.util.concurrent.locks.LockSupport.parkNanos(thinkMicros * 1000);
        }
    }

    private static void touch(TreeSet<Long> chunks, Read r) {
        for (long c = r.off() / CHUNK; c <= (r.off() + r.len() - 1) / CHUNK; c++) {
            chunks.add(c);
        }
    }

    static List<Read> bootSet(Random rnd, long region, int n) {
        List<Read> reads = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int len = (1 + rnd.nextInt(16)) * 4096;
            long off = (long) rnd.nextInt((int) ((region - len) / 4096)) * 4096;
            reads.add(new Read(off, len));
        }
        return reads;
    }

    static List<Read> privateSet(Random rnd, long size, long from, int n) {
        List<Read> reads = new ArrayList<>();
        long blocks = (size - from) / 4096;
        for (int i = 0; i < n && blocks > 0; i++) {
            reads.add(new Read(from + (long) (rnd.nextDouble() * blocks) * 4096, 4096));
        }
        return reads;
    }

    private static void writeRandom(Path p, long size, long seed) throws IOException {
        SplittableRandom rnd = new SplittableRandom(seed);
        ByteBuffer b = ByteBuffer.allocateDirect(1 << 20);
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            for (long done = 0; done < size; done += b.capacity()) {
                b.clear();
                while (b.hasRemaining()) {
                    b.putLong(rnd.nextLong());
                }
                b.flip();
                while (b.hasRemaining()) {
                    ch.write(b);
                }
            }
        }
    }

    private static long pct(long[] sorted, int p) {
        if (sorted.length == 0) {
            return 0;
        }
        return sorted[Math.min(sorted.length - 1, (int) Math.ceil(p / 100.0 * sorted.length) - 1)];
    }

    private static double ms(long nanos) {
        return nanos / 1e6;
    }

    private static void gc() {
        for (int i = 0; i < 3; i++) {
            System.gc();
        }
    }

    static long heapUsed() {
        return ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
    }

    static int platformThreads() {
        return ManagementFactory.getThreadMXBean().getThreadCount();
    }

    static long openFds() throws IOException {
        try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
            return s.count();
        }
    }

    private static final Pattern RSS = Pattern.compile("VmRSS:\\s+(\\d+) kB");
    private static final Pattern RSS_ANON = Pattern.compile("RssAnon:\\s+(\\d+) kB");

    static long rssBytes() throws IOException {
        Matcher m = RSS.matcher(Files.readString(Path.of("/proc/self/status")));
        return m.find() ? Long.parseLong(m.group(1)) * 1024 : -1;
    }

    /** Private memory: heap, stacks, malloc; not the mapped cache files, which the page cache holds. */
    static long rssAnonBytes() throws IOException {
        Matcher m = RSS_ANON.matcher(Files.readString(Path.of("/proc/self/status")));
        return m.find() ? Long.parseLong(m.group(1)) * 1024 : -1;
    }

    private static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p)) {
            return;
        }
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(q);
            }
        }
    }
}
