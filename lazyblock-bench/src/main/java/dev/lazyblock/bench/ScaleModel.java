package dev.lazyblock.bench;

import dev.lazyblock.upstream.SyntheticUpstream;
import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.upstream.SimulatedUpstream;
import dev.lazyblock.upstream.SimulatedUpstream.LatencyModel;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/**
 * The model at scale: a large image behind a latency model, many random block reads from
 * several threads through one chunker. Measures what the presence map costs and what a read
 * allocates, beside the latencies.
 */
public final class ScaleModel {
    public static final int BLOCK = 4096;

    /** Times in µs per read; bytes per read; map and file sizes at the end. */
    public record Result(ChunkerKind kind, long imageBytes, int reads, int threads, double wallSeconds,
                         double avgMicros, double p50Micros, double p99Micros, double bytesPerRead,
                         long presenceMapBytes, long presentBlocks, long cacheFileBytes, long remoteRequests,
                         long remoteBytes) {}

    private ScaleModel() {}

    public static Result run(Path dir, LatencyModel model, ChunkerKind kind, long imageBytes, int reads, int threads)
            throws Exception {
        SyntheticUpstream source = new SyntheticUpstream(imageBytes);
        long blocks = imageBytes / BLOCK;
        try (SimulatedUpstream up = new SimulatedUpstream(source, model);
             ExecutorService pool = Executors.newFixedThreadPool(threads,
                     Thread.ofPlatform().daemon().name("bench-scale-", 0).factory());
             Chunker chunker = kind.create(up, SparseCache.create(dir.resolve("scale-" + kind), imageBytes),
                     ChunkerOptions.DEFAULTS)) {
            CyclicBarrier start = new CyclicBarrier(threads + 1);
            int perThread = reads / threads;
            @SuppressWarnings("unchecked")
            Future<long[]>[] fs = new Future[threads];
            for (int t = 0; t < threads; t++) {
                SplittableRandom rnd = new SplittableRandom(42 + t);
                fs[t] = pool.submit(() -> {
                    long[] offs = new long[perThread];
                    for (int i = 0; i < perThread; i++) {
                        offs[i] = rnd.nextLong(blocks) * BLOCK;
                    }
                    long[] micros = new long[perThread];
                    start.await();
                    for (int i = 0; i < perThread; i++) {
                        long t0 = System.nanoTime();
                        MemorySegment s = chunker.slice(offs[i], BLOCK);
                        micros[i] = (System.nanoTime() - t0) / 1000;
                        if (s.get(ValueLayout.JAVA_BYTE, 0) != SyntheticUpstream.byteAt(offs[i])
                                || s.get(ValueLayout.JAVA_BYTE, BLOCK - 1) != SyntheticUpstream.byteAt(offs[i] + BLOCK - 1)) {
                            throw new IOException("wrong bytes at " + offs[i]);
                        }
                    }
                    return micros;
                });
            }
            long[] all = new long[perThread * threads];
            start.await();
            long alloc0 = Allocation.totalBytes();
            long t0 = System.nanoTime();
            for (int t = 0; t < threads; t++) {
                System.arraycopy(fs[t].get(30, TimeUnit.MINUTES), 0, all, t * perThread, perThread);
            }
            double wall = (System.nanoTime() - t0) / 1e9;
            long alloc = Allocation.totalBytes() - alloc0;
            Arrays.sort(all);
            double avg = Arrays.stream(all).average().orElse(0);
            SparseCache cache = chunker.cache();
            return new Result(kind, imageBytes, all.length, threads, wall, avg, all[all.length / 2],
                    all[(int) (all.length * 0.99)], (double) alloc / all.length, cache.presence().retainedBytes(),
                    cache.presence().cardinality(), cache.fileSize(), up.requestCount(), up.bytesServed());
        }
    }
}
