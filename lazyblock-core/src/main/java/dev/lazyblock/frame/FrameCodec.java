package dev.lazyblock.frame;

import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * A compression codec for the frames of a layer's diff: each frame (2 MiB of image bytes by
 * default) is compressed on its own, so any frame can be fetched and decompressed alone.
 *
 * <p>Implementations are found with {@link java.util.ServiceLoader} ({@link FrameCodecs}): core
 * holds only {@link FrameCodecs#NONE}; zstd and LZ4 live in the lazyblock-compress module.
 * Implementations are thread-safe (fetch threads call them at once): keep per-thread state in
 * the implementation, not in the caller.
 */
public interface FrameCodec {
    /** The id stored in a layer header's frame table: stable forever once published. */
    int id();

    /** The name on the command line and in {@code inspect}: {@code none}, {@code zstd}, {@code lz4}. */
    String name();

    /** The most bytes {@link #compress} may write for {@code len} input bytes. */
    int maxCompressedLength(int len);

    /**
     * Compresses all of {@code src} into {@code dst} (at least {@link #maxCompressedLength} bytes).
     *
     * @return the compressed length
     */
    int compress(MemorySegment src, MemorySegment dst);

    /**
     * Decompresses all of {@code src} into {@code dst}, which is exactly the frame's uncompressed
     * size.
     *
     * @return the bytes written
     * @throws IOException (or any runtime exception) if {@code src} is not a valid frame: callers
     *                     treat every failure here as a corrupt frame
     */
    int decompress(MemorySegment src, MemorySegment dst) throws IOException;
}
