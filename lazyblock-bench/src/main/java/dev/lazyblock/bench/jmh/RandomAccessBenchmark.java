package dev.lazyblock.bench.jmh;

import dev.lazyblock.bench.RandomAccessModel;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.upstream.SimulatedUpstream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * BenchmarkRandomAccess under JMH. One op is one iteration of the model: a fresh chunker over a
 * fresh cache, 3 readers released together, each slicing one random 4 KiB block; the op ends
 * when the slowest reader has its bytes. So the score is the worst reader's latency, and
 * {@code -prof gc}'s {@code gc.alloc.rate.norm} is bytes allocated per iteration (all threads).
 * {@code lazyblock bench} runs the same iterations and reports the average per reader too.
 *
 * <pre>java -jar lazyblock-bench/target/benchmarks.jar -prof gc -rf json -rff jmh-result.json</pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 3)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class RandomAccessBenchmark {
    @Param({"GCS", "NFS"})
    public String backend;

    @Param({"STREAMING", "FULL_FETCH", "REQUEST_FIRST"})
    public String chunker;

    private RandomAccessModel model;
    private SimulatedUpstream upstream;
    private Path dir;
    private long[][] offsets;
    private int iteration;

    @Setup
    public void open() throws Exception {
        dir = Files.createTempDirectory("lazyblock-jmh");
        model = new RandomAccessModel(dir);
        upstream = model.upstream(backend);
        offsets = RandomAccessModel.offsets(4096);
    }

    @Benchmark
    public long[] iteration() throws Exception {
        int i = iteration++;
        return model.iteration(upstream, ChunkerKind.valueOf(chunker), offsets[i % offsets.length], i);
    }

    @TearDown
    public void close() throws Exception {
        model.close();
        upstream.close();
        Files.deleteIfExists(dir);
    }
}
