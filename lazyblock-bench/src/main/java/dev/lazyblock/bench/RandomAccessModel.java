package dev.lazyblock.bench;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.upstream.SimulatedUpstream;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/**
 * The reference's BenchmarkRandomAccess, replayed: a 4 MiB image (one chunk), 4 KiB blocks, a
 * fresh chunker over a fresh cache per iteration, 3 concurrent readers each
 * {@code slice(randomBlock * 4096, 4096)}, offsets drawn once from a fixed seed and shared by
 * every variant, behind the simulated GCS or NFS model.
 */
public final class RandomAccessModel implements AutoCloseable {
    public static final int IMAGE = 4 << 20;
    public static final int BLOCK = 4096;
    public static final int READERS = 3;
    public static final long SEED = 42;

    private final byte[] image = new byte[IMAGE];
    private final Path dir;
    private final ExecutorService readers = Executors.newFixedThreadPool(READERS,
            Thread.ofPlatform().daemon().name("bench-reader-", 0).factory());
    private final CyclicBarrier start = new CyclicBarrier(READERS);

    /**
     * What one variant measured. Times in µs per reader. Bytes are heap allocated by all threads
     * per iteration: {@code setupBytes} to create the cache and chunker, {@code readBytes} from
     * the readers' start until the chunker is closed (3 reads, the fetch, and the harness's own
     * task hand-off). {@code bareMicros}: the same three readers reading the same blocks straight
     * from a store of the same model, no chunker, one such iteration after each measured one (see
     * {@link #bareIteration}). {@code floorMicros}: one bare 4 KiB read of that store alone after
     * each measured iteration (see {@link #floorMicros}), so the floor is taken in the same minutes
     * of the host as the figures set against it.
     */
    public record Result(String backend, ChunkerKind kind, int iterations, double avgMicros, double p50Micros,
                         double worstMicros, double setupBytes, double readBytes, double requestsPerIteration,
                         double bareMicros, double floorMicros) {}

    public RandomAccessModel(Path dir) {
        this.dir = dir;
        new SplittableRandom(SEED).nextBytes(image);
    }

    /** Block offsets for each iteration's readers, the same for every variant. */
    public static long[][] offsets(int iterations) {
        SplittableRandom rnd = new SplittableRandom(SEED);
        long[][] offs = new long[iterations][READERS];
        for (long[] it : offs) {
            for (int r = 0; r < READERS; r++) {
                it[r] = (long) rnd.nextInt(IMAGE / BLOCK) * BLOCK;
            }
        }
        return offs;
    }

    /** The model's 4 MiB image behind the backend's latency model. */
    public SimulatedUpstream upstream(String backend) {
        return new SimulatedUpstream(image, Reference.model(backend));
    }

    /**
     * Iterations against a zero-latency store before any measured one, so the read path is
     * compiled (C2) as in a long-running server, not interpreted: a few modelled iterations
     * alone run it a few dozen times, far below the JIT's thresholds.
     */
    public void warmUpJit(ChunkerKind kind, int iterations) throws Exception {
        long[][] offs = offsets(iterations);
        try (SimulatedUpstream up = new SimulatedUpstream(image, SimulatedUpstream.LatencyModel.NONE)) {
            for (int i = 0; i < iterations; i++) {
                iteration(up, kind, offs[i], i);
            }
        }
    }

    public Result run(String backend, ChunkerKind kind, int warmup, int iterations) throws Exception {
        long[][] offs = offsets(warmup + iterations);
        try (SimulatedUpstream up = upstream(backend); SimulatedUpstream bareStore = upstream(backend)) {
            long[] all = new long[iterations * READERS];
            double sum = 0;
            double bare = 0;
            double floor = 0;
            java.nio.ByteBuffer one = java.nio.ByteBuffer.allocateDirect(BLOCK);
            double worst = 0;
            long setup = 0;
            long reads = 0;
            long[] alloc = new long[2];
            for (int i = 0; i < warmup + iterations; i++) {
                if (i == warmup) {
                    up.resetCounters();
                }
                long[] micros = iteration(up, kind, offs[i], i, alloc);
                long[] bareMicros = bareIteration(bareStore, offs[i]);
                long f0 = System.nanoTime();
                bareStore.readFully(offs[i][0], one.clear());
                long floorNanos = System.nanoTime() - f0;
                if (i >= warmup) {
                    floor += floorNanos / 1000.0;
                    for (int r = 0; r < READERS; r++) {
                        all[(i - warmup) * READERS + r] = micros[r];
                        sum += micros[r];
                        bare += bareMicros[r];
                        worst = Math.max(worst, micros[r]);
                    }
                    setup += alloc[0];
                    reads += alloc[1];
                }
            }
            java.util.Arrays.sort(all);
            int n = iterations * READERS;
            return new Result(backend, kind, iterations, sum / n, all[n / 2], worst,
                    (double) setup / iterations, (double) reads / iterations, (double) up.requestCount() / iterations,
                    bare / n, floor / iterations);
        }
    }

    /**
     * The same three readers, released together as in {@link #iteration}, each reading its block
     * whole straight from {@code store}: what the store alone gives three concurrent readers on
     * this machine (their timers fire together on its cores), without a chunker. Run after each
     * measured iteration, so a slow minute of the host weighs on both alike.
     */
    private long[] bareIteration(SimulatedUpstream store, long[] offs) throws Exception {
        @SuppressWarnings("unchecked")
        Future<Long>[] fs = new Future[READERS];
        for (int r = 0; r < READERS; r++) {
            long off = offs[r];
            fs[r] = readers.submit(() -> {
                java.nio.ByteBuffer dst = java.nio.ByteBuffer.allocate(BLOCK);
                start.await();
                long t0 = System.nanoTime();
                store.readFully(off, dst);
                return (System.nanoTime() - t0) / 1000;
            });
        }
        long[] micros = new long[READERS];
        for (int r = 0; r < READERS; r++) {
            micros[r] = fs[r].get(2, TimeUnit.MINUTES);
        }
        return micros;
    }

    /** One iteration: a fresh chunker, three readers released together; their latencies in µs. */
    public long[] iteration(SimulatedUpstream up, ChunkerKind kind, long[] offs, int i) throws Exception {
        return iteration(up, kind, offs, i, new long[2]);
    }

    /** One iteration; {@code alloc} receives the bytes allocated by setup and by the reads. */
    private long[] iteration(SimulatedUpstream up, ChunkerKind kind, long[] offs, int i, long[] alloc) throws Exception {
        long a0 = Allocation.totalBytes();
        SparseCache cache = SparseCache.create(dir.resolve("random-access-" + i), IMAGE);
        Chunker chunker = kind.create(up, cache, ChunkerOptions.DEFAULTS);
        long a1 = Allocation.totalBytes();
        try (chunker) {
            @SuppressWarnings("unchecked")
            Future<Long>[] fs = new Future[READERS];
            for (int r = 0; r < READERS; r++) {
                long off = offs[r];
                fs[r] = readers.submit(() -> {
                    start.await();
                    long t0 = System.nanoTime();
                    MemorySegment s = chunker.slice(off, BLOCK);
                    long t = System.nanoTime() - t0;
                    verify(s, off);
                    return t / 1000;
                });
            }
            long[] micros = new long[READERS];
            for (int r = 0; r < READERS; r++) {
                micros[r] = fs[r].get(2, TimeUnit.MINUTES);
            }
            return micros;
        } finally {
            alloc[0] = a1 - a0;
            alloc[1] = Allocation.totalBytes() - a1;
        }
    }

    /**
     * The model's floor as this machine's timers deliver it: the average latency of a bare
     * 4 KiB whole-range read of the simulated upstream, with no chunker. The model's sleeps
     * overshoot by what the OS timer slack and wake-up take.
     */
    public double floorMicros(String backend, int samples) throws IOException {
        try (SimulatedUpstream up = upstream(backend)) {
            java.nio.ByteBuffer dst = java.nio.ByteBuffer.allocateDirect(BLOCK);
            long total = 0;
            for (int i = 0; i < samples; i++) {
                dst.clear();
                long t0 = System.nanoTime();
                up.readFully((long) i * BLOCK, dst);
                total += System.nanoTime() - t0;
            }
            return total / 1000.0 / samples;
        }
    }

    private void verify(MemorySegment s, long off) throws IOException {
        if (s.byteSize() != BLOCK || s.get(ValueLayout.JAVA_BYTE, 0) != image[(int) off]
                || s.get(ValueLayout.JAVA_BYTE, BLOCK - 1) != image[(int) off + BLOCK - 1]) {
            throw new IOException("wrong bytes at " + off);
        }
    }

    @Override
    public void close() {
        readers.shutdownNow();
    }
}
