package dev.lazyblock.upstream;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;

/** Response bodies (HTTP, S3) into the buffers chunkers hand out. */
public final class Bodies {
    private Bodies() {}

    /**
     * Reads up to {@code want} bytes of {@code in} into {@code dst} and advances its position:
     * straight into a heap buffer's array, through {@code scratch} for a direct buffer (which then
     * must not be null).
     *
     * @return the bytes read, or -1 at the end of the stream
     */
    public static int read(InputStream in, ByteBuffer dst, int want, byte[] scratch) throws IOException {
        int n;
        if (dst.hasArray()) {
            n = in.read(dst.array(), dst.arrayOffset() + dst.position(), want);
            if (n > 0) {
                dst.position(dst.position() + n);
            }
        } else {
            n = in.read(scratch, 0, Math.min(want, scratch.length));
            if (n > 0) {
                dst.put(scratch, 0, n);
            }
        }
        return n;
    }
}
