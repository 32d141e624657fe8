package dev.lazyblock.gcs;

import dev.lazyblock.upstream.ObjectKeys;
import java.util.regex.Pattern;

/**
 * A bucket and an object name from {@code gs://bucket/object}, validated when made. The object
 * name is taken literally (no percent-decoding), as gsutil and gcloud take it, and checked with
 * core's {@link ObjectKeys#validate}. A query string, fragment, user info or port is refused,
 * and nothing after {@code ?}, {@code #} or before {@code @} is repeated in the message.
 */
public record GcsLocation(String bucket, String object) {
    public static final String SCHEME = "gs://";
    /** GCS's rules: 3-63 of {@code a-z0-9-_.} (up to 222 with dots), a letter or digit at both ends. */
    private static final Pattern BUCKET = Pattern.compile("[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]");

    /** @throws IllegalArgumentException if the bucket or object name is not valid */
    public GcsLocation {
        validateBucket(bucket);
        try {
            ObjectKeys.validate(object);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("object name in bucket '" + bucket + "': " + e.getMessage(), e);
        }
    }

    static void validateBucket(String bucket) {
        if (bucket == null || !BUCKET.matcher(bucket).matches()
                || (bucket.indexOf('.') < 0 && bucket.length() > 63) || bucket.startsWith("goog")
                || bucket.contains("..")) {
            throw new IllegalArgumentException("bucket name '" + bucket + "' is not valid: 3-63 lower-case letters,"
                    + " digits, '-', '_' and '.' (up to 222 with dots), a letter or digit at both ends, not"
                    + " starting with 'goog'");
        }
    }

    /**
     * Parses {@code gs://bucket/object}.
     *
     * @throws IllegalArgumentException saying which part is wrong
     */
    public static GcsLocation parse(String url) {
        if (url == null || !url.regionMatches(true, 0, SCHEME, 0, SCHEME.length())) {
            int colon = url == null ? -1 : url.indexOf(':');
            String scheme = colon > 0 && colon < 16 ? url.substring(0, colon) : "(none)";
            throw new IllegalArgumentException("not a gs:// URL: scheme '" + scheme + "'");
        }
        String rest = url.substring(SCHEME.length());
        if (rest.indexOf('?') >= 0 || rest.indexOf('#') >= 0) {
            throw new IllegalArgumentException("gs URL must not have a query string or fragment ('?' or '#'):"
                    + " its object name is taken literally, and signed URLs are https:// URLs");
        }
        int slash = rest.indexOf('/');
        String authority = slash < 0 ? rest : rest.substring(0, slash);
        if (authority.indexOf('@') >= 0) {
            throw new IllegalArgumentException("gs URL must not carry user info ('user@' before the bucket):"
                    + " credentials come from the environment, never from the URL");
        }
        if (authority.isEmpty()) {
            throw new IllegalArgumentException("gs URL has no bucket: expected gs://bucket/object");
        }
        if (authority.indexOf(':') >= 0) {
            throw new IllegalArgumentException("gs URL must not have a port: the bucket is '"
                    + authority.substring(0, authority.indexOf(':')) + "'; set the endpoint in the configuration");
        }
        if (slash < 0 || slash == rest.length() - 1) {
            throw new IllegalArgumentException("gs URL has no object name: expected gs://" + authority + "/object");
        }
        return new GcsLocation(authority, rest.substring(slash + 1));
    }

    /** {@code gs://bucket/object}. */
    public String url() {
        return SCHEME + bucket + "/" + object;
    }

    @Override
    public String toString() {
        return url();
    }
}
