package dev.lazyblock.compress;

import io.airlift.compress.v3.lz4.Lz4JavaCompressor;
import io.airlift.compress.v3.lz4.Lz4JavaDecompressor;

/** LZ4 block format (aircompressor's pure-Java implementation). Codec id 2. */
public final class Lz4FrameCodec extends AircompressorCodec {
    public static final int ID = 2;

    public Lz4FrameCodec() {
        super(ID, "lz4", Lz4JavaCompressor::new, Lz4JavaDecompressor::new);
    }
}
