package dev.lazyblock.compress;

import dev.lazyblock.frame.FrameCodec;
import io.airlift.compress.v3.Compressor;
import io.airlift.compress.v3.Decompressor;
import io.airlift.compress.v3.MalformedInputException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.function.Supplier;

/**
 * A frame codec on one of aircompressor's pure-Java codecs. Its compressors and decompressors keep
 * per-call state (hash tables, windows): one of each per thread, reused.
 */
abstract class AircompressorCodec implements FrameCodec {
    private final int id;
    private final String name;
    private final ThreadLocal<Compressor> compressor;
    private final ThreadLocal<Decompressor> decompressor;

    AircompressorCodec(int id, String name, Supplier<Compressor> compressor, Supplier<Decompressor> decompressor) {
        this.id = id;
        this.name = name;
        this.compressor = ThreadLocal.withInitial(compressor);
        this.decompressor = ThreadLocal.withInitial(decompressor);
    }

    @Override
    public final int id() {
        return id;
    }

    @Override
    public final String name() {
        return name;
    }

    @Override
    public final int maxCompressedLength(int len) {
        return compressor.get().maxCompressedLength(len);
    }

    @Override
    public final int compress(MemorySegment src, MemorySegment dst) {
        return compressor.get().compress(src, dst);
    }

    @Override
    public final int decompress(MemorySegment src, MemorySegment dst) throws IOException {
        try {
            return decompressor.get().decompress(src, dst);
        } catch (MalformedInputException e) {
            throw new IOException("malformed " + name + " frame: " + e.getMessage(), e);
        }
    }
}
