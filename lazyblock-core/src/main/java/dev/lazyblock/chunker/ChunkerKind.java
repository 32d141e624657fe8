package dev.lazyblock.chunker;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.upstream.Upstream;
import java.io.IOException;

/** The fetch strategies, by name: for configuration, the CLI and benchmarks. */
public enum ChunkerKind {
    /** Fetches whole chunks; readers wait for the whole chunk. */
    FULL_FETCH("full-fetch"),
    /** Streams each chunk; readers are released as the bytes they need arrive. */
    STREAMING("streaming"),
    /** Fetches the block a reader waits for first, then the rest of its chunk. */
    REQUEST_FIRST("request-first");

    private final String label;

    ChunkerKind(String label) {
        this.label = label;
    }

    public String label() {
        return label;
    }

    public Chunker create(Upstream upstream, SparseCache cache, ChunkerOptions options) throws IOException {
        return switch (this) {
            case FULL_FETCH -> new FullFetchChunker(upstream, cache, options);
            case STREAMING -> new StreamingChunker(upstream, cache, options);
            case REQUEST_FIRST -> new RequestFirstChunker(upstream, cache, options);
        };
    }

    public static ChunkerKind parse(String s) {
        for (ChunkerKind k : values()) {
            if (k.label.equalsIgnoreCase(s) || k.name().equalsIgnoreCase(s)) {
                return k;
            }
        }
        throw new IllegalArgumentException("unknown chunker '" + s + "': expected full-fetch, streaming or request-first");
    }
}
