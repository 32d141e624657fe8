package dev.lazyblock.cache;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.BitSet;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ExportToDiffTest {
    static final int B = 4096;
    /** Not a multiple of the block: the last block is short and must come out zero-padded. */
    static final int SIZE = 300 * B + 1000;

    @TempDir
    Path dir;

    /** The cache's dirty blocks and the image they came from. */
    record Fixture(byte[] image, BitSet dirty, BitSet zero) {}

    private Fixture fill(SparseCache cache, long seed) throws Exception {
        SplittableRandom rnd = new SplittableRandom(seed);
        byte[] image = new byte[SIZE];
        BitSet dirty = new BitSet();
        BitSet zero = new BitSet();
        int blocks = (SIZE + B - 1) / B;
        for (int i = 0; i < 60; i++) {
            int b = rnd.nextInt(blocks);
            int run = Math.min(blocks - b, rnd.nextInt(1, 6)); // adjacent blocks form runs
            for (int k = b; k < b + run; k++) {
                int off = k * B;
                int len = Math.min(B, SIZE - off);
                byte[] bytes = new byte[len];
                if (rnd.nextInt(4) == 0) {
                    zero.set(k);
                } else {
                    rnd.nextBytes(bytes);
                    bytes[rnd.nextInt(len)] |= 1; // never all zero by chance
                    zero.clear(k);
                }
                System.arraycopy(bytes, 0, image, off, len);
                cache.writeAt(bytes, 0, len, off);
                cache.setIsCached(off, len);
                dirty.set(k);
            }
        }
        dirty.set(blocks - 1); // the short last block is always in the diff
        byte[] last = new byte[SIZE - (blocks - 1) * B];
        Arrays.fill(last, (byte) 0x5A);
        System.arraycopy(last, 0, image, (blocks - 1) * B, last.length);
        cache.writeAt(last, 0, last.length, (blocks - 1) * B);
        cache.setIsCached((blocks - 1) * B, last.length);
        zero.clear(blocks - 1);
        return new Fixture(image, dirty, zero);
    }

    private static byte[] expectedDiff(Fixture f) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int b = f.dirty.nextSetBit(0); b >= 0; b = f.dirty.nextSetBit(b + 1)) {
            if (!f.zero.get(b)) {
                byte[] block = new byte[B]; // zero-padded past the end of the image
                int len = Math.min(B, SIZE - b * B);
                System.arraycopy(f.image, b * B, block, 0, len);
                out.writeBytes(block);
            }
        }
        return out.toByteArray();
    }

    private void assertExport(SparseCache cache, Fixture f, Path out, boolean plain, DiffMetadata.CopyMethod want)
            throws Exception {
        DiffMetadata meta = cache.exportToDiff(out, plain);
        assertEquals(B, meta.blockSize());
        assertEquals((SIZE + B - 1) / B, meta.blocks());
        assertEquals(f.dirty, meta.dirty());
        assertEquals(f.zero, meta.empty());
        byte[] diff = Files.readAllBytes(out);
        assertEquals(meta.diffBytes(), diff.length);
        assertEquals(meta.storedBlocks() * B, diff.length);
        assertArrayEquals(expectedDiff(f), diff, "diff = dirty non-zero blocks in offset order");
        assertEquals(want, meta.copyMethod());
    }

    @Test
    void sameFileSystemExportUsesCopyFileRange() throws Exception {
        try (SparseCache cache = SparseCache.create(dir.resolve("c"), SIZE)) {
            Fixture f = fill(cache, 1);
            assertExport(cache, f, dir.resolve("diff"), false, DiffMetadata.CopyMethod.COPY_FILE_RANGE);
        }
    }

    @Test
    void plainCopyWritesTheSameDiff() throws Exception {
        try (SparseCache cache = SparseCache.create(dir.resolve("c"), SIZE)) {
            Fixture f = fill(cache, 2);
            assertExport(cache, f, dir.resolve("diff"), true, DiffMetadata.CopyMethod.PLAIN);
        }
    }

    @Test
    void crossFileSystemExportFallsBackToAPlainCopy() throws Exception {
        Path shm = Path.of("/dev/shm");
        assumeTrue(Files.isDirectory(shm) && Files.isWritable(shm), "needs /dev/shm");
        assumeTrue(!Files.getFileStore(shm).equals(Files.getFileStore(dir)), "/dev/shm is another file system");
        Path out = Files.createTempFile(shm, "lazyblock-diff", ".bin");
        try (SparseCache cache = SparseCache.create(dir.resolve("c"), SIZE)) {
            Fixture f = fill(cache, 3);
            // copy_file_range across file systems is refused (EXDEV) on current kernels.
            assertExport(cache, f, out, false, DiffMetadata.CopyMethod.PLAIN);
        } finally {
            Files.deleteIfExists(out);
        }
    }

    @Test
    void aCoarseGranularityCannotExport() throws Exception {
        try (SparseCache cache = SparseCache.create(dir.resolve("c"), SIZE, B, 2 << 20)) {
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> cache.exportToDiff(dir.resolve("diff")));
            assertTrue(e.getMessage().contains("granularity is 2097152"), e.getMessage());
            assertTrue(Files.notExists(dir.resolve("diff")), "refused before creating anything");
        }
    }

    @Test
    void anUntouchedCacheExportsAnEmptyDiff() throws Exception {
        try (SparseCache cache = SparseCache.create(dir.resolve("c"), 64L << 30)) {
            DiffMetadata meta = cache.exportToDiff(dir.resolve("diff"));
            assertEquals(0, meta.diffBytes());
            assertTrue(meta.dirty().isEmpty());
            assertEquals(DiffMetadata.CopyMethod.NONE, meta.copyMethod());
            assertEquals(0, Files.size(dir.resolve("diff")));
        }
    }

    @Test
    void exportLeavesTheCacheReadable() throws Exception {
        try (SparseCache cache = SparseCache.create(dir.resolve("c"), SIZE)) {
            Fixture f = fill(cache, 4);
            cache.exportToDiff(dir.resolve("diff"));
            int b = f.dirty.nextSetBit(0);
            byte[] got = new byte[B];
            cache.readAt(got, 0, B, (long) b * B);
            assertArrayEquals(Arrays.copyOfRange(f.image, b * B, b * B + B), got);
            assertNotEquals(0, cache.fileSize());
        }
    }
}
