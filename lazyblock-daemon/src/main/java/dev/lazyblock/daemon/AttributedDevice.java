package dev.lazyblock.daemon;

import dev.lazyblock.device.Device;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;

/**
 * One sandbox's view of its (shared) image: each read takes one of the sandbox's read slots, so a
 * sandbox with a storm of misses holds at most {@code slots} of the host's fetch threads and
 * other sandboxes' faults still get theirs; and each read runs with the sandbox's meters bound,
 * so the shared chunkers charge hits and misses to it. Closing does not close the image (the
 * sandbox owns it).
 */
final class AttributedDevice implements Device {
    private final Device image;
    private final SandboxMeters meters;
    private final Semaphore slots;
    private final int slotCount;
    private final long waitNanos;
    private final String sandbox;

    AttributedDevice(String sandbox, Device image, SandboxMeters meters, int slots, Duration wait) {
        this.sandbox = sandbox;
        this.image = image;
        this.meters = meters;
        this.slots = new Semaphore(slots);
        this.slotCount = slots;
        this.waitNanos = wait.toNanos();
    }

    @Override
    public long size() {
        return image.size();
    }

    @Override
    public int blockSize() {
        return image.blockSize();
    }

    @Override
    public long readAt(MemorySegment dst, long off) throws IOException {
        boolean got;
        try {
            got = slots.tryAcquire(waitNanos, TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new java.io.InterruptedIOException("interrupted waiting for a read slot of sandbox " + sandbox);
        }
        if (!got) {
            meters.readErrors.increment();
            throw new IOException("sandbox " + sandbox + " has all its " + slotCount + " read slots busy for "
                    + Duration.ofNanos(waitNanos) + " (readsPerSandbox bounds them)");
        }
        try {
            long n = ScopedValue.where(SandboxMeters.CURRENT, meters).call(() -> image.readAt(dst, off));
            meters.reads.increment();
            meters.readBytes.add(n);
            return n;
        } catch (IOException | RuntimeException e) {
            meters.readErrors.increment();
            throw e;
        } finally {
            slots.release();
        }
    }

    /** Reads in flight now. */
    int inFlight() {
        return slotCount - slots.availablePermits();
    }

    @Override
    public void close() {
        // the sandbox closes the image
    }

    @Override
    public String toString() {
        return "sandbox " + sandbox + " over " + image;
    }
}
