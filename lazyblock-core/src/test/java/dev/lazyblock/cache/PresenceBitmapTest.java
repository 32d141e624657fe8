package dev.lazyblock.cache;

import dev.lazyblock.testing.Seeds;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.BitSet;
import java.util.SplittableRandom;
import java.util.stream.LongStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.openjdk.jol.info.GraphLayout;

class PresenceBitmapTest {
    static final int C = PresenceBitmap.CONTAINER_GRANULES;

    static LongStream seeds() {
        return Seeds.seeds(40);
    }

    @ParameterizedTest
    @MethodSource("seeds")
    void randomRangesMatchABitSetModel(long seed) throws Exception {
        Seeds.replayable(seed, () -> {
            SplittableRandom rnd = new SplittableRandom(seed);
            int granules = 3 * C + rnd.nextInt(1, C); // several containers, a short last one
            PresenceBitmap bitmap = new PresenceBitmap(granules);
            BitSet model = new BitSet(granules);
            for (int op = 0; op < 400; op++) {
                int from = randomIndex(rnd, granules);
                int to = Math.min(granules, from + randomLength(rnd));
                switch (rnd.nextInt(5)) {
                    case 0, 1 -> {
                        bitmap.set(from, to);
                        model.set(from, to);
                    }
                    case 2 -> assertEquals(model.nextClearBit(from) >= to, bitmap.allSet(from, to),
                            "allSet(" + from + ", " + to + ")");
                    case 3 -> {
                        if (from < granules) {
                            assertEquals(model.get(from), bitmap.get(from), "get(" + from + ")");
                        }
                    }
                    default -> {
                        assertEquals(model.nextSetBit(from), (int) bitmap.nextSet(from), "nextSet(" + from + ")");
                        assertEquals(Math.min(granules, model.nextClearBit(from)), (int) bitmap.nextClear(from),
                                "nextClear(" + from + ")");
                    }
                }
            }
            assertEquals(model.cardinality(), bitmap.cardinality());
            for (int g = model.nextSetBit(0); g >= 0; g = model.nextSetBit(g + 1)) {
                assertTrue(bitmap.get(g), "granule " + g);
            }
        });
    }

    /** Biased towards container edges, where an off-by-one would hide. */
    private static int randomIndex(SplittableRandom rnd, int granules) {
        return switch (rnd.nextInt(4)) {
            case 0 -> Math.max(0, Math.min(granules, rnd.nextInt(granules / C + 1) * C + rnd.nextInt(-2, 3)));
            case 1 -> Math.max(0, granules - rnd.nextInt(1, 4));
            default -> rnd.nextInt(granules);
        };
    }

    private static int randomLength(SplittableRandom rnd) {
        return switch (rnd.nextInt(5)) {
            case 0 -> rnd.nextInt(3);
            case 1 -> rnd.nextInt(64, 200);
            case 2 -> rnd.nextInt(PresenceBitmap.ARRAY_MAX - 5, PresenceBitmap.ARRAY_MAX + 5);
            case 3 -> rnd.nextInt(C - 3, C + 3);
            default -> rnd.nextInt(1, 40);
        };
    }

    @Test
    void sparseContainerBecomesABitmapAndKeepsItsBits() {
        PresenceBitmap bitmap = new PresenceBitmap(C);
        for (int i = 0; i < PresenceBitmap.ARRAY_MAX; i++) {
            bitmap.set(i * 7L, i * 7L + 1);
        }
        long asArray = bitmap.retainedBytes();
        bitmap.set(C - 1, C); // one more entry than an array container holds
        assertTrue(bitmap.retainedBytes() > asArray, "converted to a bitmap container");
        for (int i = 0; i < PresenceBitmap.ARRAY_MAX; i++) {
            assertTrue(bitmap.get(i * 7L), "bit " + i * 7 + " survived the conversion");
            assertFalse(bitmap.get(i * 7L + 1));
        }
        assertTrue(bitmap.get(C - 1));
        assertEquals(PresenceBitmap.ARRAY_MAX + 1, bitmap.cardinality());
    }

    @Test
    void aShortContainerNeverHoldsAnArrayBiggerThanItsBitmap() {
        PresenceBitmap bitmap = new PresenceBitmap(1024); // a 4 MiB image at 4 KiB: 16 words
        bitmap.set(0, 1024);                              // a whole chunk marked at once
        assertTrue(bitmap.allSet(0, 1024));
        assertEquals(GraphLayout.parseInstance(bitmap).totalSize(), bitmap.retainedBytes());
        assertTrue(bitmap.retainedBytes() <= 24 + 24 + 16 + 16 * 8,
                "16 words, not a 1,024-entry array: " + bitmap.retainedBytes());
    }

    @Test
    void runsAcrossContainerEdgesAreFoundWhole() {
        PresenceBitmap bitmap = new PresenceBitmap(3L * C);
        bitmap.set(C - 10, 2L * C + 5); // an array run, a full bitmap container, an array run
        assertTrue(bitmap.allSet(C - 10, 2L * C + 5));
        assertFalse(bitmap.allSet(C - 11, 2L * C + 5));
        assertFalse(bitmap.allSet(C - 10, 2L * C + 6));
        assertEquals(C - 10, bitmap.nextSet(0));
        assertEquals(2L * C + 5, bitmap.nextClear(C - 10));
        assertEquals(-1, bitmap.nextSet(2L * C + 5));
    }

    @Test
    void emptyRangesAreAllSetAndOutOfRangeIsRefused() {
        PresenceBitmap bitmap = new PresenceBitmap(100);
        assertTrue(bitmap.allSet(50, 50));
        assertThrows(IndexOutOfBoundsException.class, () -> bitmap.set(90, 101));
        assertThrows(IndexOutOfBoundsException.class, () -> bitmap.get(100));
        assertThrows(IndexOutOfBoundsException.class, () -> bitmap.allSet(-1, 3));
        assertThrows(IndexOutOfBoundsException.class, () -> bitmap.set(5, 4));
    }

    @Test
    void retainedBytesAgreesWithAnObjectGraphWalk() {
        long granules = (64L << 30) / 4096;
        PresenceBitmap bitmap = new PresenceBitmap(granules);
        SplittableRandom rnd = new SplittableRandom(7);
        assertEquals(GraphLayout.parseInstance(bitmap).totalSize(), bitmap.retainedBytes(), "empty");
        for (int i = 0; i < 100; i++) {
            long g = rnd.nextLong(granules);
            bitmap.set(g, g + 1);
        }
        assertEquals(GraphLayout.parseInstance(bitmap).totalSize(), bitmap.retainedBytes(), "100 blocks");
        bitmap.set(0, granules / 3);
        assertEquals(GraphLayout.parseInstance(bitmap).totalSize(), bitmap.retainedBytes(), "a third");
    }
}
