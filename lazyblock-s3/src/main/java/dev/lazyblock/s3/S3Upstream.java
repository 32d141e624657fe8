package dev.lazyblock.s3;

import dev.lazyblock.upstream.Bodies;
import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.UpstreamException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.io.InterruptedIOException;
import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import software.amazon.awssdk.core.ResponseInputStream;
import software.amazon.awssdk.core.exception.RetryableException;
import software.amazon.awssdk.retries.api.BackoffStrategy;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.model.GetObjectRequest;
import software.amazon.awssdk.services.s3.model.GetObjectResponse;
import software.amazon.awssdk.services.s3.model.HeadObjectResponse;

/**
 * Ranged reads of one S3 object with the AWS SDK's synchronous client.
 *
 * <p>Every read is one {@code GetObject} with {@code Range: bytes=a-b} whose answer must be
 * exactly that range: a {@code Content-Range} naming the first and last byte asked for and a
 * {@code Content-Length} of that many bytes, then that many bytes of body. Anything else (a
 * range past the end, a short body) is an {@link UpstreamException} naming
 * {@code s3://bucket/key}, the range and what came back.
 *
 * <p>The first answer's ETag is pinned: later requests carry {@code If-Match}, so an object
 * replaced while it is being read fails with "the object changed" instead of mixing two
 * versions' bytes.
 *
 * <p>{@link #readFully} runs within the client's attempt and call timeouts and is retried by the
 * SDK (a connection reset mid-body included). {@link #openRange} must get its response within
 * them; its body then flows at S3's pace, each wait bounded by the socket timeout, and
 * {@link RangeStream#close()} aborts the connection, from any thread. A range stream whose
 * connection drops mid-body (an I/O error or an early end, not an HTTP error) asks for the rest,
 * {@code bytes=<first byte not received>-<last>}, with the same {@code If-Match}, after a
 * back-off: at most {@code maxAttempts} requests per stream, all of them within the call
 * timeout of the first failure. The reader sees one unbroken stream, or an error saying how far
 * it got and why it gave up.
 */
public final class S3Upstream implements Upstream {
    private static final Logger log = LoggerFactory.getLogger(S3Upstream.class);
    /** Staging for buffers without an array (direct or mapped). */
    private static final int SCRATCH = 64 * 1024;
    private static final Pattern CONTENT_RANGE = Pattern.compile("bytes (\\d+)-(\\d+)/(\\d+|\\*)");

    private final S3Client s3;
    private final boolean ownsClient;
    private final S3Location location;
    private final String name;
    private final S3Errors errors;
    /** Most requests a range stream makes (the first included) when its connection drops. */
    private final int maxOpens;
    /** Back-off before each reopening of a range stream. */
    private final BackoffStrategy backoff;
    /** Reopenings of a range stream end this long after its first failure. */
    private final Duration resumeWindow;
    /** -1 until learned from HeadObject or a Content-Range. */
    private volatile long size = -1;
    /** Null until learned; then every request is conditional on it. */
    private volatile String etag;

    /** Reads through {@code s3}, a client the caller keeps and closes. */
    /**
     * Reads through {@code s3}, a client the caller keeps and closes. Range streams resume as
     * {@link S3Config#defaults()} says (attempts, back-off, call timeout).
     */
    public S3Upstream(S3Client s3, S3Location location) {
        this(s3, false, location, S3Config.defaults(), S3Errors.NONE);
    }

    S3Upstream(S3Client s3, boolean ownsClient, S3Location location, S3Config config, S3Errors errors) {
        this.s3 = Objects.requireNonNull(s3, "s3");
        this.ownsClient = ownsClient;
        this.location = Objects.requireNonNull(location, "location");
        this.name = location.url();
        this.errors = errors;
        this.maxOpens = config.maxAttempts();
        this.backoff = config.backoff();
        this.resumeWindow = config.apiCallTimeout();
    }

    /** Reads through a client of its own, built from {@code config}, closed by {@link #close()}. */
    public static S3Upstream open(S3Config config, S3Location location) {
        Objects.requireNonNull(location, "location");
        return new S3Upstream(config.newClient(), true, location, config, new S3Errors(config.secrets()));
    }

    public S3Location location() {
        return location;
    }

    /** {@code s3://bucket/key}: never an endpoint, never credentials. */
    @Override
    public String name() {
        return name;
    }

    /** From {@code HeadObject}'s Content-Length, once; cached. */
    @Override
    public long size() throws IOException {
        long known = size;
        if (known >= 0) {
            return known;
        }
        HeadObjectResponse r;
        try {
            String pinned = etag;
            r = s3.headObject(b -> b.bucket(location.bucket()).key(location.key()).ifMatch(pinned));
        } catch (RuntimeException e) {
            throw errors.size(name, e);
        }
        if (r.contentLength() == null || r.contentLength() < 0) {
            throw new UpstreamException(name, 0, 0, "finding the size: HeadObject answered without a Content-Length");
        }
        learnETag(r.eTag());
        learnSize(r.contentLength());
        log.debug("{}: {} bytes", name, r.contentLength());
        return r.contentLength();
    }

    /** The ETag every request is pinned to, learned with the size. */
    @Override
    public String version() throws IOException {
        size();
        return etag;
    }

    @Override
    public void readFully(long off, ByteBuffer dst) throws IOException {
        int len = dst.remaining();
        checkRange(off, len);
        if (len == 0) {
            return;
        }
        checkAgainstSize(off, len);
        int start = dst.position();
        BodyFailure[] lastBodyFailure = new BodyFailure[1];
        try {
            s3.getObject(rangeRequest(off, len), (response, body) -> {
                dst.position(start); // a retried attempt starts over
                String problem = checkResponse(response, off, len);
                if (problem != null) {
                    throw new S3Errors.Refusal(error(off, len, problem));
                }
                try {
                    readBody(body, dst, off, len);
                } catch (BodyFailure f) {
                    // The SDK retries a response transformer's failure only if told so.
                    lastBodyFailure[0] = f;
                    throw RetryableException.builder().message(f.getMessage()).cause(f.getCause()).build();
                }
                return null;
            });
        } catch (RuntimeException e) {
            BodyFailure f = lastBodyFailure[0];
            // Said only if the call ended with it, not with a later attempt's other failure.
            boolean endedWithIt = f != null && S3Errors.causedBy(e, f.getCause());
            throw errors.read(name, off, len, e, endedWithIt ? f.getMessage() : null);
        }
    }

    /**
     * Reads the whole body into {@code dst}. A transport failure is a {@link BodyFailure}
     * (retried); a body that ends early without one, or runs on, is refused.
     */
    private void readBody(InputStream body, ByteBuffer dst, long off, int len) throws BodyFailure {
        int done = 0;
        byte[] scratch = dst.hasArray() ? null : new byte[Math.min(SCRATCH, len)];
        try {
            while (done < len) {
                int n;
                if (scratch == null) {
                    n = body.read(dst.array(), dst.arrayOffset() + dst.position(), len - done);
                    if (n > 0) {
                        dst.position(dst.position() + n);
                    }
                } else {
                    n = body.read(scratch, 0, Math.min(scratch.length, len - done));
                    if (n > 0) {
                        dst.put(scratch, 0, n);
                    }
                }
                if (n < 0) {
                    throw new S3Errors.Refusal(error(off, len, "body ended early: expected " + len + " bytes, got "
                            + done));
                }
                done += n;
            }
            if (body.read() >= 0) {
                throw new S3Errors.Refusal(error(off, len, "body longer than the range: more than " + len + " bytes"));
            }
        } catch (IOException e) {
            throw new BodyFailure("body failed after " + done + " of " + len + " bytes (" + S3Errors.brief(e) + ")", e);
        }
    }

    /** The transport failed while a body was being read. */
    private static final class BodyFailure extends IOException {
        BodyFailure(String message, IOException cause) {
            super(message, cause);
        }
    }

    @Override
    public RangeStream openRange(long off, long len) throws IOException {
        checkRange(off, len);
        if (len == 0) {
            return EMPTY;
        }
        checkAgainstSize(off, len);
        ResponseInputStream<GetObjectResponse> in;
        try {
            in = s3.getObject(rangeRequest(off, len));
        } catch (RuntimeException e) {
            throw errors.read(name, off, len, e, null);
        }
        String problem = checkResponse(in.response(), off, len);
        if (problem != null) {
            in.abort();
            throw error(off, len, problem);
        }
        return new S3RangeStream(in, off, len);
    }

    /** Closes the client if this upstream built it. */
    @Override
    public void close() {
        if (ownsClient) {
            s3.close();
        }
    }

    @Override
    public String toString() {
        return "S3Upstream[" + name + "]";
    }

    private GetObjectRequest rangeRequest(long off, long len) {
        return rangeRequest(off, len, null);
    }

    /** A ranged GET, conditional on the pinned ETag; {@code callTimeout} null: the client's. */
    private GetObjectRequest rangeRequest(long off, long len, Duration callTimeout) {
        GetObjectRequest.Builder b = GetObjectRequest.builder()
                .bucket(location.bucket())
                .key(location.key())
                .range("bytes=" + off + "-" + (off + len - 1))
                .ifMatch(etag);
        if (callTimeout != null) {
            b.overrideConfiguration(o -> o.apiCallTimeout(callTimeout));
        }
        return b.build();
    }

    /** Null if the response is exactly {@code [off, off + len)}, else what is wrong with it. */
    private String checkResponse(GetObjectResponse r, long off, long len) {
        String cr = r.contentRange();
        if (cr == null) {
            return "no Content-Range in the answer: the store ignored the Range header";
        }
        Matcher m = CONTENT_RANGE.matcher(cr.strip());
        if (!m.matches()) {
            return "unreadable Content-Range '" + cr + "'";
        }
        long first = Long.parseLong(m.group(1));
        long last = Long.parseLong(m.group(2));
        long total = m.group(3).equals("*") ? -1 : Long.parseLong(m.group(3));
        if (total >= 0) {
            long known = size;
            if (known >= 0 && known != total) {
                return "the object changed size: it was " + known + " bytes, Content-Range says " + total;
            }
            learnSize(total);
            if (first == off && off + len > total) {
                return "the range runs past the end of the object (" + total + " bytes)";
            }
        }
        if (first != off || last != off + len - 1) {
            return "Content-Range '" + cr + "' does not match the request for bytes=" + off + "-" + (off + len - 1);
        }
        Long length = r.contentLength();
        if (length != null && length != len) {
            return "Content-Length " + length + " does not match the range of " + len + " bytes";
        }
        learnETag(r.eTag());
        return null;
    }

    /** Refuses, without a request, a range known to run past the end. */
    private void checkAgainstSize(long off, long len) throws UpstreamException {
        long known = size;
        if (known >= 0 && off + len > known) {
            throw error(off, len, "the range runs past the end of the object (" + known + " bytes)");
        }
    }

    private static void checkRange(long off, long len) {
        if (off < 0) {
            throw new IllegalArgumentException("offset must be >= 0, got " + off);
        }
        if (len < 0) {
            throw new IllegalArgumentException("length must be >= 0, got " + len);
        }
        if (off + len < 0) {
            throw new IllegalArgumentException("range [" + off + ", " + off + " + " + len + ") overflows a long");
        }
    }

    private void learnSize(long total) {
        size = total; // racing writers write the same value, or a changed object was refused
    }

    private void learnETag(String tag) {
        if (etag == null && tag != null && !tag.isEmpty()) {
            etag = tag;
        }
    }

    private UpstreamException error(long off, long len, String what) {
        return error(off, len, what, null);
    }

    private UpstreamException error(long off, long len, String what, Throwable cause) {
        return new UpstreamException(name, off, len, errors.scrub(what), errors.scrub(cause));
    }

    private static final RangeStream EMPTY = new RangeStream() {
        @Override
        public int read(ByteBuffer dst) {
            return -1;
        }

        @Override
        public void close() {}
    };

    /**
     * The body of a validated ranged GET, handed out as it arrives. Reading it to the end hands
     * the connection back to the pool; closing it earlier aborts the connection. {@link #close()}
     * may come from another thread: it wakes a blocked reader with an error (also one waiting out
     * a back-off or reopening the range).
     *
     * <p>When the connection drops mid-body, the rest of the range is asked for again from the
     * first byte not received, conditional on the pinned ETag (so the bytes after the gap are the
     * same version's), after a back-off; see the class comment for the bounds.
     */
    private final class S3RangeStream implements RangeStream {
        private final long off;
        private final long len;
        private final AtomicBoolean closed = new AtomicBoolean();
        /** Counted down by close(): wakes a reader waiting out a back-off. */
        private final CountDownLatch closing = new CountDownLatch(1);
        /** The current connection's body; replaced by the reader thread when it resumes. */
        private volatile ResponseInputStream<GetObjectResponse> in;
        private volatile boolean complete;
        /** Bytes handed to the reader: the next request, if any, starts at off + done. */
        private long done;
        /** Requests made for this range, the first included. */
        private int opens = 1;
        /** When the first body failure happened; resumes end resumeWindow later. */
        private long firstFailureNanos;
        private byte[] scratch;

        S3RangeStream(ResponseInputStream<GetObjectResponse> in, long off, long len) {
            this.in = in;
            this.off = off;
            this.len = len;
        }

        @Override
        public int read(ByteBuffer dst) throws IOException {
            if (closed.get()) {
                throw closedError(null);
            }
            if (done == len) {
                return -1;
            }
            int want = (int) Math.min(dst.remaining(), len - done);
            if (want == 0) {
                return 0;
            }
            if (scratch == null && !dst.hasArray()) {
                scratch = new byte[(int) Math.min(SCRATCH, len)];
            }
            while (true) {
                ResponseInputStream<GetObjectResponse> body = in;
                int n;
                try {
                    n = Bodies.read(body, dst, want, scratch);
                } catch (IOException e) {
                    abortQuietly(body);
                    if (closed.get()) {
                        throw closedError(e);
                    }
                    resume(e, S3Errors.brief(e));
                    continue;
                } catch (RuntimeException e) {
                    // Not the transport (the SDK's own verdict on the body): not worth a resume.
                    abortQuietly(body);
                    if (closed.get()) {
                        throw closedError(e);
                    }
                    throw error(off, len, "body failed after " + done + " of " + len + " bytes ("
                            + S3Errors.brief(e) + ")", e);
                }
                if (n < 0) {
                    // The store (or a middlebox) ended the body early without an error: a drop too.
                    abortQuietly(body);
                    if (closed.get()) {
                        throw closedError(null);
                    }
                    resume(null, "body ended early: expected " + (len - done) + " more bytes");
                    continue;
                }
                done += n;
                if (done == len) {
                    finish();
                }
                return n;
            }
        }

        /**
         * Replaces the failed connection with a request for the rest of the range, after a
         * back-off; or throws, saying how far the stream got, what failed and why it gave up.
         */
        private void resume(IOException failure, String how) throws IOException {
            String what = "body failed after " + done + " of " + len + " bytes (" + how + ")";
            long now = System.nanoTime();
            if (opens == 1) {
                firstFailureNanos = now;
            }
            if (opens >= maxOpens) {
                throw error(off, len, what + (opens > 1 ? "; gave up after " + opens + " attempts" : ""), failure);
            }
            Duration delay = backoff.computeDelay(opens + 1);
            long left = firstFailureNanos + resumeWindow.toNanos() - now - delay.toNanos();
            if (left <= 0) {
                throw error(off, len, what + "; gave up after " + opens + (opens == 1 ? " attempt" : " attempts")
                        + ": no time left to ask for the rest within the call timeout (" + resumeWindow.toMillis()
                        + " ms)", failure);
            }
            long from = off + done;
            log.debug("{}: {}; asking for bytes {}-{} again in {} ms (attempt {} of {})", name, what, from,
                    off + len - 1, delay.toMillis(), opens + 1, maxOpens);
            try {
                if (closing.await(delay.toNanos(), TimeUnit.NANOSECONDS)) {
                    throw closedError(failure);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                InterruptedIOException ie = new InterruptedIOException("interrupted resuming [" + off + ", "
                        + (off + len) + ") of " + name + " at byte " + from);
                ie.initCause(failure);
                throw ie;
            }
            opens++;
            ResponseInputStream<GetObjectResponse> next;
            try {
                // Within what is left of the window: the whole resume ends in time, not each try.
                next = s3.getObject(rangeRequest(from, len - done, Duration.ofNanos(Math.max(left,
                        TimeUnit.MILLISECONDS.toNanos(1)))));
            } catch (RuntimeException e) {
                IOException why = errors.read(name, from, len - done, e, null);
                if (why instanceof InterruptedIOException) {
                    throw why;
                }
                throw error(off, len, what + "; asking for the rest (bytes=" + from + "-" + (off + len - 1)
                        + ") failed: " + S3Errors.detail(why), why);
            }
            String problem = checkResponse(next.response(), from, len - done);
            if (problem != null) {
                abortQuietly(next);
                throw error(off, len, what + "; asking for the rest (bytes=" + from + "-" + (off + len - 1)
                        + "): " + problem, failure);
            }
            in = next;
            if (closed.get()) {
                // close() may have aborted the old body just before the swap: abort the new one.
                abortQuietly(next);
                throw closedError(failure);
            }
        }

        private UpstreamException closedError(Throwable cause) {
            return error(off, len, "range stream closed after " + done + " of " + len + " bytes", cause);
        }

        /** Reads the body's end (which releases the connection) and refuses a longer body. */
        private void finish() throws IOException {
            ResponseInputStream<GetObjectResponse> body = in;
            int extra;
            try {
                extra = body.read();
            } catch (IOException e) {
                abortQuietly(body);
                throw error(off, len, "body failed after all " + len + " bytes of the range", e);
            }
            if (extra >= 0) {
                abortQuietly(body);
                throw error(off, len, "body longer than the range: more than " + len + " bytes");
            }
            complete = true;
            body.close();
        }

        private static void abortQuietly(ResponseInputStream<GetObjectResponse> body) {
            try {
                body.abort();
            } catch (RuntimeException ignored) {
                // the connection is being dropped anyway
            }
        }

        /** Idempotent; from any thread. Aborts the connection unless the range was read whole. */
        @Override
        public void close() throws IOException {
            if (!closed.compareAndSet(false, true)) {
                return;
            }
            closing.countDown();
            ResponseInputStream<GetObjectResponse> body = in;
            if (complete) {
                body.close();
            } else {
                abortQuietly(body);
            }
        }
    }
}
