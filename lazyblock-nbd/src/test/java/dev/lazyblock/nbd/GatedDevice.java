package dev.lazyblock.nbd;

import dev.lazyblock.device.Device;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/** Bytes in memory; a read starting at {@link #gate} waits until {@link #open()} (at most 10 s). */
final class GatedDevice implements Device {
    final byte[] bytes;
    final long gate;
    final CountDownLatch opened = new CountDownLatch(1);
    final CountDownLatch reached = new CountDownLatch(1);

    GatedDevice(byte[] bytes, long gate) {
        this.bytes = bytes;
        this.gate = gate;
    }

    void open() {
        opened.countDown();
    }

    @Override
    public long size() {
        return bytes.length;
    }

    @Override
    public int blockSize() {
        return 4096;
    }

    @Override
    public long readAt(MemorySegment dst, long off) throws IOException {
        if (off < 0 || off >= bytes.length) {
            throw new IndexOutOfBoundsException("offset " + off);
        }
        if (off == gate) {
            reached.countDown();
            try {
                if (!opened.await(10, TimeUnit.SECONDS)) {
                    throw new IOException("gate at " + gate + " never opened");
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted at the gate", e);
            }
        }
        int n = (int) Math.min(dst.byteSize(), bytes.length - off);
        MemorySegment.copy(MemorySegment.ofArray(bytes), off, dst, 0, n);
        return n;
    }

    @Override
    public void close() {}
}
