package dev.lazyblock.upstream;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * A range stream that delivers {@code [off, off+len)} in pieces of at most {@code pieceSize}
 * bytes: the bookkeeping shared by streams over positional sources (files, simulated stores).
 * A subclass says how one piece is read.
 */
abstract class PieceStream implements Upstream.RangeStream {
    private final String name;
    final long off;
    final long len;
    private final int pieceSize;
    /** Bytes delivered so far. */
    long done;
    private volatile boolean open = true;

    PieceStream(String name, long off, long len, int pieceSize) {
        this.name = name;
        this.off = off;
        this.len = len;
        this.pieceSize = pieceSize;
    }

    /**
     * Reads at least one and at most {@code dst.remaining()} bytes at {@code pos} of the source
     * into {@code dst} (whose limit is narrowed to the piece), advancing its position; throws if
     * the source has ended before the range.
     *
     * @return the bytes read
     */
    abstract int readPiece(long pos, ByteBuffer dst) throws IOException;

    @Override
    public final int read(ByteBuffer dst) throws IOException {
        if (!open) {
            throw new IOException("range stream of " + name + " is closed");
        }
        if (done == len) {
            return -1;
        }
        int n = (int) Math.min(Math.min(dst.remaining(), len - done), pieceSize);
        if (n == 0) {
            return 0;
        }
        // Narrow the caller's buffer rather than slicing it: no object per piece.
        int limit = dst.limit();
        dst.limit(dst.position() + n);
        try {
            n = readPiece(off + done, dst);
        } finally {
            dst.limit(limit);
        }
        done += n;
        return n;
    }

    @Override
    public void close() {
        open = false;
    }
}
