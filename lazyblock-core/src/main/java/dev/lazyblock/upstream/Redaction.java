package dev.lazyblock.upstream;

import java.io.IOException;
import java.net.URI;
import java.util.ArrayList;
import java.util.List;

/**
 * Keeps the secret parts of a URL out of names, messages and causes. A signed URL (S3 and GCS
 * presigned, SAS tokens) carries its credential in the query, and a URL may carry a password in
 * its user info; error messages end up in logs and bug reports.
 */
final class Redaction {
    private final List<String> secrets = new ArrayList<>();

    Redaction(URI uri) {
        addSecret(uri.getRawQuery());
        addSecret(uri.getQuery());
        addSecret(uri.getRawUserInfo());
        addSecret(uri.getUserInfo());
        addSecret(uri.getRawFragment());
    }

    private void addSecret(String s) {
        if (s != null && !s.isEmpty()) {
            secrets.add(s);
        }
    }

    /** {@code scheme://host[:port]/path}: no user info, query or fragment. */
    static String name(URI uri) {
        StringBuilder sb = new StringBuilder();
        sb.append(uri.getScheme()).append("://").append(uri.getHost());
        if (uri.getPort() >= 0) {
            sb.append(':').append(uri.getPort());
        }
        String path = uri.getRawPath();
        sb.append(path == null || path.isEmpty() ? "/" : path);
        return sb.toString();
    }

    String scrub(String message) {
        if (message == null) {
            return null;
        }
        String out = message;
        for (String s : secrets) {
            out = out.replace(s, "<redacted>");
        }
        return out;
    }

    /**
     * {@code t} itself if nothing in its chain mentions a secret; otherwise a copy of the chain
     * as plain IOExceptions with the secrets replaced, keeping class names and stack traces.
     */
    Throwable scrub(Throwable t) {
        if (t == null || !leaks(t)) {
            return t;
        }
        String message = t.getClass().getName() + ": " + scrub(t.getMessage());
        IOException copy = new IOException(message, scrub(t.getCause()));
        copy.setStackTrace(t.getStackTrace());
        return copy;
    }

    private boolean leaks(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            String m = c.getMessage();
            if (m != null && !m.equals(scrub(m))) {
                return true;
            }
            for (Throwable s : c.getSuppressed()) {
                if (leaks(s)) {
                    return true;
                }
            }
        }
        return false;
    }
}
