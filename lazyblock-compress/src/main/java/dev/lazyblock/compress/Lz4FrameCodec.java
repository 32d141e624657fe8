package dev.lazyblock.compress;

import dev.lazyblock.frame.FrameCodec;
import io.airlift.compress.v3.lz4.Lz4JavaCompressor;
import io.airlift.compress.v3.lz4.Lz4JavaDecompressor;
import java.io.IOException;
import java.lang.foreign.MemorySegment;

/** LZ4 block format (aircompressor's pure-Java implementation). Codec id 2. */
public final class Lz4FrameCodec implements FrameCodec {
    public static final int ID = 2;
    /** aircompressor's compressor keeps a hash table per call: one per thread, reused. */
    private static final ThreadLocal<Lz4JavaCompressor> COMPRESSOR = ThreadLocal.withInitial(Lz4JavaCompressor::new);
    private static final ThreadLocal<Lz4JavaDecompressor> DECOMPRESSOR = ThreadLocal.withInitial(Lz4JavaDecompressor::new);

    @Override
    public int id() {
        return ID;
    }

    @Override
    public String name() {
        return "lz4";
    }

    @Override
    public int maxCompressedLength(int len) {
        return COMPRESSOR.get().maxCompressedLength(len);
    }

    @Override
    public int compress(MemorySegment src, MemorySegment dst) {
        return COMPRESSOR.get().compress(src, dst);
    }

    @Override
    public int decompress(MemorySegment src, MemorySegment dst) throws IOException {
        try {
            return DECOMPRESSOR.get().decompress(src, dst);
        } catch (io.airlift.compress.v3.MalformedInputException e) {
            throw new IOException("malformed LZ4 frame: " + e.getMessage(), e);
        }
    }
}
