package dev.lazyblock.cache;

/**
 * A checked read ({@link SparseCache#slice}, {@link SparseCache#readAt}) of a range that is
 * not entirely present. Fillers (chunkers) check {@link SparseCache#isCached} first; anyone else
 * seeing this asked a cache for bytes nobody has fetched.
 */
public final class NotCachedException extends IllegalStateException {
    private final long offset;
    private final long length;

    public NotCachedException(String cache, long offset, long length) {
        super("not cached: [" + offset + ", " + (offset + length) + ") of " + cache
                + " is not entirely present");
        this.offset = offset;
        this.length = length;
    }

    public long offset() {
        return offset;
    }

    public long length() {
        return length;
    }
}
