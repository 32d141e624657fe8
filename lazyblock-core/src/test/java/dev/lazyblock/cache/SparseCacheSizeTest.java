package dev.lazyblock.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.openjdk.jol.info.GraphLayout;

/** A 64 GiB cache costs disk and heap in proportion to what it holds, not to its size. */
class SparseCacheSizeTest {
    static final long SIZE = 64L << 30;

    @TempDir
    Path dir;

    @Test
    void a64GiBCacheOccupiesOnlyTheBlocksWritten() throws Exception {
        try (SparseCache cache = SparseCache.create(dir.resolve("big"), SIZE)) {
            assertEquals(0, cache.fileSize(), "nothing written, nothing allocated");
            SplittableRandom rnd = new SplittableRandom(64);
            byte[] block = new byte[4096];
            for (int i = 0; i < 32; i++) {
                rnd.nextBytes(block);
                long off = rnd.nextLong(SIZE / 4096) * 4096;
                cache.writeAt(block, 0, block.length, off);
                cache.setIsCached(off, block.length);
            }
            byte[] mib = new byte[1 << 20];
            cache.writeAt(mib, 0, mib.length, SIZE - mib.length); // the very end, as zeros
            cache.setIsCached(SIZE - mib.length, mib.length);
            long onDisk = cache.fileSize();
            System.out.printf("64 GiB cache after 32 random 4 KiB writes + 1 MiB at the end: fileSize() = %,d bytes%n",
                    onDisk);
            assertTrue(onDisk >= 32 * 4096 + (1 << 20), "at least what was written: " + onDisk);
            assertTrue(onDisk < 8 << 20, "in the MiB, not the GiB: " + onDisk);
        }
    }

    @Test
    void presenceMapCostsAFewKiBSparseAndOneBitPerBlockFull() throws Exception {
        try (SparseCache cache = SparseCache.create(dir.resolve("big"), SIZE)) {
            PresenceBitmap map = cache.presence();
            long empty = measured(map);
            SplittableRandom rnd = new SplittableRandom(100);
            for (int i = 0; i < 100; i++) {
                cache.setIsCached(rnd.nextLong(SIZE / 4096) * 4096, 4096);
            }
            long hundred = measured(map);
            cache.setIsCached(0, SIZE);
            long full = measured(map);
            long index = GraphLayout.parseInstance((Object) new Object[(int) (SIZE / 4096 >>> 16)]).totalSize();
            System.out.printf("presence map of a 64 GiB cache at 4 KiB: empty %,d B, 100 random blocks %,d B, "
                    + "all %,d blocks %,d B (2 MiB of bits = %,d B; top-level index %,d B)%n",
                    empty, hundred, SIZE / 4096, full, 2 << 20, index);
            assertTrue(empty <= 2048, "untouched: " + empty);
            assertTrue(hundred <= 8192, "100 random blocks: " + hundred);
            // Bits, one 16-byte header per 256 MiB container, and the index.
            assertTrue(full <= (2 << 20) + 4096 + index + 64, "fully present: " + full);
            assertTrue(cache.isCached(0, SIZE));
        }
    }

    /** Retained heap by an object-graph walk, cross-checked with the bitmap's own account. */
    private static long measured(PresenceBitmap map) {
        long walked = GraphLayout.parseInstance(map).totalSize();
        assertEquals(walked, map.retainedBytes(), "retainedBytes() agrees with the heap walk");
        return walked;
    }
}
