package dev.lazyblock.s3;

import dev.lazyblock.upstream.ObjectKeys;

/**
 * A bucket and an object key, from an {@code s3://bucket/key} URL or given apart. Both are
 * validated when the location is made, so a bad one never reaches a request.
 *
 * <p>The key is taken literally, as the AWS CLI takes it: no percent-decoding. A URL with a
 * query string or fragment, user info or a port is refused, and the message never repeats what
 * follows the {@code ?}, {@code #} or {@code @} (a pasted presigned URL carries its signature
 * there).
 */
public record S3Location(String bucket, String key) {
    private static final String SCHEME = "s3://";

    /** @throws IllegalArgumentException if the bucket name or the key is not valid */
    public S3Location {
        validateBucket(bucket);
        try {
            ObjectKeys.validate(key);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("object key in bucket '" + bucket + "': " + e.getMessage(), e);
        }
    }

    /**
     * Parses {@code s3://bucket/key}.
     *
     * @throws IllegalArgumentException saying which part is wrong
     */
    public static S3Location parse(String url) {
        if (url == null || !url.regionMatches(true, 0, SCHEME, 0, SCHEME.length())) {
            int colon = url == null ? -1 : url.indexOf(':');
            String scheme = colon > 0 && colon < 16 ? url.substring(0, colon) : "(none)";
            throw new IllegalArgumentException("not an s3:// URL: scheme '" + scheme + "'");
        }
        String rest = url.substring(SCHEME.length());
        if (rest.indexOf('?') >= 0 || rest.indexOf('#') >= 0) {
            // Nothing after the '?' goes into the message: it may be a presigned URL's signature.
            throw new IllegalArgumentException("s3 URL must not have a query string or fragment"
                    + " ('?' or '#'); its key is taken literally, and S3 presigned URLs are https:// URLs");
        }
        int slash = rest.indexOf('/');
        String authority = slash < 0 ? rest : rest.substring(0, slash);
        if (authority.indexOf('@') >= 0) {
            throw new IllegalArgumentException("s3 URL must not carry user info ('user@' before the bucket):"
                    + " credentials come from the environment, never from the URL");
        }
        if (authority.isEmpty()) {
            throw new IllegalArgumentException("s3 URL has no bucket: expected s3://bucket/key");
        }
        if (authority.indexOf(':') >= 0) {
            throw new IllegalArgumentException("s3 URL must not have a port: the bucket is '"
                    + authority.substring(0, authority.indexOf(':')) + "'; set the endpoint in the configuration");
        }
        if (slash < 0 || slash == rest.length() - 1) {
            throw new IllegalArgumentException("s3 URL has no object key: expected s3://" + authority + "/key");
        }
        return new S3Location(authority, rest.substring(slash + 1));
    }

    /**
     * Returns {@code bucket} if it follows S3's rules for bucket names: 3 to 63 characters of
     * lowercase letters, digits, {@code .} and {@code -}; beginning and ending with a letter or
     * digit; no {@code ..}; not shaped like an IP address; none of the prefixes and suffixes S3
     * reserves.
     *
     * @throws IllegalArgumentException saying what is wrong with it
     */
    public static String validateBucket(String bucket) {
        if (bucket == null || bucket.isEmpty()) {
            throw new IllegalArgumentException("bucket name must not be empty");
        }
        int n = bucket.length();
        if (n < 3 || n > 63) {
            throw new IllegalArgumentException("bucket name '" + printable(bucket) + "' is " + n
                    + " characters; S3 allows 3 to 63");
        }
        for (int i = 0; i < n; i++) {
            char c = bucket.charAt(i);
            boolean ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
            if (!ok) {
                String what = c >= 'A' && c <= 'Z' ? "an uppercase letter '" + c + "'"
                        : c < 0x20 || c == 0x7f ? "a control character (code " + (int) c + ")"
                        : "the character '" + c + "'";
                throw new IllegalArgumentException("bucket name '" + printable(bucket) + "' has " + what
                        + " at index " + i + "; S3 allows lowercase letters, digits, '.' and '-'");
            }
        }
        if (!alnum(bucket.charAt(0)) || !alnum(bucket.charAt(n - 1))) {
            throw new IllegalArgumentException("bucket name '" + bucket
                    + "' must begin and end with a lowercase letter or digit");
        }
        if (bucket.contains("..")) {
            throw new IllegalArgumentException("bucket name '" + bucket + "' has two adjacent periods");
        }
        if (bucket.matches("\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}")) {
            throw new IllegalArgumentException("bucket name '" + bucket + "' is formatted as an IP address");
        }
        for (String p : new String[] {"xn--", "sthree-", "amzn-s3-demo-"}) {
            if (bucket.startsWith(p)) {
                throw new IllegalArgumentException("bucket name '" + bucket + "' begins with '" + p
                        + "', which S3 reserves");
            }
        }
        for (String s : new String[] {"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"}) {
            if (bucket.endsWith(s)) {
                throw new IllegalArgumentException("bucket name '" + bucket + "' ends with '" + s
                        + "', which S3 reserves");
            }
        }
        return bucket;
    }

    private static boolean alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    }

    /** Control characters replaced, so a message stays one readable line. */
    private static String printable(String s) {
        StringBuilder sb = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            sb.append(c < 0x20 || c == 0x7f ? '?' : c);
        }
        return sb.toString();
    }

    /** {@code s3://bucket/key}. */
    public String url() {
        return SCHEME + bucket + "/" + key;
    }

    @Override
    public String toString() {
        return url();
    }
}
