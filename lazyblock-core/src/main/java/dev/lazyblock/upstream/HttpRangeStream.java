package dev.lazyblock.upstream;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.util.function.BiFunction;

/**
 * The body of a validated 206 response, handed out as it arrives. Closing it before the end
 * cancels the body, which drops the connection (HTTP/1.1) or resets the stream (HTTP/2); reading
 * to the end returns the connection to the client's pool.
 *
 * <p>A read blocked waiting for bytes has no timeout of its own; {@link #close()} from another
 * thread wakes it with an error.
 */
final class HttpRangeStream implements Upstream.RangeStream {
    /** Staging for buffers without an array (direct or mapped): the body arrives as byte[]s. */
    private static final int SCRATCH = 64 * 1024;

    private final InputStream body;
    private final long len;
    private final BiFunction<String, Throwable, UpstreamException> error;
    private long done;
    private byte[] scratch;

    /** @param error builds the exception for a problem, naming the object and range */
    HttpRangeStream(InputStream body, long len, BiFunction<String, Throwable, UpstreamException> error) {
        this.body = body;
        this.len = len;
        this.error = error;
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
        if (done == len) {
            return -1;
        }
        int want = (int) Math.min(dst.remaining(), len - done);
        if (want == 0) {
            return 0;
        }
        int n;
        try {
            if (scratch == null && !dst.hasArray()) {
                scratch = new byte[(int) Math.min(SCRATCH, len)];
            }
            n = Bodies.read(body, dst, want, scratch);
        } catch (IOException e) {
            throw error.apply("body failed after " + done + " of " + len + " bytes", e);
        }
        if (n < 0) {
            throw error.apply("body ended early: expected " + len + " bytes, got " + done, null);
        }
        done += n;
        if (done == len) {
            expectEnd();
        }
        return n;
    }

    /**
     * Reads the body's end, which also hands an HTTP/1.1 connection back to the pool, and
     * refuses a body longer than the range (possible with chunked encoding).
     */
    private void expectEnd() throws IOException {
        int extra;
        try {
            extra = body.read();
        } catch (IOException e) {
            throw error.apply("body failed after all " + len + " bytes of the range", e);
        }
        if (extra >= 0) {
            throw error.apply("body longer than the range: more than " + len + " bytes", null);
        }
    }

    @Override
    public void close() throws IOException {
        body.close();
    }
}
