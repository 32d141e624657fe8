package dev.lazyblock.upstream;

import dev.lazyblock.testing.UpstreamReads;

import dev.lazyblock.testing.Seeds;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.upstream.SimulatedUpstream.LatencyModel;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** Behaviour of the benchmark upstream; timing is asserted only as a lower bound that cannot flake. */
@Timeout(60)
class SimulatedUpstreamTest {
    private static final int SIZE = 4 * 1024 * 1024;
    private static final byte[] DATA = UpstreamReads.randomBytes(99, SIZE);

    /** Fast enough for unit tests, slow enough that the pacing code really parks. */
    private static final LatencyModel FAST = new LatencyModel(100_000, 10_000_000_000L);

    @Test
    void streamDeliversTheRangeInPiecesOfAtMostPieceSize() throws IOException {
        try (SimulatedUpstream up = new SimulatedUpstream(DATA, FAST, 4096);
             Upstream.RangeStream s = up.openRange(1000, 100_000)) {
            ByteBuffer all = ByteBuffer.allocate(100_000);
            ByteBuffer piece = ByteBuffer.allocate(10_000);
            int n;
            while ((n = s.read(piece.clear())) >= 0) {
                assertTrue(n > 0 && n <= 4096, "piece of " + n + " bytes");
                all.put(piece.flip());
            }
            assertArrayEquals(Arrays.copyOfRange(DATA, 1000, 101_000), all.array());
        }
    }

    @Test
    void randomReadsMatchTheSource() throws Exception {
        for (long seed : Seeds.seeds(3).toArray()) {
            Seeds.replayable(seed, () -> {
                try (SimulatedUpstream up = new SimulatedUpstream(DATA, LatencyModel.NONE, 4096)) {
                    UpstreamReads.assertReadFullyMatches(up, DATA, seed, 50);
                    UpstreamReads.assertStreamsMatch(up, DATA, seed, 20);
                }
            });
        }
    }

    @Test
    void countsRequestsAndBytesServed() throws IOException {
        try (SimulatedUpstream up = new SimulatedUpstream(DATA, FAST)) {
            up.readFully(0, ByteBuffer.allocate(4096));
            up.readFully(8192, ByteBuffer.allocateDirect(100));
            UpstreamReads.readStream(up, 0, 10_000, new Random(1), "whole stream");
            try (Upstream.RangeStream s = up.openRange(0, 1 << 20)) {
                s.read(ByteBuffer.allocate(3000)); // abandoned after one piece
            }
            assertEquals(4, up.requestCount());
            assertEquals(4096 + 100 + 10_000 + 3000, up.bytesServed());

            up.readFully(0, ByteBuffer.allocate(0));
            up.openRange(5, 0).close();
            assertEquals(4, up.requestCount(), "empty ranges are not requests");

            up.resetCounters();
            assertEquals(0, up.requestCount());
            assertEquals(0, up.bytesServed());
        }
    }

    @Test
    void gcsModelReadTakesAtLeastItsTimeToFirstByte() throws IOException {
        try (SimulatedUpstream up = new SimulatedUpstream(DATA, LatencyModel.GCS)) {
            long start = System.nanoTime();
            up.readFully(0, ByteBuffer.allocate(4096));
            assertTrue(System.nanoTime() - start >= 20_000_000L + 40_960, "20 ms + 4 KiB at 100 MB/s");

            start = System.nanoTime();
            try (Upstream.RangeStream s = up.openRange(0, 8192)) {
                while (s.read(ByteBuffer.allocate(4096)) >= 0) {
                    // drain
                }
            }
            assertTrue(System.nanoTime() - start >= 20_000_000L + 81_920, "20 ms + 8 KiB at 100 MB/s");
        }
    }

    @Test
    void modelsMatchTheBrief() {
        assertEquals(20_000_000L, LatencyModel.GCS.ttfbNanos());
        assertEquals(40_960, LatencyModel.GCS.transferNanos(4096));
        assertEquals(1_000_000L, LatencyModel.NFS.ttfbNanos());
        assertEquals(8_192, LatencyModel.NFS.transferNanos(4096));
        assertEquals(40_000_000_000L, LatencyModel.GCS.transferNanos(4_000_000_000L), "no overflow");
        assertThrows(IllegalArgumentException.class, () -> new LatencyModel(-1, 1));
        assertThrows(IllegalArgumentException.class, () -> new LatencyModel(0, 0));
    }

    @Test
    void wrapsAnotherUpstream(@TempDir Path dir) throws IOException {
        Path f = UpstreamReads.writeRandomFile(dir, "image", 5, 100_000);
        byte[] data = UpstreamReads.randomBytes(5, 100_000);
        try (SimulatedUpstream up = new SimulatedUpstream(new FileUpstream(f), FAST, 1000)) {
            assertEquals(100_000, up.size());
            assertTrue(up.name().contains(f.toString()), up.name());
            assertArrayEquals(Arrays.copyOfRange(data, 500, 70_500),
                    UpstreamReads.readStream(up, 500, 70_000, new Random(5), "stream of a file"));
            assertEquals(70_000, up.bytesServed());
        }
    }

    @Test
    void readPastTheEndIsAShortRead() throws IOException {
        try (SimulatedUpstream up = new SimulatedUpstream(DATA, LatencyModel.NONE)) {
            UpstreamException e = assertThrows(UpstreamException.class,
                    () -> up.readFully(SIZE - 10, ByteBuffer.allocate(20)));
            assertTrue(e.getMessage().contains("short read: expected 20 bytes, got 10"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> up.readFully(-1, ByteBuffer.allocate(1)));
            assertThrows(IllegalArgumentException.class, () -> up.openRange(0, -1));
        }
    }

    @Test
    void interruptEndsAWaitInsteadOfSpinning() throws IOException {
        try (SimulatedUpstream up = new SimulatedUpstream(DATA, LatencyModel.GCS)) {
            Thread.currentThread().interrupt();
            try {
                assertThrows(InterruptedIOException.class, () -> up.readFully(0, ByteBuffer.allocate(10)));
                assertTrue(Thread.currentThread().isInterrupted(), "interrupt status kept");
            } finally {
                Thread.interrupted();
            }
        }
    }
}
