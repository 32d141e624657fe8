package dev.lazyblock.upstream;

/**
 * A parsed {@code Content-Range} header (RFC 9110 §14.4): {@code bytes first-last/total}, or
 * {@code bytes *}{@code /total} on a 416. {@code first}/{@code last} are -1 for the unsatisfied
 * form, {@code total} is -1 when the server sent {@code *} (unknown).
 */
record ContentRange(long first, long last, long total) {

    /** Parses {@code header}, or returns null if it is not a byte range this client can use. */
    static ContentRange parse(String header) {
        if (header == null) {
            return null;
        }
        String h = header.strip();
        if (h.length() < 6 || !h.regionMatches(true, 0, "bytes ", 0, 6)) {
            return null;
        }
        String spec = h.substring(6).strip();
        int slash = spec.indexOf('/');
        if (slash < 0) {
            return null;
        }
        String range = spec.substring(0, slash).strip();
        String size = spec.substring(slash + 1).strip();
        try {
            long total = size.equals("*") ? -1 : parseNonNegative(size);
            if (range.equals("*")) {
                return total < 0 ? null : new ContentRange(-1, -1, total);
            }
            int dash = range.indexOf('-');
            if (dash < 0) {
                return null;
            }
            long first = parseNonNegative(range.substring(0, dash).strip());
            long last = parseNonNegative(range.substring(dash + 1).strip());
            if (last < first || (total >= 0 && last >= total)) {
                return null;
            }
            return new ContentRange(first, last, total);
        } catch (NumberFormatException e) {
            return null;
        }
    }

    private static long parseNonNegative(String s) {
        long v = Long.parseLong(s);
        if (v < 0 || s.startsWith("+")) {
            throw new NumberFormatException(s);
        }
        return v;
    }

    boolean covers(long off, long len) {
        return first == off && last == off + len - 1;
    }
}
