package dev.lazyblock.chunker;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.Upstream.RangeStream;
import dev.lazyblock.upstream.UpstreamException;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Streams each missed chunk with one range request and releases each reader as soon as the
 * bytes it needs have landed, in batches of max(block, 16 KiB). Readers released early read
 * the mapping directly; the chunk is marked present when the whole of it has arrived.
 */
public final class StreamingChunker extends AbstractChunker {
    static final int MIN_BATCH = 16 << 10;

    public StreamingChunker(Upstream upstream, SparseCache cache, ChunkerOptions options) throws IOException {
        super(upstream, cache, options);
    }

    @Override
    Session newSession(long chunkIndex) {
        return new ProgressSession(this, chunkIndex) {
            @Override
            void fetch() throws IOException {
                ByteBuffer dst = cache.writableView(chunkOff, chunkLen).asByteBuffer();
                int batch = Math.max(blockSize, MIN_BATCH);
                long t0 = System.nanoTime();
                try (RangeStream in = upstream.openRange(chunkOff, chunkLen)) {
                    if (!track(in)) {
                        return; // failed (timed out, closed) before the stream opened
                    }
                    long published = 0;
                    while (dst.hasRemaining()) {
                        if (in.read(dst) < 0) {
                            throw new UpstreamException(upstream.name(), chunkOff, chunkLen,
                                    "short read: the stream ended after " + dst.position() + " of " + chunkLen + " bytes");
                        }
                        int pos = dst.position();
                        if (pos == chunkLen || pos - published >= batch) {
                            long ready = pos == chunkLen ? pos : pos - pos % blockSize;
                            advance(ready);
                            published = ready;
                        }
                    }
                }
                metrics.remoteRead(upstream.name(), chunkLen, System.nanoTime() - t0);
                complete();
            }
        };
    }
}
