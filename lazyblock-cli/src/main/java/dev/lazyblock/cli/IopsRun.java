package dev.lazyblock.cli;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * 4 KiB random reads over a whole image with fio, at queue depth 1 and 32: from our NBD server and
 * from nbdkit through fio's nbd engine (libnbd, one connection), alternating round by round, and
 * from the cache file itself (psync at depth 1, io_uring at 32: the local limit, no server and no
 * socket). Each figure is the median of the rounds.
 */
final class IopsRun {
    private static final int[] DEPTHS = {1, 32};
    private static final long TIMEOUT_S = 120;

    /** One fio run: reads per second, mean and p99 completion latency. */
    record Result(double iops, double meanMicros, double p99Micros) {
        static Result median(List<Result> rs) {
            return new Result(mid(rs, Result::iops), mid(rs, Result::meanMicros), mid(rs, Result::p99Micros));
        }

        private static double mid(List<Result> rs, java.util.function.ToDoubleFunction<Result> f) {
            return NbdBenchCommand.median(rs.stream().mapToDouble(f).toArray());
        }
    }

    private final int seconds;
    private final int rounds;
    private final long size;

    IopsRun(int seconds, int rounds, long size) {
        this.seconds = seconds;
        this.rounds = rounds;
        this.size = size;
    }

    void print(String oursUri, String kitUri, Path cacheFile) throws IOException, InterruptedException {
        System.out.printf("4 KiB random reads over the whole image, %s, %d s per run, median of %d rounds alternating;"
                        + "%nlatency is fio's completion latency (clat). The cache file row is fio on our cache file"
                        + " directly: the local limit.%n%n", NbdBenchCommand.firstLine("fio", "--version"), seconds, rounds);
        System.out.printf("%-30s %4s %10s %10s %10s %10s%n", "source", "QD", "IOPS", "mean µs", "p99 µs", "vs nbdkit");
        for (int qd : DEPTHS) {
            List<Result> ours = new ArrayList<>();
            List<Result> kit = new ArrayList<>();
            List<Result> file = new ArrayList<>();
            for (int r = 0; r < rounds; r++) {
                if (r % 2 == 0) {
                    ours.add(nbd(oursUri, qd));
                    kit.add(nbd(kitUri, qd));
                } else {
                    kit.add(nbd(kitUri, qd));
                    ours.add(nbd(oursUri, qd));
                }
                file.add(local(cacheFile, qd));
            }
            Result o = Result.median(ours);
            Result k = Result.median(kit);
            Result f = Result.median(file);
            row("lazyblock serve (nbd engine)", qd, o, k);
            row("nbdkit file (nbd engine)", qd, k, k);
            row("cache file (" + (qd == 1 ? "psync" : "io_uring") + ")", qd, f, k);
        }
        System.out.println();
    }

    private static void row(String name, int qd, Result r, Result kit) {
        System.out.printf("%-30s %4d %,10.0f %10.1f %10.1f %10.2f%n", name, qd, r.iops(), r.meanMicros(), r.p99Micros(),
                r.iops() / kit.iops());
    }

    private Result nbd(String uri, int qd) throws IOException, InterruptedException {
        return fio("--ioengine=nbd", "--uri=" + uri, "--iodepth=" + qd);
    }

    private Result local(Path file, int qd) throws IOException, InterruptedException {
        return fio("--ioengine=" + (qd == 1 ? "psync" : "io_uring"), "--filename=" + file, "--iodepth=" + qd);
    }

    private Result fio(String... engine) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("fio", "--name=randread", "--rw=randread", "--bs=4k",
                "--size=" + size, "--time_based", "--runtime=" + seconds, "--ramp_time=1", "--norandommap",
                "--randrepeat=0", "--output-format=terse", "--terse-version=3"));
        cmd.addAll(Arrays.asList(engine));
        Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.DISCARD)
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
        String out;
        try (InputStream in = p.getInputStream()) {
            out = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        if (!p.waitFor(TIMEOUT_S, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IOException("fio did not finish in " + TIMEOUT_S + " s: " + String.join(" ", cmd));
        }
        if (p.exitValue() != 0) {
            throw new IOException("fio failed (" + p.exitValue() + "): " + String.join(" ", cmd) + "\n" + out);
        }
        return parseTerse(out);
    }

    /**
     * fio's terse format, version 3: the line starting "3;" holds, 0-based, read IOPS at 7, the
     * read completion latency's mean at 15 (µs) and its percentiles as "99.000000%=N" from 17.
     */
    static Result parseTerse(String out) throws IOException {
        String line = out.lines().filter(l -> l.startsWith("3;")).findFirst()
                .orElseThrow(() -> new IOException("no terse v3 line in fio's output: " + out));
        String[] f = line.split(";");
        if (f.length < 41) {
            throw new IOException("fio's terse line has " + f.length + " fields, expected at least 41: " + line);
        }
        double p99 = Arrays.stream(f, 17, 37).filter(x -> x.startsWith("99.000000%=")).findFirst()
                .map(x -> Double.parseDouble(x.substring(x.indexOf('=') + 1))).orElse(Double.NaN);
        return new Result(Double.parseDouble(f[7]), Double.parseDouble(f[15]), p99);
    }
}
