package dev.lazyblock.frame;

import java.io.IOException;

/**
 * A frame of a compressed layer that failed its checksum or did not decompress. None of its
 * bytes were served or marked present; the next read fetches it again.
 */
public final class CorruptFrameException extends IOException {
    private final String build;
    private final int frame;

    public CorruptFrameException(String build, int frame, FrameTable table, String why) {
        super("corrupt frame " + frame + " of build " + build + " (compressed [" + table.compressedOffset(frame) + ", +"
                + table.compressedSize(frame) + "), uncompressed [" + table.uncompressedOffset(frame) + ", +"
                + table.uncompressedSize(frame) + ")): " + why);
        this.build = build;
        this.frame = frame;
    }

    /** A fresh exception for one reader, with the fetch's as its cause. */
    public CorruptFrameException(CorruptFrameException shared) {
        super(shared.getMessage(), shared);
        this.build = shared.build;
        this.frame = shared.frame;
    }

    public String build() {
        return build;
    }

    public int frame() {
        return frame;
    }
}
