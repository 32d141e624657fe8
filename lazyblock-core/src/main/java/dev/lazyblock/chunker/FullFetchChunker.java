package dev.lazyblock.chunker;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.upstream.Upstream;
import java.io.IOException;

/**
 * Fetches every chunk a miss touches whole, with one request per chunk, one fetch per chunk in
 * flight; readers of a chunk wait for all of it. The image's last chunk is shorter, and reading
 * exactly to its end is not a short read; anything less than asked is.
 */
public final class FullFetchChunker extends AbstractChunker {
    public FullFetchChunker(Upstream upstream, SparseCache cache, ChunkerOptions options) throws IOException {
        super(upstream, cache, options);
    }

    @Override
    Session newSession(long chunkIndex) {
        return new ProgressSession(this, chunkIndex) {
            @Override
            void fetch() throws IOException {
                fetchWhole(this, chunkOff, chunkLen);
                advance(chunkLen);
                fetched("whole", chunkOff, chunkLen);
                complete();
            }
        };
    }
}
