package dev.lazyblock.chunker;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.upstream.Upstream;
import java.io.IOException;

/**
 * Streams each missed chunk with one range request and releases each reader as soon as the
 * bytes it needs have landed, in batches of max(block, 16 KiB). Readers released early read
 * the mapping directly; the chunk is marked present when the whole of it has arrived.
 */
public final class StreamingChunker extends AbstractChunker {
    public StreamingChunker(Upstream upstream, SparseCache cache, ChunkerOptions options) throws IOException {
        super(upstream, cache, options);
    }

    @Override
    Session newSession(long chunkIndex) {
        return new ProgressSession(this, chunkIndex) {
            @Override
            void fetch() throws IOException {
                fetchStream(this, chunkOff, chunkLen,
                        written -> advance(written == chunkLen ? written : written - written % blockSize));
                complete(); // a no-op if the session already failed
            }
        };
    }
}
