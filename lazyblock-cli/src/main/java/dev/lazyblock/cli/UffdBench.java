package dev.lazyblock.cli;

import dev.lazyblock.upstream.SyntheticUpstream;
import dev.lazyblock.bench.Reference;
import dev.lazyblock.bench.UffdModel;
import dev.lazyblock.upstream.SimulatedUpstream.LatencyModel;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/** {@code bench --only uffd}: guest-memory fault latency, cold and with a recorded working set prefetched. */
final class UffdBench {
    private UffdBench() {}

    static void run(Path work, long imageMib, int threads, int touches) throws Exception {
        Path root = Path.of(System.getProperty("lazyblock.home", "."));
        Path vmm = UffdModel.compileFakeVmm(root, work);
        Path image = work.resolve("memory.img");
        long size = imageMib << 20;
        SyntheticUpstream source = new SyntheticUpstream(size);
        try (FileChannel out = FileChannel.open(image, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20);
            for (long off = 0; off < size; off += buf.capacity()) {
                buf.clear();
                source.readFully(off, buf);
                buf.flip();
                while (buf.hasRemaining()) {
                    out.write(buf, off + buf.position());
                }
            }
        }
        System.out.printf("uffd: %d MiB memory image, a fake VMM touching %,d random pages from %d threads (first touch timed);%n"
                + "request-first chunker, 4 MiB chunks; limit = TTFB + 4 KiB / bandwidth. Times in µs per fault.%n%n",
                imageMib, (long) threads * touches, threads);
        String head = String.format("%-4s %-22s %7s %9s %9s %9s %9s %8s %9s %9s", "", "run", "faults", "mean µs",
                "p50 µs", "p99 µs", "max µs", "x limit", "cached %", "requests");
        System.out.println(head);
        System.out.println("-".repeat(head.length()));
        try {
            for (String backend : new String[] {"GCS", "NFS"}) {
                LatencyModel model = Reference.model(backend);
                double limit = Reference.limitMicros(model, UffdModel.PAGE);
                UffdModel.Result cold = UffdModel.run(work, vmm, image, model, null, threads, touches, 5);
                print(backend, "cold", cold, limit);
                UffdModel.Result warm = UffdModel.run(work, vmm, image, model, cold.recorded(), threads, touches, 5);
                print(backend, "prefetched (recorded)", warm, limit);
            }
        } finally {
            java.nio.file.Files.deleteIfExists(image);
            java.nio.file.Files.deleteIfExists(vmm);
        }
        System.out.println();
    }

    private static void print(String backend, String label, UffdModel.Result r, double limit) {
        long served = r.fromCache() + r.fetched();
        System.out.printf("%-4s %-22s %,7d %,9.0f %,9.0f %,9.0f %,9.0f %8.2f %8.1f%% %,9d%n", backend, label, r.faults(),
                r.meanMicros(), r.p50Micros(), r.p99Micros(), r.maxMicros(), r.meanMicros() / limit,
                served == 0 ? 0.0 : 100.0 * r.fromCache() / served, r.remoteRequests());
    }
}
