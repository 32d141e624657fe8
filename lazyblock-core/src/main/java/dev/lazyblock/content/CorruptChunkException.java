package dev.lazyblock.content;

import java.io.IOException;

/**
 * A content-addressed chunk whose bytes do not hash to its name, did not decompress, or fail
 * their uncompressed checksum. None of its bytes were served or marked present; the next read
 * fetches it again.
 */
public final class CorruptChunkException extends IOException {
    private final ContentKey key;

    public CorruptChunkException(String build, int chunk, ContentKey key, String why) {
        super("corrupt chunk " + chunk + " of build " + build + " (object " + key.hex() + "): " + why);
        this.key = key;
    }

    /** A fresh exception for one reader, with the fetch's as its cause. */
    public CorruptChunkException(CorruptChunkException shared) {
        super(shared.getMessage(), shared);
        this.key = shared.key;
    }

    public ContentKey key() {
        return key;
    }
}
