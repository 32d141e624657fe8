package dev.lazyblock.frame;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.LongConsumer;

/** Compresses a raw diff file into frames: the stored object and its {@link FrameTable}. */
public final class FrameWriter {
    private FrameWriter() {}

    /**
     * Compresses {@code raw} frame by frame into {@code out} (created new) with {@code codec},
     * compressing up to {@code threads} frames at once and writing them in order.
     */
    public static FrameTable compress(Path raw, Path out, FrameCodec codec, int frameSize, int threads,
                                      LongConsumer progress) throws IOException {
        try (FileChannel in = FileChannel.open(raw, StandardOpenOption.READ);
             FileChannel dst = FileChannel.open(out, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
             ExecutorService pool = Executors.newFixedThreadPool(Math.max(1, threads),
                     Thread.ofPlatform().daemon().name("lazyblock-compress-", 0).factory())) {
            long size = in.size();
            int n = (int) ((size + frameSize - 1) / frameSize);
            long[] offsets = new long[n];
            int[] sizes = new int[n];
            int[] crcC = new int[n];
            int[] crcU = new int[n];
            int window = Math.max(1, threads) * 2; // frames in flight: bounds memory to a few frames per thread
            List<Future<byte[]>> pending = new ArrayList<>();
            long pos = 0;
            int next = 0;
            for (int i = 0; i < n || !pending.isEmpty(); ) {
                while (next < n && pending.size() < window) {
                    int frame = next++;
                    long off = (long) frame * frameSize;
                    int len = (int) Math.min(frameSize, size - off);
                    ByteBuffer src = ByteBuffer.allocateDirect(len);
                    while (src.hasRemaining()) {
                        if (in.read(src, off + src.position()) < 0) {
                            throw new IOException(raw + " ended at " + (off + src.position()) + " of " + size + " bytes");
                        }
                    }
                    src.flip();
                    crcU[frame] = FrameTable.crc(src.duplicate());
                    pending.add(pool.submit(() -> compressOne(codec, src)));
                }
                byte[] frameBytes = take(pending.removeFirst());
                ByteBuffer b = ByteBuffer.wrap(frameBytes);
                crcC[i] = FrameTable.crc(b.duplicate());
                offsets[i] = pos;
                sizes[i] = frameBytes.length;
                while (b.hasRemaining()) {
                    dst.write(b);
                }
                pos += frameBytes.length;
                progress.accept(Math.min(frameSize, size - (long) i * frameSize));
                i++;
            }
            dst.force(false);
            return new FrameTable(codec.id(), frameSize, size, offsets, sizes, crcC, crcU);
        }
    }

    private static byte[] compressOne(FrameCodec codec, ByteBuffer src) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment dst = arena.allocate(codec.maxCompressedLength(src.remaining()));
            int n = codec.compress(MemorySegment.ofBuffer(src), dst);
            return dst.asSlice(0, n).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        }
    }

    private static byte[] take(Future<byte[]> f) throws IOException {
        try {
            return f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new java.io.InterruptedIOException("interrupted while compressing");
        } catch (ExecutionException e) {
            throw new IOException("compressing a frame failed: " + e.getCause(), e.getCause());
        }
    }
}
