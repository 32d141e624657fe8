package dev.lazyblock.cache;

/** An operation on a {@link SparseCache} after {@link SparseCache#close()}. */
public final class CacheClosedException extends IllegalStateException {
    public CacheClosedException(String message) {
        super(message);
    }

    public CacheClosedException(String message, Throwable cause) {
        super(message, cause);
    }
}
