package dev.lazyblock.nbd;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Direct buffers for request payloads (WRITE data, READ data of devices that cannot hand out a
 * view), in power-of-two size classes from 4 KiB to the maximum payload. A class keeps at most
 * {@link #RETAIN_BYTES} of free buffers (two of the largest); beyond that a returned buffer is left to the garbage
 * collector (direct memory is bounded by {@code -XX:MaxDirectMemorySize}, and each connection's
 * in-flight bytes by its budget).
 *
 * <p>Direct, so socket reads land in them without a copy and {@code pwrite} into an overlay's
 * cache takes them as they are.
 */
final class BufferPool {
    private static final int MIN_SHIFT = 12;
    private static final int MAX_SHIFT = 25;
    static final long RETAIN_BYTES = 16 << 20;

    private final List<ConcurrentLinkedQueue<ByteBuffer>> free = new ArrayList<>();
    private final AtomicInteger[] counts = new AtomicInteger[MAX_SHIFT - MIN_SHIFT + 1];

    BufferPool() {
        for (int i = 0; i < counts.length; i++) {
            free.add(new ConcurrentLinkedQueue<>());
            counts[i] = new AtomicInteger();
        }
    }

    private static int classOf(int size) {
        int shift = Math.max(MIN_SHIFT, 32 - Integer.numberOfLeadingZeros(Math.max(1, size) - 1));
        if (shift > MAX_SHIFT) {
            throw new IllegalArgumentException("buffer of " + size + " bytes is over the " + (1 << MAX_SHIFT) + "-byte maximum");
        }
        return shift - MIN_SHIFT;
    }

    /** A buffer with position 0 and limit {@code size}. */
    ByteBuffer get(int size) {
        int c = classOf(size);
        ByteBuffer b = free.get(c).poll();
        if (b == null) {
            b = ByteBuffer.allocateDirect(1 << (c + MIN_SHIFT));
        } else {
            counts[c].decrementAndGet();
        }
        return b.clear().limit(size);
    }

    /** Returns a buffer got from {@link #get}; it must not be used afterwards. */
    void release(ByteBuffer b) {
        if (b == null) {
            return;
        }
        int c = classOf(b.capacity());
        if (counts[c].get() < Math.max(2, RETAIN_BYTES >> (c + MIN_SHIFT))) {
            counts[c].incrementAndGet();
            free.get(c).offer(b);
        }
    }
}
