package dev.lazyblock.upstream;

/**
 * Object keys as lazyblock accepts them, checked before any request: keys come from URLs and
 * layer headers, and a key like {@code ../other-tenant/x} must never reach a store.
 */
public final class ObjectKeys {
    /** S3's limit, in UTF-8 bytes; GCS's is the same. */
    public static final int MAX_BYTES = 1024;

    private ObjectKeys() {}

    /**
     * Returns {@code key} if it is a relative, normalized path of non-empty segments: no leading
     * or trailing {@code /}, no empty, {@code .} or {@code ..} segment, no control character or
     * backslash, at most {@link #MAX_BYTES} bytes of UTF-8.
     *
     * @throws IllegalArgumentException saying what is wrong with it
     */
    public static String validate(String key) {
        if (key == null || key.isEmpty()) {
            throw new IllegalArgumentException("object key must not be empty");
        }
        int bytes = key.getBytes(java.nio.charset.StandardCharsets.UTF_8).length;
        if (bytes > MAX_BYTES) {
            throw new IllegalArgumentException("object key is " + bytes + " bytes of UTF-8, at most " + MAX_BYTES
                    + " allowed");
        }
        for (int i = 0; i < key.length(); i++) {
            char c = key.charAt(i);
            if (c < 0x20 || c == 0x7f || c == '\\') {
                throw new IllegalArgumentException("object key has a forbidden character (code " + (int) c
                        + ") at index " + i);
            }
        }
        String[] segments = key.split("/", -1);
        for (int i = 0; i < segments.length; i++) {
            String s = segments[i];
            if (s.isEmpty()) {
                throw new IllegalArgumentException("object key '" + key + "' has an empty segment"
                        + (i == 0 ? " (a leading '/')" : i == segments.length - 1 ? " (a trailing '/')" : " ('//')"));
            }
            if (s.equals(".") || s.equals("..")) {
                throw new IllegalArgumentException("object key '" + key + "' has a '" + s + "' segment");
            }
        }
        return key;
    }
}
