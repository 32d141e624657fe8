package dev.lazyblock.gcs;

import com.google.cloud.BaseServiceException;
import dev.lazyblock.upstream.UpstreamException;
import java.io.IOException;

/** The JSON client's exceptions in words: status, reason, and what it means for a reader. */
final class GcsErrors {
    private GcsErrors() {}

    static UpstreamException read(String name, long off, long len, Throwable t, int maxAttempts) {
        if (t instanceof UpstreamException u) {
            return u;
        }
        return new UpstreamException(name, off, len, describe(t, maxAttempts), t);
    }

    static IOException store(String what, String name, Throwable t, int maxAttempts) {
        return new IOException(what + " " + name + ": " + describe(t, maxAttempts), t);
    }

    static String describe(Throwable t, int maxAttempts) {
        Throwable e = t;
        while (e.getCause() != null && !(e instanceof BaseServiceException) && e != e.getCause()) {
            e = e.getCause();
        }
        if (e instanceof BaseServiceException s) {
            int code = s.getCode();
            String detail = "(status " + code + (s.getReason() == null ? "" : " " + s.getReason()) + ")";
            if (code == 404) {
                return "no such object or bucket " + detail;
            }
            if (code == 401 || code == 403) {
                return "access denied " + detail;
            }
            if (code == 412) {
                return "the object changed since it was first read " + detail;
            }
            if (code == 416) {
                return "range not satisfiable: it starts at or past the end of the object " + detail;
            }
            if (code == 429 || code >= 500) {
                return "GCS is throttling or unavailable " + detail + "; gave up after up to " + maxAttempts
                        + " attempts";
            }
            if (code == 0) {
                Throwable c = s.getCause() != null ? s.getCause() : s;
                return "I/O error (" + brief(c) + "); gave up after up to " + maxAttempts + " attempts";
            }
            return "the request was refused " + detail;
        }
        return brief(t);
    }

    static String brief(Throwable e) {
        String m = e.getMessage();
        if (m != null && m.length() > 300) {
            m = m.substring(0, 300) + "...";
        }
        return e.getClass().getSimpleName() + (m == null ? "" : ": " + m);
    }
}
