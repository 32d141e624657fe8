package dev.lazyblock.azure;

import com.azure.storage.blob.BlobAsyncClient;
import com.azure.storage.blob.BlobClient;
import com.azure.storage.blob.models.BlobDownloadAsyncResponse;
import com.azure.storage.blob.models.BlobDownloadHeaders;
import com.azure.storage.blob.models.BlobDownloadResponse;
import com.azure.storage.blob.models.BlobProperties;
import com.azure.storage.blob.models.BlobRange;
import com.azure.storage.blob.models.BlobRequestConditions;
import com.azure.storage.blob.models.DownloadRetryOptions;
import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.UpstreamException;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.reactivestreams.Subscription;
import reactor.core.CoreSubscriber;
import reactor.util.context.Context;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Ranged reads of one blob with the Azure SDK.
 *
 * <p>Every read is one Get Blob with {@code x-ms-range: bytes=a-b} whose answer must be exactly
 * that range ({@code Content-Range} and {@code Content-Length}, then that many bytes). The first
 * answer's ETag is pinned: later requests carry {@code If-Match}, so a blob replaced while it is
 * being read fails with "the blob changed" instead of mixing two versions' bytes.
 *
 * <p>{@link #readFully} and {@link #size} end within the call timeout. {@link #openRange} gets its
 * response headers within the call timeout; its body then flows at the store's pace, each wait
 * bounded by the read timeout; {@link RangeStream#close()} cancels it from any thread. A body
 * whose connection drops mid-way is resumed by the SDK from the first byte not received, with
 * the pinned ETag, at most {@code maxAttempts - 1} times per read.
 */
public final class AzureBlobUpstream implements Upstream {
    private static final Logger log = LoggerFactory.getLogger(AzureBlobUpstream.class);
    private static final Pattern CONTENT_RANGE = Pattern.compile("bytes (\\d+)-(\\d+)/(\\d+|\\*)");

    private final BlobClient blob;
    private final BlobAsyncClient asyncBlob;
    private final AzureLocation location;
    private final String name;
    private final AzureErrors errors;
    private final Duration callTimeout;
    private final Duration readTimeout;
    private final int maxAttempts;
    private volatile long size = -1;
    private volatile String etag;

    AzureBlobUpstream(AzureConfig.Clients clients, AzureLocation location, AzureConfig config, AzureErrors errors) {
        this.location = Objects.requireNonNull(location, "location");
        this.blob = clients.sync().getBlobClient(location.blob());
        this.asyncBlob = clients.async().getBlobAsyncClient(location.blob());
        this.name = location.url();
        this.errors = errors;
        this.callTimeout = config.callTimeout();
        this.readTimeout = config.readTimeout();
        this.maxAttempts = config.maxAttempts();
    }

    /** Reads {@code location} with clients built from {@code config}. No request is made yet. */
    public static AzureBlobUpstream open(AzureConfig config, AzureLocation location) {
        return new AzureBlobUpstream(config.clients(location), location, config,
                new AzureErrors(config.secrets(), config.maxAttempts()));
    }

    public AzureLocation location() {
        return location;
    }

    /** {@code az://container/blob} (or the https form): never an endpoint, never credentials. */
    @Override
    public String name() {
        return name;
    }

    /** From Get Blob Properties, once; cached. */
    @Override
    public long size() throws IOException {
        long known = size;
        if (known >= 0) {
            return known;
        }
        BlobProperties p;
        try {
            p = blob.getPropertiesWithResponse(conditions(), callTimeout, com.azure.core.util.Context.NONE).getValue();
        } catch (RuntimeException e) {
            throw errors.read(name, 0, 0, e);
        }
        learnETag(p.getETag());
        size = p.getBlobSize();
        log.debug("{}: {} bytes", name, p.getBlobSize());
        return p.getBlobSize();
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
        Sink sink = new Sink(dst, len);
        BlobDownloadResponse r;
        try {
            r = blob.downloadStreamWithResponse(sink, new BlobRange(off, (long) len), retries(), conditions(), false,
                    callTimeout, com.azure.core.util.Context.NONE);
        } catch (RuntimeException e) {
            dst.position(start);
            if (sink.overflow) {
                throw error(off, len, "body longer than the range: more than " + len + " bytes");
            }
            throw errors.read(name, off, len, e);
        }
        String problem = checkHeaders(r.getDeserializedHeaders(), off, len);
        if (problem != null) {
            dst.position(start);
            throw error(off, len, problem);
        }
        if (sink.written != len) {
            dst.position(start);
            throw error(off, len, "body ended early: expected " + len + " bytes, got " + sink.written);
        }
    }

    /** Writes a download into the caller's buffer; refuses more than the range. */
    private static final class Sink extends OutputStream {
        private final ByteBuffer dst;
        private final int len;
        int written;
        boolean overflow;

        Sink(ByteBuffer dst, int len) {
            this.dst = dst;
            this.len = len;
        }

        @Override
        public void write(int b) throws IOException {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int o, int n) throws IOException {
            if (written + n > len) {
                overflow = true;
                throw new IOException("body longer than the range of " + len + " bytes");
            }
            dst.put(b, o, n);
            written += n;
        }
    }

    @Override
    public RangeStream openRange(long off, long len) throws IOException {
        checkRange(off, len);
        if (len == 0) {
            return EMPTY;
        }
        checkAgainstSize(off, len);
        BlobDownloadAsyncResponse r;
        try {
            r = asyncBlob.downloadStreamWithResponse(new BlobRange(off, len), retries(), conditions(), false)
                    .block(callTimeout);
        } catch (RuntimeException e) {
            throw errors.read(name, off, len, e);
        }
        if (r == null) {
            throw error(off, len, "no answer to the download request");
        }
        String problem = checkHeaders(r.getDeserializedHeaders(), off, len);
        if (problem != null) {
            closeQuietly(r);
            throw error(off, len, problem);
        }
        AzureRangeStream s = new AzureRangeStream(r, off, len);
        r.getValue().subscribe(s);
        return s;
    }

    /** Nothing to close: the clients hold no resources of their own beyond pooled connections. */
    @Override
    public void close() {}

    @Override
    public String toString() {
        return "AzureBlobUpstream[" + name + "]";
    }

    private DownloadRetryOptions retries() {
        return new DownloadRetryOptions().setMaxRetryRequests(Math.max(0, maxAttempts - 1));
    }

    private BlobRequestConditions conditions() {
        String pinned = etag;
        return pinned == null ? null : new BlobRequestConditions().setIfMatch(pinned);
    }

    /** Null if the answer is exactly {@code [off, off + len)}, else what is wrong with it. */
    private String checkHeaders(BlobDownloadHeaders h, long off, long len) {
        String cr = h.getContentRange();
        if (cr == null) {
            return "no Content-Range in the answer: the store ignored the range";
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
                return "the blob changed size: it was " + known + " bytes, Content-Range says " + total;
            }
            size = total;
            if (first == off && off + len > total) {
                return "the range runs past the end of the blob (" + total + " bytes)";
            }
        }
        if (first != off || last != off + len - 1) {
            return "Content-Range '" + cr + "' does not match the request for bytes=" + off + "-" + (off + len - 1);
        }
        Long length = h.getContentLength();
        if (length != null && length != len) {
            return "Content-Length " + length + " does not match the range of " + len + " bytes";
        }
        learnETag(h.getETag());
        return null;
    }

    private void checkAgainstSize(long off, long len) throws UpstreamException {
        long known = size;
        if (known >= 0 && off + len > known) {
            throw error(off, len, "the range runs past the end of the blob (" + known + " bytes)");
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

    private void learnETag(String tag) {
        if (etag == null && tag != null && !tag.isEmpty()) {
            etag = tag;
        }
    }

    private UpstreamException error(long off, long len, String what) {
        return new UpstreamException(name, off, len, errors.scrub(what));
    }

    private static void closeQuietly(BlobDownloadAsyncResponse r) {
        try {
            r.close();
        } catch (IOException | RuntimeException ignored) {
            // dropping the connection anyway
        }
    }

    private static final RangeStream EMPTY = new RangeStream() {
        @Override
        public int read(ByteBuffer dst) {
            return -1;
        }

        @Override
        public void close() {}
    };

    private static final Object DONE = new Object();
    private static final Object CLOSED = new Object();

    private record Failure(Throwable error) {}

    /**
     * The body of a validated download, handed out as the SDK delivers it (it resumes a dropped
     * connection itself). At most two buffers are asked for ahead of the reader. {@link #close()}
     * may come from another thread: it cancels the download and wakes a blocked reader.
     */
    private final class AzureRangeStream implements RangeStream, CoreSubscriber<ByteBuffer> {
        private final BlobDownloadAsyncResponse response;
        private final long off;
        private final long len;
        private final LinkedBlockingQueue<Object> queue = new LinkedBlockingQueue<>();
        private final AtomicBoolean closed = new AtomicBoolean();
        private volatile Subscription subscription;
        private ByteBuffer current;
        private long done;
        private boolean finished;

        AzureRangeStream(BlobDownloadAsyncResponse response, long off, long len) {
            this.response = response;
            this.off = off;
            this.len = len;
        }

        /**
         * The connection's failure after a cancel (close, a timeout) is expected: logged at debug
         * instead of Reactor's default ERROR "onErrorDropped" (a per-subscription hook).
         */
        @Override
        public Context currentContext() {
            return Context.of("reactor.onErrorDropped.local", (java.util.function.Consumer<Throwable>) t ->
                    log.debug("{}: after the range stream was cancelled: {}", name, AzureErrors.brief(t)));
        }

        @Override
        public void onSubscribe(Subscription s) {
            subscription = s;
            if (closed.get()) {
                s.cancel();
            } else {
                s.request(2);
            }
        }

        @Override
        public void onNext(ByteBuffer b) {
            queue.add(b);
        }

        @Override
        public void onError(Throwable t) {
            queue.add(new Failure(t));
        }

        @Override
        public void onComplete() {
            queue.add(DONE);
        }

        @Override
        public int read(ByteBuffer dst) throws IOException {
            if (closed.get()) {
                throw closedError();
            }
            if (done == len) {
                if (!finished) {
                    finish();
                }
                return -1;
            }
            int want = (int) Math.min(dst.remaining(), len - done);
            if (want == 0) {
                return 0;
            }
            while (current == null || !current.hasRemaining()) {
                if (current != null) {
                    current = null;
                    request(1);
                }
                Object next = take();
                if (next instanceof ByteBuffer b) {
                    current = b;
                } else if (next == DONE) {
                    throw error(off, len, "body ended early: expected " + len + " bytes, got " + done);
                } else if (next instanceof Failure f) {
                    UpstreamException e = errors.read(name, off, len, f.error());
                    throw new UpstreamException(name, off, len, "body failed after " + done + " of " + len
                            + " bytes: " + e.getMessage().substring(e.getMessage().indexOf(": ") + 2), e.getCause());
                }
            }
            int n = (int) Math.min(want, current.remaining());
            if (n > len - done) {
                n = (int) (len - done);
            }
            ByteBuffer piece = current.slice(current.position(), n);
            dst.put(piece);
            current.position(current.position() + n);
            done += n;
            if (done == len) {
                finish();
            }
            return n;
        }

        /** Waits for the end of the body: nothing more may come. */
        private void finish() throws IOException {
            finished = true;
            while (current != null && !current.hasRemaining()) {
                current = null;
                request(1);
                Object next = take();
                if (next == DONE) {
                    return;
                }
                if (next instanceof ByteBuffer b) {
                    current = b;
                } else if (next instanceof Failure f) {
                    throw errors.read(name, off, len, f.error());
                }
            }
            if (current != null && current.hasRemaining()) {
                throw error(off, len, "body longer than the range: more than " + len + " bytes");
            }
        }

        private void request(long n) {
            Subscription s = subscription;
            if (s != null) {
                s.request(n);
            }
        }

        /** The next signal, within the read timeout. */
        private Object take() throws IOException {
            Object next;
            try {
                next = queue.poll(readTimeout.toMillis() + 1000, TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                cancel();
                throw new InterruptedIOException("interrupted reading [" + off + ", " + (off + len) + ") of " + name
                        + " at byte " + (off + done));
            }
            if (next == null) {
                cancel();
                throw error(off, len, "no bytes for " + readTimeout.toMillis() + " ms after " + done + " of " + len
                        + " bytes (the read timeout)");
            }
            if (next == CLOSED || closed.get()) {
                throw closedError();
            }
            return next;
        }

        private UpstreamException closedError() {
            return error(off, len, "range stream closed after " + done + " of " + len + " bytes");
        }

        private void cancel() {
            Subscription s = subscription;
            if (s != null) {
                s.cancel();
            }
            closeQuietly(response);
        }

        /** Idempotent; from any thread. Cancels the download unless it was read whole. */
        @Override
        public void close() {
            if (!closed.compareAndSet(false, true)) {
                return;
            }
            cancel();
            queue.add(CLOSED);
        }
    }
}
