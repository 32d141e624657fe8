package dev.lazyblock.upstream;

import dev.lazyblock.testing.UpstreamReads;

import dev.lazyblock.testing.Seeds;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

@Timeout(60)
class FileUpstreamTest {
    private static final int SIZE = 1024 * 1024 + 123; // not a multiple of anything

    @TempDir
    Path dir;

    private Path file(long seed) throws IOException {
        return UpstreamReads.writeRandomFile(dir, "image-" + seed, seed, SIZE);
    }

    @Test
    void randomReadFullyMatchesTheFile() throws Exception {
        for (long seed : Seeds.seeds(5).toArray()) {
            Seeds.replayable(seed, () -> {
                try (FileUpstream up = new FileUpstream(file(seed))) {
                    UpstreamReads.assertReadFullyMatches(up, Files.readAllBytes(up.path()), seed, 200);
                }
            });
        }
    }

    @Test
    void randomStreamsMatchTheFile() throws Exception {
        for (long seed : Seeds.seeds(5).toArray()) {
            Seeds.replayable(seed, () -> {
                try (FileUpstream up = new FileUpstream(file(seed))) {
                    UpstreamReads.assertStreamsMatch(up, Files.readAllBytes(up.path()), seed, 100);
                }
            });
        }
    }

    @Test
    void nameIsThePathAndSizeComesFromTheFile() throws IOException {
        Path f = file(1);
        try (FileUpstream up = new FileUpstream(f)) {
            assertEquals(f.toString(), up.name());
            assertEquals(SIZE, up.size());
        }
    }

    @Test
    void readEndingPastTheEndIsAShortRead() throws IOException {
        try (FileUpstream up = new FileUpstream(file(2))) {
            UpstreamException e = assertThrows(UpstreamException.class,
                    () -> up.readFully(SIZE - 10, ByteBuffer.allocate(20)));
            assertTrue(e.getMessage().contains("short read: expected 20 bytes, got 10"), e.getMessage());
            assertEquals(SIZE - 10, e.offset());
            assertEquals(20, e.length());
            assertEquals(up.name(), e.object());
        }
    }

    @Test
    void readStartingPastTheEndIsAShortReadOfNothing() throws IOException {
        try (FileUpstream up = new FileUpstream(file(3))) {
            UpstreamException e = assertThrows(UpstreamException.class,
                    () -> up.readFully(SIZE + 5, ByteBuffer.allocate(10)));
            assertTrue(e.getMessage().contains("short read: expected 10 bytes, got 0"), e.getMessage());
        }
    }

    @Test
    void streamEndingPastTheEndFailsWhenTheFileEnds() throws IOException {
        try (FileUpstream up = new FileUpstream(file(4));
             Upstream.RangeStream s = up.openRange(SIZE - 100, 200)) {
            ByteBuffer dst = ByteBuffer.allocate(1000);
            assertEquals(100, s.read(dst));
            UpstreamException e = assertThrows(UpstreamException.class, () -> s.read(dst));
            assertTrue(e.getMessage().contains("short read: expected 200 bytes, got 100"), e.getMessage());
        }
    }

    @Test
    void negativeOffsetOrLengthIsRefused() throws IOException {
        try (FileUpstream up = new FileUpstream(file(5))) {
            IllegalArgumentException off = assertThrows(IllegalArgumentException.class,
                    () -> up.readFully(-1, ByteBuffer.allocate(1)));
            assertTrue(off.getMessage().contains("offset must be >= 0, got -1"), off.getMessage());
            IllegalArgumentException len = assertThrows(IllegalArgumentException.class,
                    () -> up.openRange(0, -5));
            assertTrue(len.getMessage().contains("length must be >= 0, got -5"), len.getMessage());
            assertThrows(IllegalArgumentException.class, () -> up.openRange(Long.MAX_VALUE, 2));
        }
    }

    @Test
    void emptyRangesReadNothing() throws IOException {
        try (FileUpstream up = new FileUpstream(file(6))) {
            up.readFully(SIZE, ByteBuffer.allocate(0));
            try (Upstream.RangeStream s = up.openRange(SIZE, 0)) {
                assertEquals(-1, s.read(ByteBuffer.allocate(10)));
            }
        }
    }

    @Test
    void streamYieldsBoundedPiecesForAHugeBuffer() throws IOException {
        try (FileUpstream up = new FileUpstream(file(7));
             Upstream.RangeStream s = up.openRange(0, SIZE)) {
            ByteBuffer dst = ByteBuffer.allocate(SIZE);
            assertEquals(FileUpstream.STREAM_PIECE, s.read(dst));
        }
    }

    @Test
    void missingFileFailsWhenOpened() {
        assertThrows(NoSuchFileException.class, () -> new FileUpstream(dir.resolve("absent")));
    }

    @Test
    void closedUpstreamRefusesReads() throws IOException {
        FileUpstream up = new FileUpstream(file(8));
        up.close();
        IOException e = assertThrows(IOException.class, () -> up.readFully(0, ByteBuffer.allocate(4)));
        assertTrue(e.getMessage().contains("closed"), e.getMessage());
    }

    @Test
    void interruptedReadFailsButTheUpstreamKeepsWorking() throws IOException {
        Path f = file(9);
        byte[] data = Files.readAllBytes(f);
        try (FileUpstream up = new FileUpstream(f)) {
            Thread.currentThread().interrupt();
            try {
                // An interrupted FileChannel read closes the channel: for everyone, unless replaced.
                assertThrows(InterruptedIOException.class, () -> up.readFully(0, ByteBuffer.allocate(4096)));
                assertTrue(Thread.currentThread().isInterrupted(), "interrupt status kept");
            } finally {
                Thread.interrupted();
            }
            ByteBuffer dst = ByteBuffer.allocate(4096);
            up.readFully(4096, dst);
            assertArrayEquals(Arrays.copyOfRange(data, 4096, 8192), dst.array());
        }
    }

    @Test
    void concurrentReadersShareOneUpstream() throws Exception {
        long seed = 10;
        Path f = file(seed);
        byte[] data = Files.readAllBytes(f);
        ExecutorService pool = Executors.newFixedThreadPool(8);
        try (FileUpstream up = new FileUpstream(f)) {
            List<Future<?>> results = new ArrayList<>();
            for (int t = 0; t < 8; t++) {
                long threadSeed = seed * 31 + t;
                results.add(pool.submit(() -> {
                    UpstreamReads.assertReadFullyMatches(up, data, threadSeed, 100);
                    UpstreamReads.assertStreamsMatch(up, data, threadSeed, 20);
                    return null;
                }));
            }
            for (Future<?> r : results) {
                r.get(30, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void readAfterAnotherThreadsInterruptRetriesOnAFreshChannel() throws Exception {
        Path f = file(11);
        byte[] data = Files.readAllBytes(f);
        try (FileUpstream up = new FileUpstream(f)) {
            Random rnd = new Random(11);
            // Interrupted readers close the shared channel again and again while others read.
            Thread spoiler = Thread.ofPlatform().start(() -> {
                for (int i = 0; i < 200; i++) {
                    Thread.currentThread().interrupt();
                    try {
                        up.readFully(0, ByteBuffer.allocate(16));
                    } catch (IOException expected) {
                        // the point is the closed channel it leaves behind
                    }
                    Thread.interrupted();
                }
            });
            while (spoiler.isAlive()) {
                int off = rnd.nextInt(SIZE - 4096);
                ByteBuffer dst = ByteBuffer.allocate(4096);
                up.readFully(off, dst);
                assertArrayEquals(Arrays.copyOfRange(data, off, off + 4096), dst.array(), "offset " + off);
            }
            spoiler.join(10_000);
        }
    }
}
