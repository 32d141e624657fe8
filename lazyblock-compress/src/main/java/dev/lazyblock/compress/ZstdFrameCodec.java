package dev.lazyblock.compress;

import dev.lazyblock.frame.FrameCodec;
import io.airlift.compress.v3.zstd.ZstdJavaCompressor;
import io.airlift.compress.v3.zstd.ZstdJavaDecompressor;
import java.io.IOException;
import java.lang.foreign.MemorySegment;

/** zstd (aircompressor's pure-Java implementation, its default level 3). Codec id 1. */
public final class ZstdFrameCodec implements FrameCodec {
    public static final int ID = 1;
    /** aircompressor's (de)compressors keep per-call state: one per thread, reused. */
    private static final ThreadLocal<ZstdJavaCompressor> COMPRESSOR = ThreadLocal.withInitial(ZstdJavaCompressor::new);
    private static final ThreadLocal<ZstdJavaDecompressor> DECOMPRESSOR =
            ThreadLocal.withInitial(ZstdJavaDecompressor::new);

    @Override
    public int id() {
        return ID;
    }

    @Override
    public String name() {
        return "zstd";
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
            throw new IOException("malformed zstd frame: " + e.getMessage(), e);
        }
    }
}
