package dev.lazyblock.content;

import java.util.Arrays;
import java.util.HexFormat;

/**
 * How a content-addressed build is stored: chunk {@code i} holds the build's bytes
 * {@code [i * chunkSize, +uncompressedSize(i))} (every chunk is {@code chunkSize} but the last),
 * stored as its own object named by the SHA-256 of its stored bytes ({@link ContentKeys}), raw
 * or compressed with {@code codec} (0: raw), with a CRC-32C of the uncompressed bytes checked
 * after decompressing. An all-zero chunk is stored nowhere: its stored size is 0 and its hash
 * all zeros, and a reader fills it locally.
 *
 * <p>Naming an object by the hash of its stored bytes makes the check on fetch free (the
 * bytes must hash to their own name) and makes two builds with a chunk in common store it once
 * per store prefix, as long as they encode it alike (same codec; compression is deterministic).
 * Immutable: the arrays are copied in and never handed out; the constructor checks every field.
 */
public final class ContentTable {
    /** Below this, per-object request overhead dominates any dedup gain. */
    public static final int MIN_CHUNK_SIZE = 64 << 10;
    public static final int MAX_CHUNK_SIZE = 64 << 20;
    public static final int DEFAULT_CHUNK_SIZE = 4 << 20;
    public static final int HASH_BYTES = 32;

    private final int chunkSize;
    private final int codec;
    private final long size;
    /** {@code HASH_BYTES} per chunk, back to back. */
    private final byte[] hashes;
    private final int[] storedSizes;
    private final int[] uncompressedCrcs;
    /** Null unless encrypted ({@link ContentCipher}): {@code WRAPPED_BYTES} per chunk, the chunk keys wrapped. */
    private final byte[] wrappedKeys;

    public ContentTable(int chunkSize, int codec, long size, byte[] hashes, int[] storedSizes, int[] uncompressedCrcs) {
        this(chunkSize, codec, size, hashes, storedSizes, uncompressedCrcs, null);
    }

    /**
     * @param wrappedKeys null for chunks stored in the clear; else each chunk's key wrapped
     *                    ({@link ContentCipher#WRAPPED_BYTES} each, zeros for a zero chunk): its
     *                    stored bytes are then encrypted (a tag longer than the plain or compressed
     *                    bytes), and its uncompressed CRC-32C is 0 (a checksum of the plain bytes
     *                    in the bucket would let anyone confirm a guess; the tag authenticates them)
     */
    public ContentTable(int chunkSize, int codec, long size, byte[] hashes, int[] storedSizes, int[] uncompressedCrcs,
                        byte[] wrappedKeys) {
        if (chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE || Integer.bitCount(chunkSize) != 1) {
            throw new IllegalArgumentException("content chunk size must be a power of two in [" + MIN_CHUNK_SIZE + ", "
                    + MAX_CHUNK_SIZE + "], is " + chunkSize);
        }
        if (codec < 0 || codec > 0xffff) {
            throw new IllegalArgumentException("codec id must be a u16, is " + codec);
        }
        if (size < 0) {
            throw new IllegalArgumentException("size must be >= 0, is " + size);
        }
        long chunks = (size + chunkSize - 1) / chunkSize;
        int n = storedSizes.length;
        if (chunks != n || uncompressedCrcs.length != n || hashes.length != (long) n * HASH_BYTES) {
            throw new IllegalArgumentException(size + " bytes in chunks of " + chunkSize + " need " + chunks
                    + " chunks, the table has " + n + " sizes, " + uncompressedCrcs.length + " checksums and "
                    + hashes.length / HASH_BYTES + " hashes");
        }
        for (int i = 0; i < n; i++) {
            boolean zeroHash = Arrays.mismatch(hashes, i * HASH_BYTES, (i + 1) * HASH_BYTES, ZERO_HASH, 0, HASH_BYTES) < 0;
            if (storedSizes[i] < 0) {
                throw new IllegalArgumentException("chunk " + i + " stored size must be >= 0, is " + storedSizes[i]);
            }
            if ((storedSizes[i] == 0) != zeroHash) {
                throw new IllegalArgumentException("chunk " + i + (zeroHash
                        ? " has the all-zero hash of a zero chunk but a stored size of " + storedSizes[i]
                        : " is stored in 0 bytes but has a hash: only zero chunks are stored in none"));
            }
            int overhead = wrappedKeys == null ? 0 : ContentCipher.TAG_BYTES;
            if (codec == 0 && storedSizes[i] != 0 && storedSizes[i] != uncompressedSize(chunkSize, size, i) + overhead) {
                throw new IllegalArgumentException("chunk " + i + " is stored raw" + (overhead == 0 ? "" : ", encrypted")
                        + ", so its stored size must be " + (uncompressedSize(chunkSize, size, i) + overhead) + ", is "
                        + storedSizes[i]);
            }
            if (wrappedKeys != null && storedSizes[i] != 0 && storedSizes[i] <= ContentCipher.TAG_BYTES) {
                throw new IllegalArgumentException("chunk " + i + " is encrypted in " + storedSizes[i]
                        + " bytes, no more than its tag");
            }
            if (wrappedKeys != null && uncompressedCrcs[i] != 0) {
                throw new IllegalArgumentException("chunk " + i + " is encrypted, so its uncompressed CRC-32C must be 0 "
                        + "(not published), is " + Integer.toHexString(uncompressedCrcs[i]));
            }
        }
        if (wrappedKeys != null && wrappedKeys.length != (long) n * ContentCipher.WRAPPED_BYTES) {
            throw new IllegalArgumentException(n + " encrypted chunks need " + n * ContentCipher.WRAPPED_BYTES
                    + " bytes of wrapped keys, the table has " + wrappedKeys.length);
        }
        this.chunkSize = chunkSize;
        this.codec = codec;
        this.size = size;
        this.hashes = hashes.clone();
        this.storedSizes = storedSizes.clone();
        this.uncompressedCrcs = uncompressedCrcs.clone();
        this.wrappedKeys = wrappedKeys == null ? null : wrappedKeys.clone();
    }

    /** Whether the chunks are stored encrypted ({@link ContentCipher}). */
    public boolean encrypted() {
        return wrappedKeys != null;
    }

    /** Chunk {@code i}'s key, wrapped; only for an encrypted table. */
    public byte[] wrappedKey(int i) {
        if (wrappedKeys == null) {
            throw new IllegalStateException("the chunks are not encrypted");
        }
        return Arrays.copyOfRange(wrappedKeys, i * ContentCipher.WRAPPED_BYTES, (i + 1) * ContentCipher.WRAPPED_BYTES);
    }

    private static final byte[] ZERO_HASH = new byte[HASH_BYTES];

    private static int uncompressedSize(int chunkSize, long size, int i) {
        return (int) Math.min(chunkSize, size - (long) i * chunkSize);
    }

    public int chunkSize() {
        return chunkSize;
    }

    /** 0: chunks are stored raw. */
    public int codec() {
        return codec;
    }

    /** The build's (uncompressed) size. */
    public long size() {
        return size;
    }

    public int chunks() {
        return storedSizes.length;
    }

    public long uncompressedOffset(int i) {
        return (long) i * chunkSize;
    }

    public int uncompressedSize(int i) {
        return uncompressedSize(chunkSize, size, i);
    }

    /** Bytes of chunk {@code i}'s object; 0 for a zero chunk (no object). */
    public int storedSize(int i) {
        return storedSizes[i];
    }

    public int uncompressedCrc(int i) {
        return uncompressedCrcs[i];
    }

    /** Whether chunk {@code i} is all zeros, stored nowhere. */
    public boolean isZero(int i) {
        return storedSizes[i] == 0;
    }

    /** Chunk {@code i}'s object name: the SHA-256 of its stored bytes. */
    public ContentKey key(int i) {
        return ContentKey.of(hashes, i * HASH_BYTES);
    }

    /** The distinct objects the chunks name (zero chunks name none). */
    public java.util.Set<ContentKey> keys() {
        java.util.Set<ContentKey> out = new java.util.HashSet<>();
        for (int i = 0; i < chunks(); i++) {
            if (!isZero(i)) {
                out.add(key(i));
            }
        }
        return out;
    }

    /** Whether {@code digest} (32 bytes) is chunk {@code i}'s hash. */
    public boolean matches(int i, byte[] digest) {
        return Arrays.mismatch(hashes, i * HASH_BYTES, (i + 1) * HASH_BYTES, digest, 0, HASH_BYTES) < 0;
    }

    /** Bytes of all the objects the chunks name, counting a repeated one each time. */
    public long storedBytes() {
        long s = 0;
        for (int n : storedSizes) {
            s += n;
        }
        return s;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ContentTable t && chunkSize == t.chunkSize && codec == t.codec && size == t.size
                && Arrays.equals(hashes, t.hashes) && Arrays.equals(storedSizes, t.storedSizes)
                && Arrays.equals(uncompressedCrcs, t.uncompressedCrcs) && Arrays.equals(wrappedKeys, t.wrappedKeys);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(hashes) * 31 + Long.hashCode(size);
    }

    @Override
    public String toString() {
        return "ContentTable[" + chunks() + " chunks of " + chunkSize + ", codec " + codec + (encrypted() ? ", encrypted" : "")
                + ", " + size + " bytes, first "
                + (chunks() == 0 ? "-" : HexFormat.of().formatHex(hashes, 0, 8)) + "]";
    }
}
