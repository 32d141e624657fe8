package dev.lazyblock.device;

import dev.lazyblock.cache.PresenceBitmap;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * A device that notes, for each granule (a chunk, typically) its readers touch, the first block
 * they read there, in the order they touched them: the working set of a boot, to prefetch on the
 * next one ({@link WorkingSet#prefetch}). Reads pass through unchanged.
 *
 * <p>A read that hits an already-seen granule costs one acquire load of the bitmap; only the
 * first touch of a granule takes the lock, so recording is cheap on the hot path.
 */
public final class WorkingSetRecorder implements Device {
    private final Device device;
    private final long granule;
    /** Set before the granule's offset is appended (under {@link #order}'s lock); read lock-free. */
    private final PresenceBitmap seen;
    /** First block offset per touched granule, in touch order; guarded by itself. */
    private final List<Long> order = new ArrayList<>();

    /**
     * @param granule the unit a prefetch fetches as a whole (the chunk size): one offset is
     *     recorded per granule; a multiple of the device's block size
     */
    public WorkingSetRecorder(Device device, long granule) {
        if (granule <= 0 || granule % device.blockSize() != 0) {
            throw new IllegalArgumentException("granule must be a positive multiple of the block size "
                    + device.blockSize() + ", got " + granule);
        }
        this.device = device;
        this.granule = granule;
        this.seen = new PresenceBitmap(Math.ceilDiv(Math.max(1, device.size()), granule));
    }

    /** The device recorded (front ends look through the recorder to describe holes). */
    public Device device() {
        return device;
    }

    @Override
    public long size() {
        return device.size();
    }

    @Override
    public int blockSize() {
        return device.blockSize();
    }

    @Override
    public long readAt(MemorySegment dst, long off) throws IOException {
        long len = dst.byteSize();
        if (off >= 0 && len > 0 && off < device.size()) {
            long last = Math.min(off + len, device.size()) - 1;
            for (long g = off / granule; g <= last / granule; g++) {
                if (!seen.get(g)) {
                    touch(g, Math.max(off, g * granule));
                }
            }
        }
        return device.readAt(dst, off);
    }

    private void touch(long g, long at) {
        synchronized (order) {
            if (!seen.get(g)) {
                order.add(at - at % device.blockSize());
                seen.set(g, g + 1);
            }
        }
    }

    /** What was read so far, one block per granule, in first-touch order. */
    public WorkingSet workingSet() {
        synchronized (order) {
            return new WorkingSet(device.blockSize(), order);
        }
    }

    @Override
    public void close() {
        device.close();
    }

    @Override
    public String toString() {
        return device.toString();
    }
}
