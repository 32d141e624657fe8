package dev.lazyblock.device;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.testing.Seeds;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.LongStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

class OverlayTest {
    static final int B = 4096;

    @TempDir
    Path dir;

    static LongStream seeds() {
        return Seeds.seeds(12);
    }

    private Overlay overlay(byte[] base) throws Exception {
        return new Overlay(new MemoryDevice(base), SparseCache.create(dir.resolve("ov-" + System.nanoTime()), base.length));
    }

    @ParameterizedTest
    @MethodSource("seeds")
    void writesAndReadsAgreeWithAByteArrayModel(long seed) throws Exception {
        Seeds.replayable(seed, () -> {
            SplittableRandom rnd = new SplittableRandom(seed);
            int size = 3 * (1 << 20) + rnd.nextInt(1, B); // several chunks, a short last block
            byte[] base = new byte[size];
            rnd.nextBytes(base);
            byte[] model = base.clone();
            try (Overlay ov = overlay(base)) {
                for (int step = 0; step < 300; step++) {
                    long off = switch (rnd.nextInt(4)) {
                        case 0 -> (long) rnd.nextInt(size / B) * B;                // aligned
                        case 1 -> (long) rnd.nextInt(1, 3) * (1 << 20) - rnd.nextInt(1, B); // across a chunk edge
                        case 2 -> size - rnd.nextInt(1, 2 * B);                    // the short end
                        default -> rnd.nextInt(size);
                    };
                    int len = (int) Math.min(size - off, rnd.nextInt(4) == 0 ? rnd.nextInt(1, 5) * B : rnd.nextInt(0, 3 * B));
                    switch (rnd.nextInt(4)) {
                        case 0 -> {
                            ov.writeZeroes(off, len);
                            Arrays.fill(model, (int) off, (int) off + len, (byte) 0);
                        }
                        case 1, 2 -> {
                            byte[] data = new byte[len];
                            rnd.nextBytes(data);
                            ov.writeAt(data, 0, len, off);
                            System.arraycopy(data, 0, model, (int) off, len);
                        }
                        default -> {
                            byte[] got = new byte[len];
                            int n = ov.readAt(got, 0, len, off);
                            assertEquals(len, n);
                            assertArrayEquals(Arrays.copyOfRange(model, (int) off, (int) off + len), got, "read at " + off);
                        }
                    }
                }
                byte[] all = new byte[size];
                ov.readAt(all, 0, size, 0);
                assertArrayEquals(model, all, "the whole image");
            }
        });
    }

    @Test
    void badWritesAreRefusedAndChangeNothing() throws Exception {
        byte[] base = new byte[10 * B];
        try (Overlay ov = overlay(base)) {
            assertThrows(IndexOutOfBoundsException.class, () -> ov.writeAt(new byte[10], 0, 10, 10 * B - 5));
            assertThrows(IndexOutOfBoundsException.class, () -> ov.writeAt(new byte[10], 0, 10, -1));
            assertThrows(IndexOutOfBoundsException.class, () -> ov.readAt(new byte[1], 0, 1, 10 * B));
            assertEquals(0, ov.cache().presence().cardinality(), "nothing was written");
        }
    }

    /**
     * Writers fill whole blocks with one repeated byte (a version); readers check that every block
     * they read is uniform. A torn block (part old version, part new) fails the check.
     */
    @Test
    void readersNeverSeeAHalfWrittenBlock() throws Exception {
        int blocks = 64;
        byte[] base = new byte[blocks * B];
        try (Overlay ov = overlay(base); ExecutorService pool = Executors.newFixedThreadPool(12)) {
            CountDownLatch go = new CountDownLatch(1);
            List<Future<?>> fs = new ArrayList<>();
            for (int t = 0; t < 12; t++) {
                boolean writer = t % 3 == 0;
                SplittableRandom rnd = new SplittableRandom(t);
                fs.add(pool.submit(() -> {
                    go.await();
                    byte[] buf = new byte[4 * B];
                    for (int i = 0; i < 3000; i++) {
                        int b = rnd.nextInt(blocks - 3);
                        int n = rnd.nextInt(1, 4);
                        if (writer) {
                            Arrays.fill(buf, 0, n * B, (byte) rnd.nextInt(1, 256));
                            ov.writeAt(buf, 0, n * B, (long) b * B);
                        } else {
                            ov.readAt(buf, 0, n * B, (long) b * B);
                            for (int k = 0; k < n; k++) {
                                byte first = buf[k * B];
                                for (int j = 1; j < B; j++) {
                                    if (buf[k * B + j] != first) {
                                        throw new AssertionError("block " + (b + k) + " torn at byte " + j);
                                    }
                                }
                            }
                        }
                    }
                    return null;
                }));
            }
            go.countDown();
            for (Future<?> f : fs) {
                f.get(2, TimeUnit.MINUTES);
            }
            assertTrue(ov.cache().presence().cardinality() > 0);
        }
    }

    @Test
    void concurrentPartialWritesToOneBlockLoseNothing() throws Exception {
        byte[] base = new byte[B];
        try (Overlay ov = overlay(base); ExecutorService pool = Executors.newFixedThreadPool(8)) {
            List<Future<?>> fs = new ArrayList<>();
            for (int t = 0; t < 8; t++) {
                int id = t;
                // Each thread owns 512 bytes of the one block: read-modify-write must not undo the others.
                fs.add(pool.submit(() -> {
                    byte[] mine = new byte[512];
                    Arrays.fill(mine, (byte) (id + 1));
                    for (int i = 0; i < 200; i++) {
                        ov.writeAt(mine, 0, 512, id * 512L);
                    }
                    return null;
                }));
            }
            for (Future<?> f : fs) {
                f.get(1, TimeUnit.MINUTES);
            }
            byte[] got = new byte[B];
            ov.readAt(got, 0, B, 0);
            for (int t = 0; t < 8; t++) {
                for (int j = 0; j < 512; j++) {
                    assertEquals(t + 1, got[t * 512 + j], "thread " + t + "'s bytes");
                }
            }
        }
    }
}
