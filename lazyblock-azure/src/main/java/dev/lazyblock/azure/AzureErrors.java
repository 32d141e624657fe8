package dev.lazyblock.azure;

import com.azure.core.exception.HttpResponseException;
import com.azure.storage.blob.models.BlobStorageException;
import dev.lazyblock.upstream.UpstreamException;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.io.UncheckedIOException;
import java.util.List;
import java.util.concurrent.TimeoutException;
import reactor.core.Exceptions;

/**
 * Turns the Azure SDK's exceptions into messages that say what came back (status, error code,
 * request id) in words, and keeps secrets (the account key, a SAS token) out of them.
 */
final class AzureErrors {
    static final AzureErrors NONE = new AzureErrors(List.of(), 1);

    private final List<String> secrets;
    private final int maxAttempts;

    AzureErrors(List<String> secrets, int maxAttempts) {
        this.secrets = List.copyOf(secrets);
        this.maxAttempts = maxAttempts;
    }

    /** An error of reading {@code [off, off+len)} of {@code name}. */
    UpstreamException read(String name, long off, long len, Throwable t) {
        Throwable e = unwrap(t);
        if (e instanceof UpstreamException u) {
            return u;
        }
        UpstreamException u = new UpstreamException(name, off, len, scrub(describe(e)), scrubbed(e));
        if (e instanceof InterruptedException || e instanceof InterruptedIOException) {
            Thread.currentThread().interrupt();
        }
        return u;
    }

    /** An error of a store operation ({@code what}: "uploading x to", ...). */
    IOException store(String what, String name, Throwable t) {
        Throwable e = unwrap(t);
        return new IOException(what + " " + name + ": " + scrub(describe(e)), scrubbed(e));
    }

    static Throwable unwrap(Throwable t) {
        Throwable e = Exceptions.unwrap(t);
        while ((e instanceof UncheckedIOException || e.getClass() == RuntimeException.class
                || e instanceof java.util.concurrent.ExecutionException) && e.getCause() != null) {
            e = e.getCause();
        }
        return e;
    }

    /** The status of an SDK HTTP error, or -1. */
    static int status(Throwable t) {
        Throwable e = unwrap(t);
        return e instanceof HttpResponseException h && h.getResponse() != null ? h.getResponse().getStatusCode() : -1;
    }

    /** What went wrong, in words. */
    String describe(Throwable e) {
        if (e instanceof BlobStorageException b) {
            int status = b.getStatusCode();
            String code = b.getErrorCode() == null ? null : b.getErrorCode().toString();
            if (code == null && b.getResponse() != null) {
                code = b.getResponse().getHeaderValue("x-ms-error-code");
            }
            String requestId = b.getResponse() == null ? null : b.getResponse().getHeaderValue("x-ms-request-id");
            String detail = "(status " + status + (code == null ? "" : " " + code)
                    + (requestId == null ? "" : "; request id " + requestId) + ")";
            if (status == 404) {
                String what = "ContainerNotFound".equals(code) ? "no such container"
                        : "BlobNotFound".equals(code) ? "no such blob" : "not found";
                return what + " " + detail;
            }
            if (status == 403 || status == 401) {
                return "access denied " + detail;
            }
            if (status == 412) {
                return "the blob changed since it was first read " + detail;
            }
            if (status == 416) {
                return "range not satisfiable: it starts at or past the end of the blob " + detail;
            }
            if (status == 429 || status >= 500) {
                return "Azure Storage is throttling or unavailable " + detail + "; gave up after " + maxAttempts
                        + (maxAttempts == 1 ? " attempt" : " attempts");
            }
            return "the request was refused " + detail;
        }
        if (e instanceof HttpResponseException h && h.getResponse() != null) {
            return "the request failed (status " + h.getResponse().getStatusCode() + ")";
        }
        if (e instanceof TimeoutException || (e instanceof IllegalStateException
                && String.valueOf(e.getMessage()).startsWith("Timeout on blocking read"))) {
            return "no answer in time (" + brief(e) + "); gave up after up to " + maxAttempts + " attempts";
        }
        if (e instanceof IOException) {
            return "I/O error (" + brief(e) + "); gave up after up to " + maxAttempts + " attempts";
        }
        return brief(e);
    }

    static String brief(Throwable e) {
        String m = e.getMessage();
        if (m != null && m.length() > 300) {
            m = m.substring(0, 300) + "...";
        }
        return e.getClass().getSimpleName() + (m == null ? "" : ": " + m);
    }

    /** {@code s} with every secret replaced by {@code <redacted>}. */
    String scrub(String s) {
        if (s == null) {
            return null;
        }
        for (String secret : secrets) {
            if (!secret.isEmpty()) {
                s = s.replace(secret, "<redacted>");
            }
        }
        return s.replaceAll("(?i)([?&]sig=)[^&\\s\"']+", "$1<redacted>");
    }

    /**
     * The cause itself when nothing in its chain mentions a secret; else a plain exception of
     * the same text, scrubbed, with the scrubbed chain.
     */
    Throwable scrubbed(Throwable e) {
        if (e == null) {
            return null;
        }
        java.io.StringWriter w = new java.io.StringWriter();
        e.printStackTrace(new java.io.PrintWriter(w));
        String text = w.toString();
        if (text.equals(scrub(text))) {
            return e;
        }
        IOException copy = new IOException(e.getClass().getName() + ": " + scrub(String.valueOf(e.getMessage())),
                scrubbed(e.getCause() == e ? null : e.getCause()));
        copy.setStackTrace(e.getStackTrace());
        return copy;
    }
}
