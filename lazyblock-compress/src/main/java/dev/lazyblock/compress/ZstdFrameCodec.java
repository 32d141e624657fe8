package dev.lazyblock.compress;

import io.airlift.compress.v3.zstd.ZstdJavaCompressor;
import io.airlift.compress.v3.zstd.ZstdJavaDecompressor;

/** zstd (aircompressor's pure-Java implementation, its default level 3). Codec id 1. */
public final class ZstdFrameCodec extends AircompressorCodec {
    public static final int ID = 1;

    public ZstdFrameCodec() {
        super(ID, "zstd", ZstdJavaCompressor::new, ZstdJavaDecompressor::new);
    }
}
