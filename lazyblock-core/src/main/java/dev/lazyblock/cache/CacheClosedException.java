package dev.lazyblock.cache;

/** An operation on a {@link SparseCache} after {@link SparseCache#close()}. */
public class CacheClosedException extends IllegalStateException {
    public CacheClosedException(String message) {
        super(message);
    }

    public CacheClosedException(String message, Throwable cause) {
        super(message, cause);
    }

    /**
     * A shared cause with no stack trace, for failing many waiters at once: each waiter throws
     * its own exception (with its own trace) that carries this one as the cause.
     */
    public static CacheClosedException shared(String message) {
        return new Shared(message);
    }

    private static final class Shared extends CacheClosedException {
        Shared(String message) {
            super(message);
        }

        @Override
        public synchronized Throwable fillInStackTrace() {
            return this; // no trace: the waiters' own exceptions carry theirs
        }
    }
}
