package dev.lazyblock.upstream;

/**
 * The store holds no object under the key (HTTP 404, a missing file): a wrong key rather than a
 * failing store, so callers can answer "not found" instead of "the store failed".
 */
public class NoSuchObjectException extends UpstreamException {
    public NoSuchObjectException(String object, String what) {
        super(object, 0, 0, what);
    }
}
