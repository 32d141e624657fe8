package dev.lazyblock.upstream;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * <b>For benchmarks only</b>: an upstream whose bytes come from memory (or another upstream)
 * but whose timing follows a {@link LatencyModel}, the model of the design brief's benchmark.
 * It is not a substitute for a real protocol in tests of correctness.
 *
 * <ul>
 *   <li>{@link #readFully}: waits TTFB + len / bandwidth, then copies the whole range.</li>
 *   <li>{@link #openRange}: waits TTFB once (in {@code openRange}, as a real client waits for
 *       the response headers), then yields pieces of at most {@code pieceSize} bytes, the piece
 *       ending at cumulative byte {@code c} becoming available at {@code t0 + c / bandwidth},
 *       {@code t0} being the scheduled arrival of the first byte.</li>
 * </ul>
 * Waits park until {@link System#nanoTime()} reaches the deadline; being late does not shift
 * later deadlines, so pacing does not drift. {@link #size()} costs nothing (a real client
 * learns it once).
 *
 * <p>Counts requests ({@code readFully} or {@code openRange} of a non-empty range) and bytes
 * delivered, so a benchmark or test can check how many fetches happened.
 */
public final class SimulatedUpstream implements Upstream {
    public static final int DEFAULT_PIECE_SIZE = 4096;

    /**
     * Time to first byte and bandwidth of a storage backend.
     *
     * @param ttfbNanos      from the request to the first byte
     * @param bytesPerSecond transfer rate after the first byte
     */
    public record LatencyModel(long ttfbNanos, long bytesPerSecond) {
        /** Object storage: 20 ms to first byte, 100 MB/s. */
        public static final LatencyModel GCS = new LatencyModel(20_000_000L, 100_000_000L);
        /** A network file system: 1 ms to first byte, 500 MB/s. */
        public static final LatencyModel NFS = new LatencyModel(1_000_000L, 500_000_000L);
        /** No waiting at all: for tests that need an in-memory upstream with counters. */
        public static final LatencyModel NONE = new LatencyModel(0, Long.MAX_VALUE);

        public LatencyModel {
            if (ttfbNanos < 0) {
                throw new IllegalArgumentException("ttfbNanos must be >= 0, got " + ttfbNanos);
            }
            if (bytesPerSecond <= 0) {
                throw new IllegalArgumentException("bytesPerSecond must be > 0, got " + bytesPerSecond);
            }
        }

        /** Nanoseconds to transfer {@code bytes} after the first byte. */
        public long transferNanos(long bytes) {
            // double: bytes * 1e9 overflows a long from ~9 GB; 53 bits keep nanosecond precision
            return (long) (bytes * 1e9 / bytesPerSecond);
        }
    }

    /** Where the bytes come from, without any latency. */
    private interface Source {
        long size() throws IOException;

        default String version() throws IOException {
            return null; // bytes in memory: no store to ask
        }

        void read(long off, ByteBuffer dst) throws IOException;

        void close() throws IOException;
    }

    private final String name;
    private final Source source;
    private final LatencyModel model;
    private final int pieceSize;
    private final AtomicLong requests = new AtomicLong();
    private final AtomicLong bytesServed = new AtomicLong();

    public SimulatedUpstream(byte[] data, LatencyModel model) {
        this(data, model, DEFAULT_PIECE_SIZE);
    }

    /** Serves {@code data} itself (not a copy): the caller must not change it. */
    public SimulatedUpstream(byte[] data, LatencyModel model, int pieceSize) {
        this("memory[" + data.length + " bytes]", bytesSource(data), model, pieceSize);
    }

    public SimulatedUpstream(Upstream source, LatencyModel model) {
        this(source, model, DEFAULT_PIECE_SIZE);
    }

    /** Serves {@code source}'s bytes with this latency; {@link #close()} closes it. */
    public SimulatedUpstream(Upstream source, LatencyModel model, int pieceSize) {
        this("simulated:" + source.name(), upstreamSource(source), model, pieceSize);
    }

    private SimulatedUpstream(String name, Source source, LatencyModel model, int pieceSize) {
        if (pieceSize <= 0) {
            throw new IllegalArgumentException("pieceSize must be > 0, got " + pieceSize);
        }
        this.name = name;
        this.source = source;
        this.model = model;
        this.pieceSize = pieceSize;
    }

    private static Source bytesSource(byte[] data) {
        return new Source() {
            @Override
            public long size() {
                return data.length;
            }

            @Override
            public void read(long off, ByteBuffer dst) throws UpstreamException {
                int len = dst.remaining();
                if (off + len > data.length) {
                    long got = Math.max(0, data.length - off);
                    throw new UpstreamException("memory", off, len,
                            "short read: expected " + len + " bytes, got " + got);
                }
                dst.put(data, (int) off, len);
            }

            @Override
            public void close() {}
        };
    }

    private static Source upstreamSource(Upstream upstream) {
        return new Source() {
            @Override
            public long size() throws IOException {
                return upstream.size();
            }

            @Override
            public String version() throws IOException {
                return upstream.version();
            }

            @Override
            public void read(long off, ByteBuffer dst) throws IOException {
                upstream.readFully(off, dst);
            }

            @Override
            public void close() throws IOException {
                upstream.close();
            }
        };
    }

    /** True: its waits park, and end on an interrupt. */
    @Override
    public boolean honoursInterrupts() {
        return true;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public long size() throws IOException {
        return source.size();
    }

    @Override
    public String version() throws IOException {
        return source.version();
    }

    @Override
    public void readFully(long off, ByteBuffer dst) throws IOException {
        int len = dst.remaining();
        Ranges.check(off, len);
        if (len == 0) {
            return;
        }
        requests.incrementAndGet();
        parkUntil(System.nanoTime() + model.ttfbNanos() + model.transferNanos(len));
        source.read(off, dst);
        bytesServed.addAndGet(len);
    }

    @Override
    public RangeStream openRange(long off, long len) throws IOException {
        Ranges.check(off, len);
        if (len == 0) {
            return Ranges.emptyStream();
        }
        requests.incrementAndGet();
        long firstByte = System.nanoTime() + model.ttfbNanos();
        parkUntil(firstByte);
        return new PacedStream(off, len, firstByte);
    }

    /** Requests made so far: non-empty {@code readFully} and {@code openRange} calls. */
    public long requestCount() {
        return requests.get();
    }

    /** Bytes delivered so far, by whole-range reads and by range streams. */
    public long bytesServed() {
        return bytesServed.get();
    }

    /** Zeroes both counters, e.g. between benchmark iterations. */
    public void resetCounters() {
        requests.set(0);
        bytesServed.set(0);
    }

    public LatencyModel model() {
        return model;
    }

    @Override
    public void close() throws IOException {
        source.close();
    }

    @Override
    public String toString() {
        return "SimulatedUpstream[" + name + ", " + model + "]";
    }

    /**
     * Parks until {@code System.nanoTime()} reaches {@code deadline}. parkNanos may return early
     * (spuriously, or on interrupt), hence the loop; an interrupt ends the wait with an error
     * instead of spinning.
     */
    private void parkUntil(long deadline) throws InterruptedIOException {
        long left;
        while ((left = deadline - System.nanoTime()) > 0) {
            LockSupport.parkNanos(left);
            if (Thread.interrupted()) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted waiting for " + name);
            }
        }
    }

    /** Yields the range in pieces, each no earlier than its bytes would have arrived. */
    private final class PacedStream extends PieceStream {
        private final long firstByte;

        PacedStream(long off, long len, long firstByte) {
            super(name, off, len, pieceSize);
            this.firstByte = firstByte;
        }

        @Override
        int readPiece(long pos, ByteBuffer dst) throws IOException {
            int n = dst.remaining();
            parkUntil(firstByte + model.transferNanos(pos - off + n));
            source.read(pos, dst);
            bytesServed.addAndGet(n);
            return n;
        }
    }
}
