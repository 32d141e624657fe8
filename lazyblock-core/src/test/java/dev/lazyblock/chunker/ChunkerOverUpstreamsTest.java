package dev.lazyblock.chunker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.testing.JettyFileServer;
import dev.lazyblock.testing.Seeds;
import dev.lazyblock.upstream.FileUpstream;
import dev.lazyblock.upstream.HttpUpstream;
import dev.lazyblock.upstream.SimulatedUpstream;
import dev.lazyblock.upstream.SimulatedUpstream.LatencyModel;
import dev.lazyblock.upstream.Upstream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every chunker over every real upstream kind: random reads, from several threads, across chunk
 * boundaries and into the short last chunk, compared byte for byte with the source file.
 */
class ChunkerOverUpstreamsTest {
    static final int CHUNK = 1 << 20;
    static final int SIZE = 5 * CHUNK + 54_321;

    @TempDir
    static Path root;
    static byte[] source;
    static JettyFileServer http;

    @BeforeAll
    static void serve() throws Exception {
        source = new byte[SIZE];
        new SplittableRandom(2026).nextBytes(source);
        Files.write(root.resolve("image.raw"), source);
        http = new JettyFileServer(root);
    }

    @AfterAll
    static void stop() throws Exception {
        http.close();
    }

    enum Kind { FILE, HTTP, SIMULATED }

    static Upstream upstream(Kind kind) throws Exception {
        return switch (kind) {
            case FILE -> new FileUpstream(root.resolve("image.raw"));
            case HTTP -> new HttpUpstream(http.uri("/image.raw"));
            case SIMULATED -> new SimulatedUpstream(source, LatencyModel.NONE);
        };
    }

    static Stream<Arguments> cases() {
        return Stream.of(ChunkerKind.values()).flatMap(c -> Stream.of(Kind.values())
                .flatMap(u -> Seeds.seeds(2).mapToObj(s -> Arguments.of(c, u, s))));
    }

    @ParameterizedTest(name = "{0} over {1}, seed {2}")
    @MethodSource("cases")
    void randomConcurrentReadsMatchTheSource(ChunkerKind chunker, Kind kind, long seed) throws Exception {
        Seeds.replayable(seed, () -> {
            try (Upstream up = upstream(kind);
                 Chunker c = chunker.create(up, SparseCache.create(root.resolve("cache-" + System.nanoTime()), SIZE),
                         ChunkerOptions.DEFAULTS.withChunkSize(CHUNK));
                 ExecutorService pool = Executors.newFixedThreadPool(6)) {
                Future<?>[] fs = new Future<?>[6];
                for (int t = 0; t < fs.length; t++) {
                    SplittableRandom rnd = new SplittableRandom(seed + t);
                    fs[t] = pool.submit(() -> {
                        for (int i = 0; i < 60; i++) {
                            long off = switch (rnd.nextInt(3)) {
                                case 0 -> SIZE - 1 - rnd.nextInt(70_000);
                                case 1 -> (long) rnd.nextInt(1, 6) * CHUNK - rnd.nextInt(1, 9000);
                                default -> rnd.nextInt(SIZE);
                            };
                            int len = rnd.nextInt(1, rnd.nextBoolean() ? 9000 : 3 * CHUNK);
                            byte[] got = new byte[len];
                            int n = c.readAt(got, 0, len, off);
                            int want = (int) Math.min(len, SIZE - off);
                            assertEquals(want, n);
                            assertArrayEquals(Arrays.copyOfRange(source, (int) off, (int) off + want), Arrays.copyOf(got, n),
                                    chunker + " over " + kind + " at " + off + " +" + len);
                        }
                        return null;
                    });
                }
                for (Future<?> f : fs) {
                    f.get(2, TimeUnit.MINUTES);
                }
            }
        });
    }
}
