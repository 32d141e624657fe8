package dev.lazyblock.content;

import java.nio.ByteBuffer;
import java.util.HexFormat;

/**
 * The SHA-256 of a chunk's stored bytes, as four longs: a map key with no array behind it, and
 * the name of the chunk's object in a store ({@link #objectKey}).
 */
public record ContentKey(long a, long b, long c, long d) {
    /** Where chunk objects live under a store prefix: {@code <dir>/chunks/<first 2 hex>/<64 hex>}. */
    public static final String CHUNKS = "chunks";

    public static ContentKey of(byte[] hash, int off) {
        ByteBuffer bb = ByteBuffer.wrap(hash, off, ContentTable.HASH_BYTES);
        return new ContentKey(bb.getLong(), bb.getLong(), bb.getLong(), bb.getLong());
    }

    public static ContentKey of(byte[] hash) {
        if (hash.length != ContentTable.HASH_BYTES) {
            throw new IllegalArgumentException("a SHA-256 is 32 bytes, got " + hash.length);
        }
        return of(hash, 0);
    }

    public byte[] bytes() {
        return ByteBuffer.allocate(ContentTable.HASH_BYTES).putLong(a).putLong(b).putLong(c).putLong(d).array();
    }

    public String hex() {
        return HexFormat.of().formatHex(bytes());
    }

    /** This chunk's object under the store prefix {@code dir} ("" at the top). */
    public String objectKey(String dir) {
        String hex = hex();
        String k = CHUNKS + "/" + hex.substring(0, 2) + "/" + hex;
        return dir.isEmpty() ? k : dir + "/" + k;
    }

    @Override
    public String toString() {
        return hex();
    }
}
