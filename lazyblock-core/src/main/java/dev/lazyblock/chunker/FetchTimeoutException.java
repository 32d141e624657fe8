package dev.lazyblock.chunker;

import dev.lazyblock.upstream.UpstreamException;
import java.time.Duration;

/** A fetch that did not complete within its deadline: the upstream stalled or is too slow. */
public final class FetchTimeoutException extends UpstreamException {
    public FetchTimeoutException(String object, long offset, long length, Duration timeout) {
        super(object, offset, length, "fetch did not complete within " + timeout.toMillis() + " ms");
    }
}
