package dev.lazyblock.cache;

import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.upstream.FileUpstream;
import dev.lazyblock.upstream.SimulatedUpstream;
import dev.lazyblock.upstream.SimulatedUpstream.LatencyModel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * A process that serves random reads of an image through a kept cache from several threads until
 * it is killed, for {@link CrashConsistencyTest}. It prints {@code durable N} whenever the bytes
 * known durable grow, and {@code WRONG off len} (then exits) if a read ever differs from the image.
 *
 * <p>Arguments: cache dir, identity, image file, seed, chunker kind.
 */
public final class FetchingCacheUser {
    private FetchingCacheUser() {}

    public static void main(String[] args) throws Exception {
        Path image = Path.of(args[2]);
        byte[] truth = Files.readAllBytes(image);
        long seed = Long.parseLong(args[3]);
        PersistentCache.Opened opened = PersistentCache.open(Path.of(args[0]), args[1], null, truth.length, 4096,
                4096, Duration.ofMillis(10));
        System.out.println("restored " + opened.restoredBytes());
        // Slow enough that a kill lands mid-fetch: 5 ms to first byte, 20 MB/s.
        SimulatedUpstream up = new SimulatedUpstream(new FileUpstream(image), new LatencyModel(5_000_000L, 20_000_000L));
        Chunker chunker = ChunkerKind.parse(args[4]).create(up, opened.cache(), ChunkerOptions.DEFAULTS);
        for (int t = 0; t < 4; t++) {
            SplittableRandom random = new SplittableRandom(seed * 31 + t);
            Thread.ofPlatform().daemon().start(() -> {
                byte[] buf = new byte[256 << 10];
                while (true) {
                    int len = 1 + random.nextInt(buf.length);
                    int off = random.nextInt(truth.length - len);
                    try {
                        chunker.readAt(buf, 0, len, off);
                    } catch (Exception e) {
                        System.out.println("ERROR " + e);
                        System.out.flush();
                        Runtime.getRuntime().halt(4);
                    }
                    if (!Arrays.equals(buf, 0, len, truth, off, off + len)) {
                        System.out.println("WRONG " + off + " " + len);
                        System.out.flush();
                        Runtime.getRuntime().halt(5);
                    }
                }
            });
        }
        long reported = -1;
        while (true) {
            long d = opened.durableBytes();
            if (d != reported) {
                System.out.println("durable " + d);
                System.out.flush();
                reported = d;
            }
            Thread.sleep(2); // a poll of a counter, not a wait for a condition
        }
    }
}
