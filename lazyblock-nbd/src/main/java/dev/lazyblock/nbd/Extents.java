package dev.lazyblock.nbd;

import dev.lazyblock.cache.PresenceBitmap;
import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.device.Device;
import dev.lazyblock.device.LayerHeader.Mapping;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.device.Overlay;
import dev.lazyblock.device.WorkingSetRecorder;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * What the server knows about a device beyond its bytes: which ranges read as zeros without
 * being stored (for {@code base:allocation} and hole chunks), and how to pull a range into the
 * local cache without copying it anywhere (for NBD_CMD_CACHE).
 *
 * <ul>
 *   <li>a {@link LayeredImage}: its header's zero mappings are holes that read as zeros
 *       ({@code NBD_STATE_HOLE | NBD_STATE_ZERO}); every other mapping is data;</li>
 *   <li>an {@link Overlay}: blocks written into it are data; the rest is whatever its base says;</li>
 *   <li>anything else (a chunker over one object): all data.</li>
 * </ul>
 */
final class Extents {
    private Extents() {}

    /** Receives extents in offset order. */
    interface Sink {
        /** @return false to stop the walk */
        boolean extent(long offset, long length, int flags);
    }

    /**
     * Describes {@code [off, off+len)} (which must lie inside the device) as extents, adjacent
     * ones with equal flags merged, at most {@code max} of them; the last may end before
     * {@code off+len} when the limit is reached.
     *
     * @return the number of extents given to {@code sink}
     */
    static int describe(Device device, long off, long len, int max, Sink sink) {
        Merger m = new Merger(max, sink);
        walk(device, off, off + len, m);
        return m.flush();
    }

    /** Whether the device can have holes at all (so a read may answer with hole chunks). */
    static boolean mayHaveHoles(Device device) {
        return switch (device) {
            case LayeredImage li -> li.header().mappings().stream().anyMatch(Mapping::isZero);
            case Overlay ov -> mayHaveHoles(ov.base());
            case WorkingSetRecorder r -> mayHaveHoles(r.device());
            default -> false;
        };
    }

    private static boolean walk(Device device, long off, long end, Sink sink) {
        switch (device) {
            case LayeredImage li -> {
                List<Mapping> mappings = li.header().mappings();
                for (int i = li.header().mappingAt(off); off < end; i++) {
                    Mapping m = mappings.get(i);
                    long stop = Math.min(end, m.end());
                    if (!sink.extent(off, stop - off, m.isZero() ? Nbd.STATE_HOLE | Nbd.STATE_ZERO : 0)) {
                        return false;
                    }
                    off = stop;
                }
                return true;
            }
            case Overlay ov -> {
                PresenceBitmap written = ov.cache().presence();
                int bs = ov.blockSize();
                while (off < end) {
                    long block = off / bs;
                    if (written.get(block)) {
                        long stop = Math.min(end, written.nextClear(block) * bs);
                        if (!sink.extent(off, stop - off, 0)) {
                            return false;
                        }
                        off = stop;
                    } else {
                        long next = written.nextSet(block);
                        long stop = next < 0 ? end : Math.min(end, next * bs);
                        if (!walk(ov.base(), off, stop, sink)) {
                            return false;
                        }
                        off = stop;
                    }
                }
                return true;
            }
            case WorkingSetRecorder r -> {
                return walk(r.device(), off, end, sink);
            }
            default -> {
                return sink.extent(off, end - off, 0);
            }
        }
    }

    /** Merges adjacent extents with equal flags and stops at {@code max}. */
    private static final class Merger implements Sink {
        private final int max;
        private final Sink out;
        private long start = -1;
        private long length;
        private int flags;
        private int given;

        Merger(int max, Sink out) {
            this.max = max;
            this.out = out;
        }

        @Override
        public boolean extent(long offset, long len, int f) {
            if (len <= 0) {
                return true;
            }
            if (start >= 0 && f == flags && start + length == offset) {
                length += len;
                return true;
            }
            if (start >= 0) {
                out.extent(start, length, flags);
                given++;
                if (given >= max) {
                    start = -1;
                    return false;
                }
            }
            start = offset;
            length = len;
            flags = f;
            return true;
        }

        int flush() {
            if (start >= 0 && given < max) {
                out.extent(start, length, flags);
                given++;
                start = -1;
            }
            return given;
        }
    }

    // ------------------------------------------------------------------ prefetch (NBD_CMD_CACHE)

    /** Pulls at most this much through a chunker per call: its chunks are fetched in parallel. */
    static final long PREFETCH_WINDOW = 32 << 20;

    /**
     * Brings {@code [off, off+len)} into the local caches: through the chunkers' {@code slice}
     * (which fetches what is missing and copies nothing), skipping zero mappings; an overlay
     * prefetches its base. Devices of other kinds are read into a scratch buffer.
     */
    static void prefetch(Device device, long off, long len) throws IOException {
        long end = off + len;
        switch (device) {
            case Chunker c -> {
                for (long pos = off; pos < end; pos += PREFETCH_WINDOW) {
                    c.slice(pos, Math.min(PREFETCH_WINDOW, end - pos));
                }
            }
            case LayeredImage li -> {
                List<Mapping> mappings = li.header().mappings();
                List<Chunker> chunkers = li.chunkers();
                for (int i = li.header().mappingAt(off); off < end; i++) {
                    Mapping m = mappings.get(i);
                    long stop = Math.min(end, m.end());
                    if (!m.isZero()) {
                        prefetch(chunkers.get(m.build()), m.buildOffset() + (off - m.offset()), stop - off);
                    }
                    off = stop;
                }
            }
            case Overlay ov -> prefetch(ov.base(), off, len);
            default -> {
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment scratch = arena.allocate(Math.min(len, 1 << 20));
                    for (long pos = off; pos < end; pos += scratch.byteSize()) {
                        device.readAt(scratch.asSlice(0, Math.min(scratch.byteSize(), end - pos)), pos);
                    }
                }
            }
        }
    }
}
