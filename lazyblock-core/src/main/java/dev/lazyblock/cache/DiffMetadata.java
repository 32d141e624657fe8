package dev.lazyblock.cache;

import java.util.BitSet;

/**
 * What {@link SparseCache#exportToDiff} wrote.
 *
 * <p>{@code dirty} has a bit per block that was present in the cache; {@code empty} ⊆
 * {@code dirty} marks the dirty blocks whose bytes are all zero. The diff holds the blocks of
 * {@code dirty \ empty}, in offset order, each {@code blockSize} bytes (the image's last block
 * zero-padded), so the n-th set bit of {@code dirty \ empty} is at {@code n * blockSize} in the
 * diff. Zero blocks are recorded, not stored.
 *
 * @param blockSize   bytes per block
 * @param blocks      blocks in the image (the bitsets' logical length)
 * @param dirty       blocks present in the cache
 * @param empty       dirty blocks that are all zeros
 * @param diffBytes   bytes written to the diff
 * @param copyMethod  how the bytes were moved
 */
public record DiffMetadata(int blockSize, long blocks, BitSet dirty, BitSet empty, long diffBytes,
                           CopyMethod copyMethod) {

    /** How {@link SparseCache#exportToDiff} moved the bytes. */
    public enum CopyMethod {
        /** In-kernel {@code copy_file_range} (reflinks or server-side copy where supported). */
        COPY_FILE_RANGE,
        /** {@code pwrite} from the mapping: the fallback, or forced. */
        PLAIN,
        /** Nothing had to be copied. */
        NONE
    }

    /** Blocks stored in the diff: dirty and not empty. */
    public long storedBlocks() {
        BitSet stored = (BitSet) dirty.clone();
        stored.andNot(empty);
        return stored.cardinality();
    }
}
