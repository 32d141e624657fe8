package dev.lazyblock.bench;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.uffd.PageFaultHandler;
import dev.lazyblock.device.WorkingSet;
import dev.lazyblock.upstream.FileUpstream;
import dev.lazyblock.upstream.SimulatedUpstream;
import dev.lazyblock.upstream.SimulatedUpstream.LatencyModel;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Guest-memory faults end to end: a fake VMM (the C program the uffd tests use, compiled here
 * with gcc) registers its memory with userfaultfd and touches random pages from several threads,
 * timing each page's first touch; {@link PageFaultHandler} serves them from a memory image
 * behind a latency model through a request-first chunker. Run cold, or with the working set a
 * previous run recorded prefetched from the moment the handler starts.
 */
public final class UffdModel {
    public static final int PAGE = 4096;
    private static final Pattern LATENCY = Pattern.compile(
            "latency_ns n=(\\d+) mean=(\\d+) p50=(\\d+) p99=(\\d+) max=(\\d+)");

    /** One run: fault latencies in µs (first touch of a page, as the guest sees it). */
    public record Result(long faults, double meanMicros, double p50Micros, double p99Micros, double maxMicros,
                         long fromCache, long fetched, long remoteRequests, WorkingSet recorded) {}

    private UffdModel() {}

    /** Compiles the fake VMM from the project's sources into {@code work}. */
    public static Path compileFakeVmm(Path projectRoot, Path work) throws IOException, InterruptedException {
        Path src = projectRoot.resolve("lazyblock-uffd/src/test/c/fake_vmm.c");
        if (!Files.exists(src)) {
            throw new IOException("the fake VMM's source is not at " + src + ": run from the project root");
        }
        Path bin = work.resolve("fake_vmm");
        Process cc = new ProcessBuilder("gcc", "-O2", "-pthread", "-o", bin.toString(), src.toString())
                .redirectErrorStream(true).start();
        String out = new String(cc.getInputStream().readAllBytes());
        if (!cc.waitFor(60, TimeUnit.SECONDS) || cc.exitValue() != 0) {
            throw new IOException("gcc could not build the fake VMM: " + out);
        }
        return bin;
    }

    public static Result run(Path work, Path fakeVmm, Path image, LatencyModel model, WorkingSet prefetch, int threads,
                             int touchesPerThread, long seed) throws Exception {
        long size = Files.size(image);
        Path socket = work.resolve("uffd-" + System.nanoTime() + ".sock");
        try (SimulatedUpstream up = new SimulatedUpstream(new FileUpstream(image), model);
             Chunker memory = ChunkerKind.REQUEST_FIRST.create(up,
                     SparseCache.create(work.resolve("memory-" + System.nanoTime() + ".cache"), size),
                     ChunkerOptions.DEFAULTS)) {
            PageFaultHandler handler = new PageFaultHandler(memory, socket);
            CompletableFuture<PageFaultHandler.Stats> served = new CompletableFuture<>();
            Thread serving = Thread.ofPlatform().name("bench-uffd").start(() -> {
                try {
                    served.complete(handler.serve(Duration.ofSeconds(30)));
                } catch (Throwable t) {
                    served.completeExceptionally(t);
                }
            });
            if (prefetch != null) {
                prefetch.prefetch(memory, 16); // races the faults, as on a real resume
            }
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (!Files.exists(socket)) {
                if (System.nanoTime() > deadline) {
                    throw new IOException("the handler did not open " + socket);
                }
                Thread.onSpinWait();
            }
            Process vmm = new ProcessBuilder(fakeVmm.toString(), socket.toString(), image.toString(), Long.toString(size),
                    Integer.toString(threads), Integer.toString(touchesPerThread), Long.toString(seed), "-1", "1")
                    .redirectErrorStream(true).start();
            try {
                if (!vmm.waitFor(10, TimeUnit.MINUTES)) {
                    throw new IOException("the fake VMM did not finish in 10 minutes");
                }
                String out = new String(vmm.getInputStream().readAllBytes());
                if (vmm.exitValue() != 0) {
                    throw new IOException("the fake VMM failed (exit " + vmm.exitValue() + "): " + out);
                }
                Matcher m = LATENCY.matcher(out);
                if (!m.find()) {
                    throw new IOException("the fake VMM printed no latencies: " + out);
                }
                PageFaultHandler.Stats stats = served.get(30, TimeUnit.SECONDS);
                return new Result(Long.parseLong(m.group(1)), Long.parseLong(m.group(2)) / 1000.0,
                        Long.parseLong(m.group(3)) / 1000.0, Long.parseLong(m.group(4)) / 1000.0,
                        Long.parseLong(m.group(5)) / 1000.0, stats.fromCache(), stats.copies() - stats.fromCache(),
                        up.requestCount(), handler.workingSet(PAGE));
            } finally {
                if (vmm.isAlive()) {
                    vmm.destroyForcibly();
                }
                handler.stop();
                serving.join(10_000);
            }
        }
    }
}
