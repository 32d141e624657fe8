package dev.lazyblock.frame;

import java.util.Arrays;
import java.util.zip.CRC32C;

/**
 * Where each frame of a compressed build lies: frame {@code i} holds the build's uncompressed
 * bytes {@code [i * frameSize, +uncompressedSize(i))} (every frame is {@code frameSize} but the
 * last), stored compressed at {@code [compressedOffset(i), +compressedSize(i))} of the diff
 * object, with a CRC-32C of the stored (compressed) bytes, checked before decompressing, and one
 * of the uncompressed bytes, checked after (so a decompressor's bug cannot serve wrong bytes).
 *
 * <p>Frames are stored back to back from offset 0: the diff object's size is
 * {@link #compressedSize()}. The constructor checks all of this, so a table that exists is one
 * a reader can follow. Immutable (the arrays are copied in and never handed out).
 */
public final class FrameTable {
    /** 2 MiB of uncompressed bytes per frame: half a chunk, so a miss fetches about as much as before. */
    public static final int DEFAULT_FRAME_SIZE = 2 << 20;
    /** Frames larger than this would make one miss fetch too much (and the staging buffers huge). */
    public static final int MAX_FRAME_SIZE = 64 << 20;

    private final int codec;
    private final int frameSize;
    private final long size;
    private final long[] compressedOffsets;
    private final int[] compressedSizes;
    private final int[] compressedCrcs;
    private final int[] uncompressedCrcs;

    public FrameTable(int codec, int frameSize, long size, long[] compressedOffsets, int[] compressedSizes,
                      int[] compressedCrcs, int[] uncompressedCrcs) {
        if (codec < 0 || codec > 0xffff) {
            throw new IllegalArgumentException("codec id must be a u16, is " + codec);
        }
        if (frameSize < 512 || frameSize > MAX_FRAME_SIZE || Integer.bitCount(frameSize) != 1) {
            throw new IllegalArgumentException("frame size must be a power of two in [512, " + MAX_FRAME_SIZE + "], is "
                    + frameSize);
        }
        if (size < 0) {
            throw new IllegalArgumentException("uncompressed size must be >= 0, is " + size);
        }
        long frames = (size + frameSize - 1) / frameSize;
        int n = compressedOffsets.length;
        if (frames != n || compressedSizes.length != n || compressedCrcs.length != n || uncompressedCrcs.length != n) {
            throw new IllegalArgumentException(size + " bytes in frames of " + frameSize + " need " + frames
                    + " frames, the table has " + n + " offsets, " + compressedSizes.length + " sizes, "
                    + compressedCrcs.length + " and " + uncompressedCrcs.length + " checksums");
        }
        long expect = 0;
        for (int i = 0; i < n; i++) {
            if (compressedOffsets[i] != expect) {
                throw new IllegalArgumentException("frame " + i + " compressed offset: frames are stored back to back, "
                        + "expected " + expect + ", found " + compressedOffsets[i]);
            }
            if (compressedSizes[i] <= 0) {
                throw new IllegalArgumentException("frame " + i + " compressed size must be > 0, is " + compressedSizes[i]);
            }
            expect += compressedSizes[i];
        }
        this.codec = codec;
        this.frameSize = frameSize;
        this.size = size;
        this.compressedOffsets = compressedOffsets.clone();
        this.compressedSizes = compressedSizes.clone();
        this.compressedCrcs = compressedCrcs.clone();
        this.uncompressedCrcs = uncompressedCrcs.clone();
    }

    public int codec() {
        return codec;
    }

    public int frameSize() {
        return frameSize;
    }

    /** Uncompressed bytes in all frames: the build's size. */
    public long size() {
        return size;
    }

    public int frames() {
        return compressedOffsets.length;
    }

    /** The diff object's size: every frame, compressed, back to back. */
    public long compressedSize() {
        int n = frames();
        return n == 0 ? 0 : compressedOffsets[n - 1] + compressedSizes[n - 1];
    }

    public long uncompressedOffset(int frame) {
        return (long) frame * frameSize;
    }

    public int uncompressedSize(int frame) {
        return (int) Math.min(frameSize, size - uncompressedOffset(frame));
    }

    public long compressedOffset(int frame) {
        return compressedOffsets[frame];
    }

    public int compressedSize(int frame) {
        return compressedSizes[frame];
    }

    public int compressedCrc(int frame) {
        return compressedCrcs[frame];
    }

    public int uncompressedCrc(int frame) {
        return uncompressedCrcs[frame];
    }

    /** The largest stored frame: what a fetch's staging buffer must hold. */
    public int maxCompressedSize() {
        int max = 0;
        for (int s : compressedSizes) {
            max = Math.max(max, s);
        }
        return max;
    }

    /** CRC-32C of a frame's bytes, as the table stores it. */
    public static int crc(java.nio.ByteBuffer bytes) {
        CRC32C c = new CRC32C();
        c.update(bytes);
        return (int) c.getValue();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof FrameTable t && codec == t.codec && frameSize == t.frameSize && size == t.size
                && Arrays.equals(compressedOffsets, t.compressedOffsets) && Arrays.equals(compressedSizes, t.compressedSizes)
                && Arrays.equals(compressedCrcs, t.compressedCrcs) && Arrays.equals(uncompressedCrcs, t.uncompressedCrcs);
    }

    @Override
    public int hashCode() {
        return Long.hashCode(size) * 31 + Arrays.hashCode(compressedCrcs);
    }

    @Override
    public String toString() {
        return "FrameTable[codec " + codec + ", " + frames() + " frames of " + frameSize + ", " + size + " -> "
                + compressedSize() + " bytes]";
    }
}
