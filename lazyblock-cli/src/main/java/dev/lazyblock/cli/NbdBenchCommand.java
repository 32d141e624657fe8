package dev.lazyblock.cli;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.nbd.NbdExport;
import dev.lazyblock.nbd.NbdServer;
import dev.lazyblock.upstream.FileUpstream;
import dev.lazyblock.upstream.SimulatedUpstream;
import dev.lazyblock.upstream.SimulatedUpstream.LatencyModel;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code nbdcopy} of one image, to {@code null:}, from our server and from nbdkit's file plugin
 * serving the same file, alternating in the same run, beside a plain {@code dd} of our cache file
 * (the same bytes without a server); then 4 KiB random reads at queue depth 1 and 32 with fio's
 * nbd engine from both servers, beside fio on the cache file itself; then from our server over a
 * cold cache behind the NFS model.
 */
@Command(name = "nbd", mixinStandardHelpOptions = true,
        description = {"nbdcopy of a fully cached image from lazyblock's NBD server and from",
                "`nbdkit file` serving the same file, alternating in one run; then from a cold",
                "cache behind the NFS model (1 ms + 500 MB/s per request), per chunker.",
                "Beside them: dd of our cache file, and 4 KiB random-read IOPS at queue depth",
                "1 and 32 (fio's nbd engine) from both servers and from the cache file itself.",
                "Prints throughput and the ratio to nbdkit. Needs nbdcopy and nbdkit; fio for IOPS."},
        footer = {"", "Examples:", "  lazyblock bench nbd", "  lazyblock bench nbd --image-mib 256 --rounds 5 --no-cold",
                "  lazyblock bench nbd --no-cold --iops-seconds 10"})
final class NbdBenchCommand implements Callable<Integer> {
    private static final long PROCESS_TIMEOUT_S = 600;

    @Option(names = "--image-mib", defaultValue = "1024", description = "Image size in MiB (default ${DEFAULT-VALUE}).")
    long imageMib;

    @Option(names = "--rounds", defaultValue = "5", description = "Measured copies from each server (default ${DEFAULT-VALUE}).")
    int rounds;

    @Option(names = "--chunker", defaultValue = "request-first",
            description = "Chunker of the warm runs (default ${DEFAULT-VALUE}); the cold runs use every chunker.")
    String chunker;

    @Option(names = "--cold", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "Also copy from a cold cache behind the NFS model (default ${DEFAULT-VALUE}).")
    boolean cold;

    @Option(names = "--dir", description = "Where the image and caches go (default: the temp directory).")
    Path dir;

    @Option(names = "--virtual-readers", description = "Read the sockets on virtual threads, as the daemon does "
            + "(default: platform threads, as serve does).")
    boolean virtualReaders;

    @Option(names = "--iops", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "Also measure 4 KiB random-read IOPS with fio, if it is installed (default ${DEFAULT-VALUE}).")
    boolean iops;

    @Option(names = "--iops-seconds", defaultValue = "5",
            description = "Seconds of each fio run (default ${DEFAULT-VALUE}); rounds as --rounds, at most 3.")
    int iopsSeconds;

    @Override
    public Integer call() throws Exception {
        for (String tool : List.of("nbdcopy", "nbdkit")) {
            if (!onPath(tool)) {
                System.err.println("lazyblock bench nbd needs " + tool + ": apt-get install -y libnbd-bin nbdkit");
                return 2;
            }
        }
        if (imageMib <= 0 || rounds <= 0 || iopsSeconds <= 0) {
            System.err.println("--image-mib, --rounds and --iops-seconds must be positive");
            return 2;
        }
        ChunkerKind kind = ChunkerKind.parse(chunker);
        long size = imageMib << 20;
        Path work = Files.createTempDirectory(dir == null ? Path.of(System.getProperty("java.io.tmpdir")) : dir,
                "lazyblock-bench-nbd");
        Path image = work.resolve("image.raw");
        try {
            writeImage(image, size);
            readAll(image); // into the page cache, for nbdkit as for us
            System.out.printf("nbdcopy (%s) of a %,d MiB random image to null:, from lazyblock serve and from nbdkit"
                            + " (%s) serving the same file;%nboth on 127.0.0.1 TCP, %d rounds alternating, after two"
                            + " unmeasured copies from each; our server reads its sockets on %s threads."
                            + " Throughput in MiB/s.%n%n",
                    firstLine("nbdcopy", "--version"), imageMib, firstLine("nbdkit", "--version"), rounds,
                    virtualReaders ? "virtual" : "platform");
            double kit = warm(image, size, kind, work);
            if (cold) {
                cold(image, size, work, kit);
            }
        } finally {
            Files.deleteIfExists(image);
            try (var s = Files.list(work)) {
                for (Path p : s.toList()) {
                    Files.deleteIfExists(p);
                }
            }
            Files.deleteIfExists(work);
        }
        return 0;
    }

    /** Warm runs; returns nbdkit's median throughput. */
    private double warm(Path image, long size, ChunkerKind kind, Path work) throws Exception {
        try (FileUpstream up = new FileUpstream(image);
             Chunker c = kind.create(up, SparseCache.create(work.resolve("warm.cache"), size), ChunkerOptions.DEFAULTS);
             NbdServer ours = NbdServer.builder().export(NbdExport.readOnly("bench", c)).platformReaders(!virtualReaders)
                     .listen(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0)).start();
             Nbdkit kit = Nbdkit.start(image)) {
            long t0 = System.nanoTime();
            for (long pos = 0; pos < size; pos += 32 << 20) {
                c.slice(pos, Math.min(32 << 20, size - pos));
            }
            // A chunk is marked present once all of it has landed, which may follow the read by a moment.
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (!c.cache().isCached(0, size)) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("the cache is not full a minute after reading the whole image");
                }
                LockSupport.parkNanos(5_000_000);
            }
            System.out.printf("filled our cache (%s chunker) in %.2f s: %,d MiB%n%n", kind.label(),
                    (System.nanoTime() - t0) / 1e9, size >> 20);
            String oursUri = ours.uri("bench");
            for (int i = 0; i < 2; i++) { // page cache, JIT, socket buffers: unmeasured
                copy(oursUri);
                copy(kit.uri());
            }
            double[] o = new double[rounds];
            double[] k = new double[rounds];
            System.out.printf("%-6s %12s %12s %8s%n", "round", "lazyblock", "nbdkit", "ratio");
            for (int r = 0; r < rounds; r++) {
                if (r % 2 == 0) {
                    o[r] = mibPerSecond(size, copy(oursUri));
                    k[r] = mibPerSecond(size, copy(kit.uri()));
                } else {
                    k[r] = mibPerSecond(size, copy(kit.uri()));
                    o[r] = mibPerSecond(size, copy(oursUri));
                }
                System.out.printf("%-6d %,12.0f %,12.0f %8.2f%n", r + 1, o[r], k[r], o[r] / k[r]);
            }
            double om = median(o);
            double km = median(k);
            System.out.printf("%-6s %,12.0f %,12.0f %8.2f%n", "median", om, km, om / km);
            System.out.printf("%-6s %,12.0f %,12.0f %8.2f%n%n", "best", max(o), max(k), max(o) / max(k));
            NbdServer.Stats s = ours.stats();
            System.out.printf("our server: %,d connections, %,d requests, %,d MiB sent%n%n", s.connections(), s.requests(),
                    s.bytesRead() >> 20);
            Path cacheFile = openFile(work.resolve("warm.cache"));
            double[] d = new double[rounds];
            for (int r = 0; r < rounds; r++) {
                d[r] = mibPerSecond(size, dd(cacheFile));
            }
            double dm = median(d);
            System.out.printf("dd if=<our cache file> of=/dev/null bs=4M (the same bytes, no server, no socket): median"
                    + " %,.0f MiB/s over %d rounds;%nlazyblock's median is %.2f of it, nbdkit's %.2f%n%n", dm, rounds,
                    om / dm, km / dm);
            if (iops) {
                if (onPath("fio")) {
                    new IopsRun(iopsSeconds, Math.min(rounds, 3), size).print(oursUri, kit.uri(), cacheFile);
                } else {
                    System.out.println("IOPS: skipped, fio is not installed (apt-get install -y fio)\n");
                }
            }
            return km;
        }
    }

    private void cold(Path image, long size, Path work, double kitMedian) throws Exception {
        LatencyModel model = LatencyModel.NFS;
        System.out.printf("Cold cache behind the NFS model (%.0f ms to first byte + %.0f MB/s per request; requests in"
                        + " parallel do not share bandwidth), one copy per chunker, fresh cache each:%n%n",
                model.ttfbNanos() / 1e6, model.bytesPerSecond() / 1e6);
        System.out.printf("%-14s %10s %8s %14s %10s %10s%n", "chunker", "MiB/s", "s", "vs nbdkit warm", "requests",
                "remote MiB");
        for (ChunkerKind k : ChunkerKind.values()) {
            try (FileUpstream file = new FileUpstream(image);
                 SimulatedUpstream up = new SimulatedUpstream(file, model);
                 Chunker c = k.create(up, SparseCache.create(work.resolve("cold-" + k.label() + ".cache"), size),
                         ChunkerOptions.DEFAULTS);
                 NbdServer ours = NbdServer.builder().export(NbdExport.readOnly("bench", c)).platformReaders(!virtualReaders)
                         .listen(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0)).start()) {
                double seconds = copy(ours.uri("bench"));
                double rate = mibPerSecond(size, seconds);
                System.out.printf("%-14s %,10.0f %8.2f %14.2f %,10d %,10d%n", k.label(), rate, seconds, rate / kitMedian,
                        up.requestCount(), up.bytesServed() >> 20);
            }
        }
        System.out.println();
    }

    /**
     * A path another process can open the scratch cache's file by: the cache unlinks its file once
     * open, so this is our descriptor's entry under /proc.
     */
    private static Path openFile(Path created) throws IOException {
        String want = created.toAbsolutePath().toString();
        try (var fds = Files.list(Path.of("/proc/self/fd"))) {
            for (Path fd : fds.toList()) {
                try {
                    String target = Files.readSymbolicLink(fd).toString();
                    if (target.equals(want) || target.equals(want + " (deleted)")) {
                        return Path.of("/proc/" + ProcessHandle.current().pid() + "/fd/" + fd.getFileName());
                    }
                } catch (IOException | UnsupportedOperationException gone) {
                    // a descriptor closed while listing, or not a link
                }
            }
        }
        throw new IOException("no open descriptor of " + want + " under /proc/self/fd");
    }

    /** Runs dd of {@code file} to /dev/null in 4 MiB blocks; returns the seconds it took. */
    private static double dd(Path file) throws IOException, InterruptedException {
        return timed("dd", "if=" + file, "of=/dev/null", "bs=4M");
    }

    /** Runs nbdcopy URI null: and returns the seconds it took. */
    private static double copy(String uri) throws IOException, InterruptedException {
        return timed("nbdcopy", uri, "null:");
    }

    /** Runs {@code command} to its end and returns the seconds it took; fails if it fails. */
    static double timed(String... command) throws IOException, InterruptedException {
        long t0 = System.nanoTime();
        Process p = new ProcessBuilder(command).redirectErrorStream(true)
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
        byte[] out;
        try (InputStream in = p.getInputStream()) {
            out = in.readAllBytes();
        }
        if (!p.waitFor(PROCESS_TIMEOUT_S, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IOException(String.join(" ", command) + " did not finish in " + PROCESS_TIMEOUT_S + " s");
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        if (p.exitValue() != 0) {
            throw new IOException(String.join(" ", command) + " failed (" + p.exitValue() + "): "
                    + new String(out, StandardCharsets.UTF_8));
        }
        return seconds;
    }

    /** nbdkit's file plugin, read-only, on a free loopback port; stopped on close. */
    private record Nbdkit(Process process, int port) implements AutoCloseable {
        static Nbdkit start(Path image) throws IOException, InterruptedException {
            int port;
            try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
                port = s.getLocalPort();
            }
            Process p = new ProcessBuilder("nbdkit", "-f", "-r", "--exit-with-parent", "-i", "127.0.0.1",
                    "-p", Integer.toString(port), "file", image.toString())
                    .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (true) {
                try {
                    new Socket(InetAddress.getLoopbackAddress(), port).close();
                    return new Nbdkit(p, port);
                } catch (IOException notYet) {
                    if (!p.isAlive() || System.nanoTime() > deadline) {
                        p.destroyForcibly();
                        throw new IOException("nbdkit did not start listening on port " + port + " within 10 s");
                    }
                    LockSupport.parkNanos(20_000_000);
                }
            }
        }

        String uri() {
            return "nbd://127.0.0.1:" + port + "/";
        }

        @Override
        public void close() {
            process.destroy();
            try {
                if (!process.waitFor(10, TimeUnit.SECONDS)) {
                    process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
                }
            } catch (InterruptedException e) {
                process.destroyForcibly();
                Thread.currentThread().interrupt();
            }
        }
    }

    private static void writeImage(Path image, long size) throws IOException {
        SplittableRandom rnd = new SplittableRandom(1);
        byte[] mib = new byte[1 << 20];
        try (FileChannel out = FileChannel.open(image, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            for (long off = 0; off < size; off += mib.length) {
                rnd.nextBytes(mib);
                ByteBuffer b = ByteBuffer.wrap(mib, 0, (int) Math.min(mib.length, size - off));
                while (b.hasRemaining()) {
                    out.write(b, off + b.position());
                }
            }
        }
    }

    private static void readAll(Path image) throws IOException {
        try (FileChannel in = FileChannel.open(image)) {
            ByteBuffer b = ByteBuffer.allocateDirect(8 << 20);
            long pos = 0;
            while (true) {
                b.clear();
                int n = in.read(b, pos);
                if (n < 0) {
                    return;
                }
                pos += n;
            }
        }
    }

    private static double mibPerSecond(long bytes, double seconds) {
        return bytes / (double) (1 << 20) / seconds;
    }

    static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }

    private static double max(double[] v) {
        return Arrays.stream(v).max().orElse(0);
    }

    static boolean onPath(String tool) {
        for (String d : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            if (!d.isEmpty() && Files.isExecutable(Path.of(d, tool))) {
                return true;
            }
        }
        return false;
    }

    static String firstLine(String... command) {
        try {
            Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            p.waitFor(10, TimeUnit.SECONDS);
            return out.lines().findFirst().orElse(command[0]).strip();
        } catch (IOException | InterruptedException e) {
            return command[0];
        }
    }
}
