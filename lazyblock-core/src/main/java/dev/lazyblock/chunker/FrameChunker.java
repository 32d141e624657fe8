package dev.lazyblock.chunker;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.frame.CorruptFrameException;
import dev.lazyblock.frame.FrameCodec;
import dev.lazyblock.frame.FrameTable;
import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.UpstreamException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Serves a build stored as compressed frames: a chunk is a frame. A miss fetches the whole
 * stored frame with one ranged read, checks its CRC-32C, decompresses it, checks the
 * uncompressed CRC-32C, and only then writes it into the cache, releases its waiters and marks
 * it present (the single-flight session machinery of {@link AbstractChunker}).
 *
 * <p>A frame that fails a check or does not decompress never reaches the cache: every waiter
 * gets a {@link CorruptFrameException} naming the build, the frame and its offsets, the session
 * leaves the map, and the next read fetches the frame again.
 *
 * <p>With a {@link ChunkTier}, a miss reads the tier first (a tier file is the stored frame,
 * checked against the same CRC; a bad one is ignored and replaced), and a frame fetched from the
 * store is written to the tier in the background once it has been verified.
 *
 * <p>{@link #raw} serves an uncompressed build through a tier the same way, a chunk (4 MiB) per
 * "frame": the header has no checksum for it, so the tier file's own checksum is what guards it.
 */
public final class FrameChunker extends AbstractChunker {
    /**
     * Per fetch thread: where the stored frame lands, where it is decompressed, and a third for
     * {@link ContentChunker}'s decrypted bytes. Fetch threads are few and long-lived, so a fetch
     * allocates no frame-sized buffer; a thread fetches one frame or chunk at a time, so the
     * frame and content chunkers share them.
     */
    private static final ThreadLocal<MemorySegment[]> BUFFERS = ThreadLocal.withInitial(() -> new MemorySegment[3]);

    private final String build;
    /** Null for a raw build: chunk {@code i} is then the stored bytes {@code [i * chunkSize, +chunkLen)}, as is. */
    private final FrameTable frames;
    private final FrameCodec codec;
    private final ChunkTier tier;

    /**
     * @param stored the diff object: the frames back to back
     * @param build  names the build in errors (and keys it in the tier): its id
     * @param tier   a shared chunk tier, or null
     */
    public FrameChunker(Upstream stored, String build, FrameTable frames, FrameCodec codec, SparseCache cache,
                        ChunkerOptions options, ChunkTier tier) throws IOException {
        super(stored, frames.size(), cache, options.withChunkSize(frames.frameSize()));
        if (codec.id() != frames.codec()) {
            throw new IllegalArgumentException("build " + build + " is compressed with codec " + frames.codec() + ", not "
                    + codec.name() + " (" + codec.id() + ")");
        }
        long actual = stored.size();
        if (actual != frames.compressedSize()) {
            throw new UpstreamException(stored.name(), 0, actual, "the frame table of build " + build + " stores "
                    + frames.compressedSize() + " bytes, the object has " + actual + " (truncated or replaced?)");
        }
        this.build = build;
        this.frames = frames;
        this.codec = codec;
        this.tier = tier;
    }

    /** An uncompressed build read whole chunk by whole chunk, through {@code tier} (see the class comment). */
    public static FrameChunker raw(Upstream stored, String build, SparseCache cache, ChunkerOptions options,
                                   ChunkTier tier) throws IOException {
        return new FrameChunker(stored, build, cache, options, tier);
    }

    private FrameChunker(Upstream stored, String build, SparseCache cache, ChunkerOptions options, ChunkTier tier)
            throws IOException {
        super(stored, cache, options);
        this.build = build;
        this.frames = null;
        this.codec = null;
        this.tier = tier;
    }

    /** The frame table, or null for a raw build. */
    public FrameTable frames() {
        return frames;
    }

    public FrameCodec codec() {
        return codec;
    }

    /** This fetch thread's buffer {@code which} (0, 1 or 2), at least {@code len} bytes, sliced to it. */
    static MemorySegment buffer(int which, int len) {
        MemorySegment[] held = BUFFERS.get();
        if (held[which] == null || held[which].byteSize() < len) {
            held[which] = Arena.ofAuto().allocate(Math.max(len, 64 << 10), 4096);
        }
        return held[which].asSlice(0, len);
    }

    @Override
    Session newSession(long frame) {
        return new ProgressSession(this, frame) {
            @Override
            void fetch() throws IOException {
                fetchFrame(this, (int) chunkIndex);
                advance(chunkLen);
                complete();
            }
        };
    }

    private void fetchFrame(Session session, int i) throws IOException {
        if (frames == null) {
            fetchRaw(session, i);
            return;
        }
        MemorySegment in = buffer(0, frames.compressedSize(i));
        MemorySegment out = buffer(1, frames.uncompressedSize(i));
        if (tier != null && tier.read(build, i, in)) {
            CorruptFrameException bad = decode(i, in, out);
            if (bad == null) {
                metrics.tierRead(true, in.byteSize());
                cache.writeAt(out, frames.uncompressedOffset(i));
                return;
            }
            // A tier file that is corrupt or truncated: ignore it, fetch from the store, replace it.
            log.warn("shared tier copy of frame {} of build {} is bad, fetching from the store: {}", i, build,
                    bad.getMessage());
        }
        if (tier != null) {
            metrics.tierRead(false, 0);
        }
        if (!readTracked(session, frames.compressedOffset(i), in.asByteBuffer())) {
            return; // the session ended (timed out, closed) before the request went out
        }
        CorruptFrameException bad = decode(i, in, out);
        if (bad != null) {
            throw bad;
        }
        cache.writeAt(out, frames.uncompressedOffset(i));
        if (tier != null) {
            tier.writeBehind(build, i, in); // copies the bytes before returning: the buffer is reused
        }
    }

    private void fetchRaw(Session session, int i) throws IOException {
        long off = (long) i * chunkSize;
        MemorySegment out = buffer(1, (int) Math.min(chunkSize, size - off));
        if (tier != null) {
            boolean hit = tier.read(build, i, out);
            metrics.tierRead(hit, hit ? out.byteSize() : 0);
            if (hit) {
                cache.writeAt(out, off);
                return;
            }
        }
        if (!readTracked(session, off, out.asByteBuffer())) {
            return;
        }
        cache.writeAt(out, off);
        if (tier != null) {
            tier.writeBehind(build, i, out);
        }
    }

    /** Checks and decompresses frame {@code i}; returns why it is corrupt, or null once {@code out} holds it. */
    private CorruptFrameException decode(int i, MemorySegment in, MemorySegment out) {
        int crc = FrameTable.crc(in.asByteBuffer());
        if (crc != frames.compressedCrc(i)) {
            return corrupt(i, String.format("CRC-32C of the %d stored bytes is %08x, the header says %08x",
                    in.byteSize(), crc, frames.compressedCrc(i)));
        }
        int n;
        try {
            n = codec.decompress(in, out);
        } catch (IOException | RuntimeException | AssertionError e) {
            return corrupt(i, codec.name() + " could not decompress it: " + e);
        }
        if (n != out.byteSize()) {
            return corrupt(i, codec.name() + " decompressed it to " + n + " bytes, expected " + out.byteSize());
        }
        int ucrc = FrameTable.crc(out.asByteBuffer());
        if (ucrc != frames.uncompressedCrc(i)) {
            return corrupt(i, String.format("CRC-32C of the decompressed bytes is %08x, the header says %08x", ucrc,
                    frames.uncompressedCrc(i)));
        }
        return null;
    }

    private CorruptFrameException corrupt(int i, String why) {
        return new CorruptFrameException(build, i, frames, why + " (stored in " + upstream.name() + ")");
    }
}
