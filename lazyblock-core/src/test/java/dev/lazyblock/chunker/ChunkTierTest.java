package dev.lazyblock.chunker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ChunkTierTest {
    @TempDir
    Path dir;

    /**
     * Two tier instances (two hosts) write the same chunk over and over from many threads while
     * readers read it: a reader finds no file or a whole, good one, never a partial one; at the
     * end there is one file and no temporary file.
     */
    @Test
    void concurrentWritersNeverExposeAPartialFile() throws Exception {
        byte[] chunk = new byte[1 << 20];
        new Random(5).nextBytes(chunk);
        try (ChunkTier a = new ChunkTier(dir); ChunkTier b = new ChunkTier(dir)) {
            int writers = 8;
            int readers = 8;
            CyclicBarrier start = new CyclicBarrier(writers + readers);
            AtomicBoolean stop = new AtomicBoolean();
            AtomicLong goodReads = new AtomicLong();
            List<Thread> ts = new ArrayList<>();
            Throwable[] errors = new Throwable[writers + readers];
            for (int i = 0; i < writers; i++) {
                int id = i;
                ChunkTier t = i % 2 == 0 ? a : b;
                ts.add(Thread.ofPlatform().start(() -> {
                    try {
                        start.await();
                        for (int n = 0; n < 20; n++) {
                            t.write("build", 7, chunk);
                        }
                    } catch (Throwable e) {
                        errors[id] = e;
                    }
                }));
            }
            for (int i = 0; i < readers; i++) {
                int id = writers + i;
                ChunkTier t = i % 2 == 0 ? a : b;
                ts.add(Thread.ofPlatform().start(() -> {
                    byte[] got = new byte[chunk.length];
                    try {
                        start.await();
                        while (!stop.get()) {
                            if (t.read("build", 7, MemorySegment.ofArray(got))) {
                                assertArrayEquals(chunk, got);
                                goodReads.incrementAndGet();
                            }
                        }
                        // Every writer is done: the file is there and whole, however late this thread ran.
                        assertTrue(t.read("build", 7, MemorySegment.ofArray(got)), "the chunk after every write");
                        assertArrayEquals(chunk, got);
                        goodReads.incrementAndGet();
                    } catch (Throwable e) {
                        errors[id] = e;
                    }
                }));
            }
            for (int i = 0; i < writers; i++) {
                ts.get(i).join();
            }
            stop.set(true);
            for (Thread t : ts) {
                t.join();
            }
            for (Throwable e : errors) {
                if (e != null) {
                    throw new AssertionError(e.getMessage(), e);
                }
            }
            assertEquals(0, a.bad() + b.bad(), "a reader met a partial or corrupt file");
            assertTrue(goodReads.get() > 0);
            try (Stream<Path> files = Files.list(dir.resolve("build"))) {
                assertEquals(List.of(dir.resolve("build").resolve("7.chunk")), files.toList());
            }
        }
    }

    /** A file of the right size whose bytes changed, or one cut short, is refused and counted. */
    @Test
    void corruptAndTruncatedFilesAreRefused() throws Exception {
        byte[] chunk = new byte[64 << 10];
        new Random(6).nextBytes(chunk);
        try (ChunkTier t = new ChunkTier(dir)) {
            MemorySegment dst = MemorySegment.ofArray(new byte[chunk.length]);
            assertFalse(t.read("b", 0, dst));
            assertEquals(1, t.misses());
            t.write("b", 0, chunk);
            assertTrue(t.read("b", 0, dst));
            byte[] bytes = Files.readAllBytes(t.file("b", 0));
            bytes[100] ^= 1;
            Files.write(t.file("b", 0), bytes);
            assertFalse(t.read("b", 0, dst));
            Files.write(t.file("b", 0), java.util.Arrays.copyOf(bytes, bytes.length - 1));
            assertFalse(t.read("b", 0, dst));
            assertEquals(2, t.bad());
            t.writeBehind("b", 0, MemorySegment.ofArray(chunk));
            t.awaitWrites(10_000);
            assertTrue(t.read("b", 0, dst));
            assertArrayEquals(chunk, dst.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
        }
    }
}
