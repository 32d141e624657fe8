package dev.lazyblock.upstream;

import java.nio.ByteBuffer;

/** Argument checks shared by the upstreams: a bad range is the caller's bug, not storage's. */
final class Ranges {
    private Ranges() {}

    /** Throws IllegalArgumentException unless {@code [off, off + len)} is a valid byte range. */
    static void check(long off, long len) {
        if (off < 0) {
            throw new IllegalArgumentException("offset must be >= 0, got " + off);
        }
        if (len < 0) {
            throw new IllegalArgumentException("length must be >= 0, got " + len);
        }
        if (off + len < 0) {
            throw new IllegalArgumentException(
                    "range [" + off + ", " + off + " + " + len + ") overflows a long");
        }
    }

    /** The value of an HTTP {@code Range} header for {@code [off, off + len)}, len > 0. */
    static String httpRange(long off, long len) {
        return "bytes=" + off + "-" + (off + len - 1);
    }

    /** The stream of an empty range: nothing to fetch, so no request is made. */
    static Upstream.RangeStream emptyStream() {
        return new Upstream.RangeStream() {
            @Override
            public int read(ByteBuffer dst) {
                return -1;
            }

            @Override
            public void close() {}
        };
    }
}
