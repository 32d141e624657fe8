package dev.lazyblock.s3;

import dev.lazyblock.upstream.UpstreamException;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.util.List;
import software.amazon.awssdk.awscore.exception.AwsErrorDetails;
import software.amazon.awssdk.awscore.exception.AwsServiceException;
import software.amazon.awssdk.core.exception.AbortedException;
import software.amazon.awssdk.core.exception.ApiCallAttemptTimeoutException;
import software.amazon.awssdk.core.exception.ApiCallTimeoutException;
import software.amazon.awssdk.core.exception.SdkException;
import software.amazon.awssdk.core.exception.SdkInterruptedException;

/**
 * Turns the SDK's exceptions into lazyblock's: what S3 said (status, error code, request id) or
 * what the transport did, in words, with any known secret replaced. The SDK keeps secrets out of
 * its messages; the scrubbing is a second line for an explicit secret key or session token.
 */
final class S3Errors {
    static final S3Errors NONE = new S3Errors(List.of());

    private final List<String> secrets;

    S3Errors(List<String> secrets) {
        this.secrets = List.copyOf(secrets);
    }

    /**
     * The exception a ranged read of {@code object} ends with; {@code bodyFailure} says how the
     * last attempt's body failed, if it did.
     */
    IOException read(String object, long off, long len, RuntimeException e, String bodyFailure) {
        Refusal refusal = Refusal.in(e);
        if (refusal != null) {
            return refusal.error;
        }
        if (interrupted(e)) {
            return interruption("reading [" + off + ", " + (off + len) + ") of " + object, e);
        }
        String what = bodyFailure != null && !(e instanceof AwsServiceException) && timeout(e) == null
                ? bodyFailure + (attempts(e).isEmpty() ? "" : "; gave up " + attempts(e))
                : describe(e);
        return new UpstreamException(object, off, len, scrub(what), scrub((Throwable) e));
    }

    /** The exception a size lookup (HeadObject) of {@code object} ends with. */
    IOException size(String object, RuntimeException e) {
        if (interrupted(e)) {
            return interruption("finding the size of " + object, e);
        }
        return new UpstreamException(object, 0, 0, "finding the size: " + scrub(describe(e)), scrub((Throwable) e));
    }

    /** The exception a store operation ({@code "putting s3://bucket/key"}) ends with. */
    IOException store(String doing, Throwable e) {
        if (e instanceof IOException io && !(e instanceof InterruptedIOException)) {
            return new IOException(doing + ": " + scrub(io.getMessage()), scrub(e));
        }
        if (interrupted(e)) {
            return interruption(doing, e);
        }
        return new IOException(doing + ": " + scrub(describe(e)), scrub(e));
    }

    private InterruptedIOException interruption(String doing, Throwable e) {
        Thread.currentThread().interrupt(); // the SDK may have consumed the flag
        InterruptedIOException ie = new InterruptedIOException("interrupted " + doing);
        ie.initCause(scrub(e));
        return ie;
    }

    /**
     * Whether the call ended because this thread was interrupted. The SDK enforces its timeouts
     * by interrupting the calling thread, so a timeout is not an interruption; neither is a
     * socket timeout (an InterruptedIOException by class).
     */
    private static boolean interrupted(Throwable e) {
        if (timeout(e) != null) {
            return false;
        }
        if (Thread.currentThread().isInterrupted()) {
            return true;
        }
        for (Throwable c = e; c != null; c = c.getCause() == c ? null : c.getCause()) {
            if (c instanceof AbortedException || c instanceof SdkInterruptedException
                    || c instanceof InterruptedException || c.getClass() == InterruptedIOException.class) {
                return true;
            }
        }
        return false;
    }

    /** Whether {@code cause} is in {@code e}'s chain. */
    static boolean causedBy(Throwable e, Throwable cause) {
        for (Throwable c = e; c != null; c = c.getCause() == c ? null : c.getCause()) {
            if (c == cause) {
                return true;
            }
        }
        return false;
    }

    /** The SDK's call or attempt timeout in {@code e}'s chain, or null. */
    private static Throwable timeout(Throwable e) {
        for (Throwable c = e; c != null; c = c.getCause() == c ? null : c.getCause()) {
            if (c instanceof ApiCallTimeoutException || c instanceof ApiCallAttemptTimeoutException) {
                return c;
            }
        }
        return null;
    }

    private static String attempts(Throwable e) {
        if (e instanceof SdkException sdk && sdk.numAttempts() != null && sdk.numAttempts() > 1) {
            return "after " + sdk.numAttempts() + " attempts";
        }
        return "";
    }

    /** What an exception of ours says, without its "reading [a, b) of s3://...: " lead. */
    static String detail(IOException e) {
        if (e instanceof UpstreamException u) {
            String lead = "reading [" + u.offset() + ", " + (u.offset() + u.length()) + ") of " + u.object() + ": ";
            if (e.getMessage() != null && e.getMessage().startsWith(lead)) {
                return e.getMessage().substring(lead.length());
            }
        }
        return e.getMessage();
    }

    /** {@code SocketException: Connection reset}. */
    static String brief(Throwable t) {
        return t.getClass().getSimpleName() + (t.getMessage() == null ? "" : ": " + t.getMessage());
    }

    /** What went wrong, in words: S3's answer, or the transport's failure. */
    static String describe(Throwable e) {
        if (e instanceof AwsServiceException se) {
            return describeAnswer(se);
        }
        String attempts = attempts(e).isEmpty() ? "" : " " + attempts(e);
        Throwable timeout = timeout(e);
        if (timeout instanceof ApiCallTimeoutException) {
            return "no complete answer within the call timeout" + attempts;
        }
        if (timeout != null) {
            return "no complete answer within the attempt timeout" + attempts;
        }
        Throwable root = e;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        if (root == e) {
            return "request failed" + attempts + " (" + brief(root) + ")";
        }
        return "request failed" + attempts + " (" + brief(root) + "; " + e.getClass().getSimpleName() + ")";
    }

    private static String describeAnswer(AwsServiceException se) {
        AwsErrorDetails d = se.awsErrorDetails();
        String code = d == null ? null : d.errorCode();
        String message = d == null ? null : d.errorMessage();
        int status = se.statusCode();
        String what = switch (status) {
            case 404 -> "NoSuchBucket".equals(code) ? "no such bucket"
                    : "NoSuchUpload".equals(code) ? "no such multipart upload" : "no such object";
            case 403 -> "access denied";
            case 416 -> "range not satisfiable: it starts at or past the end of the object";
            case 412 -> "the object changed since it was first read";
            case 301, 307 -> "the bucket is in another region or needs another endpoint";
            case 503 -> "S3 is throttling or unavailable";
            default -> status >= 500 ? "S3 failed" : "S3 refused the request";
        };
        StringBuilder sb = new StringBuilder(what).append(" (status ").append(status);
        if (code != null && !code.isEmpty()) {
            sb.append(' ').append(code);
        }
        if (message != null && !message.isEmpty()) {
            sb.append(": ").append(message);
        }
        if (se.requestId() != null) {
            sb.append("; request id ").append(se.requestId());
        }
        sb.append(')');
        if (se.numAttempts() != null && se.numAttempts() > 1) {
            sb.append("; gave up after ").append(se.numAttempts()).append(" attempts");
        }
        return sb.toString();
    }

    String scrub(String message) {
        if (message == null || secrets.isEmpty()) {
            return message;
        }
        String out = message;
        for (String s : secrets) {
            out = out.replace(s, "<redacted>");
        }
        return out;
    }

    /**
     * {@code t} itself if nothing in its chain mentions a secret, else a copy of the chain as
     * plain IOExceptions with the secrets replaced, keeping class names and stack traces.
     */
    Throwable scrub(Throwable t) {
        if (t == null || secrets.isEmpty() || !leaks(t)) {
            return t;
        }
        IOException copy = new IOException(t.getClass().getName() + ": " + scrub(t.getMessage()),
                t.getCause() == t ? null : scrub(t.getCause()));
        copy.setStackTrace(t.getStackTrace());
        for (Throwable s : t.getSuppressed()) {
            copy.addSuppressed(scrub(s));
        }
        return copy;
    }

    private boolean leaks(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause() == c ? null : c.getCause()) {
            String m = c.getMessage();
            if (m != null && !m.equals(scrub(m))) {
                return true;
            }
            String s = c.toString();
            if (!s.equals(scrub(s))) {
                return true;
            }
            for (Throwable sup : c.getSuppressed()) {
                if (leaks(sup)) {
                    return true;
                }
            }
        }
        return false;
    }

    /**
     * Our own verdict on a response, thrown from inside an SDK call (a response transformer) to
     * end it without a retry: not an IOException and with no cause, so no retry condition of the
     * SDK matches it.
     */
    static final class Refusal extends RuntimeException {
        final transient UpstreamException error;

        Refusal(UpstreamException error) {
            super(error.getMessage(), null, false, false);
            this.error = error;
        }

        static Refusal in(Throwable t) {
            for (Throwable c = t; c != null; c = c.getCause() == c ? null : c.getCause()) {
                if (c instanceof Refusal r) {
                    return r;
                }
            }
            return null;
        }
    }
}
