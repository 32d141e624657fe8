package dev.lazyblock.upstream;

import java.io.IOException;

/** A failed read from storage: which object, which range, and what came back. */
public class UpstreamException extends IOException {
    private final String object;
    private final long offset;
    private final long length;

    public UpstreamException(String object, long offset, long length, String what) {
        this(object, offset, length, what, null);
    }

    public UpstreamException(String object, long offset, long length, String what, Throwable cause) {
        super("reading [" + offset + ", " + (offset + length) + ") of " + object + ": " + what, cause);
        this.object = object;
        this.offset = offset;
        this.length = length;
    }

    public String object() {
        return object;
    }

    public long offset() {
        return offset;
    }

    public long length() {
        return length;
    }
}
