package dev.lazyblock.upstream;

import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpConnectTimeoutException;
import java.net.http.HttpHeaders;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpResponse.BodyHandler;
import java.net.http.HttpResponse.BodySubscribers;
import java.net.http.HttpTimeoutException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Locale;
import java.util.OptionalLong;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An object behind an HTTP(S) URL that honours {@code Range} requests (object stores, CDNs,
 * signed URLs, any static file server), read with {@link HttpClient}.
 *
 * <p>Every read is one ranged GET whose answer must be exactly what was asked: status 206,
 * a {@code Content-Range} with the requested first and last byte, a body of exactly that many
 * bytes. A server that ignores {@code Range} (status 200) is refused rather than downloaded.
 *
 * <p>Timeouts: connecting has {@code connectTimeout}; {@link #readFully} and {@link #size()}
 * must finish within {@code requestTimeout}; {@link #openRange} must get its response headers
 * within it, and its body then flows at the server's pace (the reader decides how long to wait
 * and closes the stream to give up).
 *
 * <p>The first answer's validator is pinned: a strong {@code ETag} is sent as {@code If-Match}
 * on every later request, and every answer's {@code ETag} (or, without one, its
 * {@code Last-Modified}) must equal the first; an object replaced while it is read fails with
 * "the object changed" instead of mixing two versions' bytes, even behind a server that ignores
 * {@code If-Match}.
 *
 * <p>Names and error messages never contain the URL's user info or query string: signed URLs
 * carry their credentials there.
 */
public final class HttpUpstream implements Upstream {
    private static final Logger log = LoggerFactory.getLogger(HttpUpstream.class);

    public static final Duration DEFAULT_CONNECT_TIMEOUT = Duration.ofSeconds(10);
    public static final Duration DEFAULT_REQUEST_TIMEOUT = Duration.ofSeconds(60);

    private final URI uri;
    private final String name;
    private final Redaction redaction;
    private final HttpClient client;
    private final boolean ownsClient;
    private final Duration requestTimeout;
    /** -1 until asked for, or learned from a Content-Range. */
    private volatile long size = -1;
    /**
     * The first answer's ETag, or its Last-Modified prefixed with "last-modified "; null until
     * an answer had one. Written once (racing first answers agree, or the loser is refused as a
     * change); read by every request (If-Match) and every answer (compared).
     */
    private volatile String validator;

    /** With the default timeouts (10 s connect, 60 s per request). */
    public HttpUpstream(URI uri) {
        this(uri, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT);
    }

    public HttpUpstream(URI uri, Duration connectTimeout, Duration requestTimeout) {
        // Arguments are checked before the client is built, so a refused one leaks no client.
        this(checked(uri, requestTimeout), HttpClient.newBuilder()
                .connectTimeout(connectTimeout)
                .followRedirects(HttpClient.Redirect.NORMAL)
                .build(), true, requestTimeout);
    }

    /**
     * Shares {@code client} (its connection pool, its redirect policy); {@link #close()} leaves
     * it open.
     */
    public HttpUpstream(URI uri, HttpClient client, Duration requestTimeout) {
        this(checked(uri, requestTimeout), client, false, requestTimeout);
    }

    private HttpUpstream(URI uri, HttpClient client, boolean ownsClient, Duration requestTimeout) {
        this.uri = uri;
        this.name = Redaction.name(uri);
        this.redaction = new Redaction(uri);
        this.client = client;
        this.ownsClient = ownsClient;
        this.requestTimeout = requestTimeout;
    }

    private static URI checked(URI uri, Duration requestTimeout) {
        String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
        if (!scheme.equals("http") && !scheme.equals("https")) {
            throw new IllegalArgumentException("not an http:// or https:// URL: scheme '" + scheme + "'");
        }
        if (uri.getHost() == null) {
            throw new IllegalArgumentException(scheme + " URL without a host");
        }
        if (requestTimeout.isNegative() || requestTimeout.isZero()) {
            throw new IllegalArgumentException("request timeout must be positive, got " + requestTimeout);
        }
        return uri;
    }

    /** True: a call waits on the response future, and an interrupt cancels the exchange (see send); a body stream is closed by whoever abandons it. */
    @Override
    public boolean honoursInterrupts() {
        return true;
    }

    @Override
    public String name() {
        return name;
    }

    /**
     * The size from a HEAD's Content-Length, or, if HEAD is refused (a URL signed for GET only
     * answers 403 to it) or has no length, from the total of a one-byte ranged GET. Cached.
     */
    @Override
    public long size() throws IOException {
        long known = size;
        if (known >= 0) {
            return known;
        }
        long found = sizeFromHead();
        if (found < 0) {
            found = sizeFromRangedGet();
        }
        learnSize(found);
        log.debug("{}: {} bytes", name, found);
        return found;
    }

    /** The pinned ETag or Last-Modified (see the class comment), learned with the size. */
    @Override
    public String version() throws IOException {
        size();
        return validator;
    }

    private long sizeFromHead() throws IOException {
        HttpRequest head = request().method("HEAD", HttpRequest.BodyPublishers.noBody()).build();
        HttpResponse<Void> r = send(head, HttpResponse.BodyHandlers.discarding(), 0, 0, null);
        OptionalLong length = r.headers().firstValueAsLong("Content-Length");
        if (r.statusCode() == 200 && length.isPresent() && length.getAsLong() >= 0) {
            String changed = checkValidator(r.headers());
            if (changed != null) {
                throw error(0, 0, "finding the size: " + changed);
            }
            return length.getAsLong();
        }
        log.debug("{}: HEAD answered status {}{}; asking for the size with a ranged GET", name,
                r.statusCode(), length.isPresent() ? "" : " without Content-Length");
        return -1;
    }

    private long sizeFromRangedGet() throws IOException {
        HttpRequest get = request().header("Range", Ranges.httpRange(0, 1)).GET().build();
        BodyHandler<Long> handler = info -> {
            ContentRange cr = ContentRange.parse(info.headers().firstValue("Content-Range").orElse(null));
            String changed = info.statusCode() == 206 ? checkValidator(info.headers()) : null;
            if (changed != null) {
                return new RejectingSubscriber<>(error(0, 1, "finding the size: " + changed));
            }
            if ((info.statusCode() == 206 || info.statusCode() == 416) && cr != null && cr.total() >= 0) {
                return BodySubscribers.replacing(cr.total()); // at most a byte, or a short error page
            }
            if (info.statusCode() == 404 || info.statusCode() == 410) {
                return new RejectingSubscriber<>(new NoSuchObjectException(name, "finding the size: status "
                        + info.statusCode() + ", no such object"));
            }
            String what = switch (info.statusCode()) {
                case 206, 416 -> "cannot tell the size: status " + info.statusCode()
                        + " with Content-Range " + quoted(info.headers());
                case 200 -> ignoredRange();
                default -> unexpectedStatus(info.statusCode());
            };
            return new RejectingSubscriber<>(error(0, 1, "finding the size: " + what));
        };
        return send(get, handler, 0, 1, null).body();
    }

    @Override
    public void readFully(long off, ByteBuffer dst) throws IOException {
        int len = dst.remaining();
        Ranges.check(off, len);
        if (len == 0) {
            return;
        }
        BufferSubscriber sink = new BufferSubscriber(dst, what -> error(off, len, what));
        BodyHandler<Void> handler = info -> {
            String problem = checkRangeResponse(info.statusCode(), info.headers(), off, len);
            return problem == null ? sink : new RejectingSubscriber<>(error(off, len, problem));
        };
        send(rangeRequest(off, len), handler, off, len, sink);
    }

    @Override
    public RangeStream openRange(long off, long len) throws IOException {
        Ranges.check(off, len);
        if (len == 0) {
            return Ranges.emptyStream();
        }
        BodyHandler<InputStream> handler = info -> {
            String problem = checkRangeResponse(info.statusCode(), info.headers(), off, len);
            return problem == null
                    ? BodySubscribers.ofInputStream()
                    : new RejectingSubscriber<>(error(off, len, problem));
        };
        HttpResponse<InputStream> r = send(rangeRequest(off, len), handler, off, len, null);
        return new HttpRangeStream(r.body(), len, (what, cause) -> error(off, len, what, cause));
    }

    /** Closes the client if this upstream made it, aborting whatever is still in flight. */
    @Override
    public void close() {
        if (ownsClient) {
            client.shutdownNow();
        }
    }

    @Override
    public String toString() {
        return "HttpUpstream[" + name + "]";
    }

    private HttpRequest.Builder request() {
        // identity: a compressed body would not be the bytes the range names
        HttpRequest.Builder b = HttpRequest.newBuilder(uri).timeout(requestTimeout).header("Accept-Encoding", "identity");
        String pinned = validator;
        if (pinned != null && pinned.startsWith("\"")) {
            b.header("If-Match", pinned); // strong ETags only: If-Match compares strongly
        }
        return b;
    }

    private HttpRequest rangeRequest(long off, long len) {
        return request().header("Range", Ranges.httpRange(off, len)).GET().build();
    }

    /** Null if the response is exactly the range asked for, else what is wrong with it. */
    private String checkRangeResponse(int status, HttpHeaders headers, long off, long len) {
        if (status == 200) {
            return ignoredRange();
        }
        if (status == 416) {
            ContentRange cr = ContentRange.parse(headers.firstValue("Content-Range").orElse(null));
            return "range not satisfiable (status 416)"
                    + (cr != null && cr.total() >= 0 ? ": the object is " + cr.total() + " bytes" : "");
        }
        if (status == 412) {
            return "the object changed since it was first read: status 412 Precondition Failed for If-Match "
                    + validator;
        }
        if (status != 206) {
            return unexpectedStatus(status);
        }
        String changed = checkValidator(headers);
        if (changed != null) {
            return changed;
        }
        ContentRange cr = ContentRange.parse(headers.firstValue("Content-Range").orElse(null));
        if (cr == null || !cr.covers(off, len)) {
            return "Content-Range " + quoted(headers) + " does not match the request for "
                    + Ranges.httpRange(off, len);
        }
        OptionalLong length = headers.firstValueAsLong("Content-Length");
        if (length.isPresent() && length.getAsLong() != len) {
            return "Content-Length " + length.getAsLong() + " does not match the range of " + len + " bytes";
        }
        if (cr.total() >= 0) {
            long known = size;
            if (known >= 0 && known != cr.total()) {
                return "the object changed size: it was " + known + " bytes, Content-Range says "
                        + cr.total();
            }
            learnSize(cr.total());
        }
        return null;
    }

    /**
     * Pins the first validator an answer carries; null if this answer agrees with it, else what
     * changed. An answer without one is not held against the object (a proxy may strip it).
     */
    private String checkValidator(HttpHeaders headers) {
        String etag = headers.firstValue("ETag").orElse(null);
        String modified = headers.firstValue("Last-Modified").map(v -> "last-modified " + v).orElse(null);
        String found = etag != null ? etag : modified;
        if (found == null) {
            return null;
        }
        String pinned = validator;
        if (pinned == null) {
            synchronized (this) {
                if (validator == null) {
                    validator = found;
                    return null;
                }
                pinned = validator;
            }
        }
        // Like with like: an answer lacking the kind pinned has nothing to compare.
        String comparable = pinned.startsWith("last-modified ") ? modified : etag;
        if (comparable == null || comparable.equals(pinned)) {
            return null;
        }
        return "the object changed since it was first read: " + describe(comparable) + ", first read as "
                + describe(pinned);
    }

    private static String describe(String validator) {
        return validator.startsWith("last-modified ") ? "Last-Modified " + validator.substring(14) : "ETag " + validator;
    }

    private void learnSize(long total) {
        size = total; // racing writers write the same value, or a changed object was refused
    }

    private static String ignoredRange() {
        return "the server ignored the Range header: status 200 instead of 206 Partial Content";
    }

    private static String unexpectedStatus(int status) {
        return "status " + status + ", expected 206 Partial Content";
    }

    private static String quoted(HttpHeaders headers) {
        return headers.firstValue("Content-Range").map(v -> "'" + v + "'").orElse("(missing)");
    }

    /**
     * Sends {@code request} and waits at most the request timeout for the handler's body.
     * On timeout or interrupt the exchange is cancelled and {@code sink} abandoned.
     */
    private <T> HttpResponse<T> send(HttpRequest request, BodyHandler<T> handler, long off, long len,
                                     BufferSubscriber sink) throws IOException {
        CompletableFuture<HttpResponse<T>> future = client.sendAsync(request, handler);
        try {
            return future.get(requestTimeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            abandon(future, sink);
            Thread.currentThread().interrupt();
            InterruptedIOException ie = new InterruptedIOException(
                    "interrupted reading [" + off + ", " + (off + len) + ") of " + name);
            ie.initCause(e);
            throw ie;
        } catch (TimeoutException e) {
            abandon(future, sink);
            throw error(off, len, "no complete response within " + requestTimeout);
        } catch (ExecutionException e) {
            abandon(future, sink);
            throw failure(e.getCause(), off, len);
        }
    }

    private static void abandon(CompletableFuture<? extends HttpResponse<?>> future, BufferSubscriber sink) {
        future.cancel(true); // the HTTP client aborts the exchange
        if (sink != null) {
            sink.abandon();
        }
        // Lost the race to a response that arrived anyway: its body stream must not hold the
        // connection.
        future.thenAccept(r -> {
            if (r.body() instanceof InputStream in) {
                try {
                    in.close();
                } catch (IOException ignored) {
                    // closing only cancels the body; nothing left to report to
                }
            }
        });
    }

    /** Our own verdict if the failure carries one, else the transport's, redacted. */
    private UpstreamException failure(Throwable t, long off, long len) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof UpstreamException ue && ue.object().equals(name)) {
                return ue;
            }
        }
        Throwable root = t;
        while ((root instanceof ExecutionException || root instanceof CompletionException)
                && root.getCause() != null) {
            root = root.getCause();
        }
        String what = switch (root) {
            case HttpConnectTimeoutException _ -> "connect timed out";
            case HttpTimeoutException _ -> "no response headers within " + requestTimeout;
            case ConnectException _ -> "cannot connect";
            default -> "request failed";
        };
        String detail = redaction.scrub(root.getMessage());
        return error(off, len, what + " (" + root.getClass().getSimpleName()
                + (detail == null ? "" : ": " + detail) + ")", redaction.scrub(root));
    }

    private UpstreamException error(long off, long len, String what) {
        return error(off, len, what, null);
    }

    private UpstreamException error(long off, long len, String what, Throwable cause) {
        return new UpstreamException(name, off, len, what, redaction.scrub(cause));
    }
}
