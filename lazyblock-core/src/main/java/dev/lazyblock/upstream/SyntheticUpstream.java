package dev.lazyblock.upstream;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * An object of any size whose bytes are a function of their offset, so a 16 GiB image needs
 * no 16 GiB of anything and every read can be checked. Each 8-byte word at offset {@code 8k}
 * is {@link #word(long) word(k)}, little-endian. For benchmarks and soak tests.
 */
public final class SyntheticUpstream implements Upstream {
    private final long size;

    public SyntheticUpstream(long size) {
        this.size = size;
    }

    public static long word(long index) {
        long x = (index + 1) * 0x9E3779B97F4A7C15L;
        x ^= x >>> 31;
        return x * 0xBF58476D1CE4E5B9L;
    }

    /** The byte at {@code offset}. */
    public static byte byteAt(long offset) {
        return (byte) (word(offset >>> 3) >>> (8 * (offset & 7)));
    }

    /** True: it never blocks. */
    @Override
    public boolean honoursInterrupts() {
        return true;
    }

    @Override
    public String name() {
        return "synthetic://" + size;
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public void readFully(long off, ByteBuffer dst) throws IOException {
        int len = dst.remaining();
        if (off < 0 || off + len > size) {
            throw new UpstreamException(name(), off, len, "range outside the object of " + size + " bytes");
        }
        long pos = off;
        // Head up to a word boundary, whole words, then the tail.
        while (dst.hasRemaining() && (pos & 7) != 0) {
            dst.put(byteAt(pos++));
        }
        // Absolute puts in the buffer's own order, bytes reversed where it is big-endian: no
        // view is made per call (this runs per 4 KiB piece in the benchmark's streams).
        boolean big = dst.order() == ByteOrder.BIG_ENDIAN;
        int words = dst.remaining() >>> 3;
        int at = dst.position();
        for (int i = 0; i < words; i++) {
            long w = word((pos >>> 3) + i);
            dst.putLong(at + 8 * i, big ? Long.reverseBytes(w) : w);
        }
        dst.position(at + words * 8);
        pos += words * 8L;
        while (dst.hasRemaining()) {
            dst.put(byteAt(pos++));
        }
    }

    @Override
    public RangeStream openRange(long off, long len) throws IOException {
        if (off < 0 || len < 0 || off + len > size) {
            throw new UpstreamException(name(), off, len, "range outside the object of " + size + " bytes");
        }
        return new RangeStream() {
            long pos = off;

            @Override
            public int read(ByteBuffer dst) throws IOException {
                if (pos == off + len) {
                    return -1;
                }
                int n = (int) Math.min(dst.remaining(), off + len - pos);
                ByteBuffer part = dst.slice(dst.position(), n);
                readFully(pos, part);
                dst.position(dst.position() + n);
                pos += n;
                return n;
            }

            @Override
            public void close() {}
        };
    }

    @Override
    public void close() {}
}
