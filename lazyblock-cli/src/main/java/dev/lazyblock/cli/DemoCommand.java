package dev.lazyblock.cli;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.metrics.CountingMetrics;
import dev.lazyblock.upstream.FileUpstream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HexFormat;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * The main job on an embedded default: a sample image, read block by block through a sparse
 * cache that fetches what it misses from the image file and keeps what it fetched.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = {"Creates a sample image, reads random blocks of it through a request-first chunker",
                "(a sparse cache that fetches what it misses), and prints each read and what the cache holds."},
        footer = {"", "Examples:", "  lazyblock demo", "  lazyblock demo --image-mib 256 --reads 12"})
final class DemoCommand implements Callable<Integer> {
    @Option(names = "--image-mib", defaultValue = "64", description = "Sample image size in MiB (default ${DEFAULT-VALUE}).")
    long imageMib;

    @Option(names = "--reads", defaultValue = "12", description = "Random block reads (default ${DEFAULT-VALUE}).")
    int reads;

    @Option(names = "--seed", defaultValue = "42", description = "Seed of the image and the offsets (default ${DEFAULT-VALUE}).")
    long seed;

    @Override
    public Integer call() throws IOException {
        Path dir = Files.createTempDirectory("lazyblock-demo");
        Path image = dir.resolve("sample.img");
        long size = imageMib << 20;
        writeSampleImage(image, size, seed);
        System.out.printf("sample image: %s, %,d bytes%n", image, size);

        int block = SparseCache.DEFAULT_BLOCK_SIZE;
        SplittableRandom rnd = new SplittableRandom(seed);
        byte[] buf = new byte[block];
        CountingMetrics metrics = new CountingMetrics();
        try (FileChannel source = FileChannel.open(image, StandardOpenOption.READ);
             FileUpstream upstream = new FileUpstream(image);
             Chunker chunker = ChunkerKind.REQUEST_FIRST.create(upstream, SparseCache.create(dir.resolve("cache"), size),
                     ChunkerOptions.DEFAULTS.withMetrics(metrics))) {
            SparseCache cache = chunker.cache();
            System.out.printf("cache: %,d bytes logical, %,d bytes on disk, granularity %,d; chunker: request-first%n%n",
                    cache.size(), cache.fileSize(), cache.granularity());
            System.out.println("  offset          source   first 16 bytes                      ok");
            for (int i = 0; i < reads; i++) {
                long off = rnd.nextLong(size / block) * block;
                boolean hit = cache.isCached(off, block);
                chunker.readAt(buf, 0, block, off);
                boolean ok = matchesSource(source, off, buf);
                System.out.printf("  %,14d  %-7s  %s  %s%n", off, hit ? "cache" : "fetched",
                        HexFormat.ofDelimiter(" ").formatHex(buf, 0, 16), ok ? "yes" : "NO");
                if (!ok) {
                    return 1;
                }
            }
            CountingMetrics.Snapshot m = metrics.snapshot();
            // The rest of each missed chunk streams in behind its first block: let it land (bounded).
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (m.remoteRequests() > 0 && System.nanoTime() < deadline
                    && cache.presence().cardinality() * (long) block < Math.min(size, m.misses() * (long) ChunkerOptions.DEFAULT_CHUNK_SIZE)) {
                java.util.concurrent.locks.LockSupport.parkNanos(1_000_000);
            }
            long present = cache.presence().cardinality();
            m = metrics.snapshot();
            System.out.printf("%n%d reads: %d from the cache, %d fetched (%d upstream requests, %,d bytes)%n", reads,
                    m.hits(), m.misses(), m.remoteRequests(), m.remoteBytes());
            System.out.printf("cache holds %,d of %,d blocks (%.1f%%): %,d bytes on disk; presence map %,d bytes of heap%n",
                    present, cache.presence().granules(), 100.0 * present / cache.presence().granules(),
                    cache.fileSize(), cache.presence().retainedBytes());
        } finally {
            Files.deleteIfExists(image);
            Files.deleteIfExists(dir);
        }
        return 0;
    }

    private static boolean matchesSource(FileChannel source, long off, byte[] got) throws IOException {
        ByteBuffer want = ByteBuffer.allocate(got.length);
        source.read(want, off);
        return want.flip().equals(ByteBuffer.wrap(got));
    }

    /** Pseudo-random bytes, with every eighth MiB left as zeros (a hole in a real disk image). */
    static void writeSampleImage(Path image, long size, long seed) throws IOException {
        SplittableRandom rnd = new SplittableRandom(seed);
        byte[] mib = new byte[1 << 20];
        try (FileChannel out = FileChannel.open(image, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            for (long off = 0; off < size; off += mib.length) {
                int n = (int) Math.min(mib.length, size - off);
                if ((off >> 20) % 8 == 7) {
                    java.util.Arrays.fill(mib, (byte) 0);
                } else {
                    rnd.nextBytes(mib);
                }
                out.write(ByteBuffer.wrap(mib, 0, n), off);
            }
        }
    }
}
