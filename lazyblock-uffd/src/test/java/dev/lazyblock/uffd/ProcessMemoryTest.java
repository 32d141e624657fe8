package dev.lazyblock.uffd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.cache.DiffMetadata;
import dev.lazyblock.cache.SparseCache;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** process_vm_readv against a real child process whose memory holds a known pattern. */
class ProcessMemoryTest {
    static final int B = 4096;

    @TempDir
    static Path build;
    static Path child;

    @BeforeAll
    static void compileChild() throws Exception {
        child = build.resolve("pattern_child");
        Process cc = new ProcessBuilder("gcc", "-O2", "-Wall", "-o", child.toString(),
                Path.of("src/test/c/pattern_child.c").toAbsolutePath().toString())
                .redirectErrorStream(true).start();
        String out = new String(cc.getInputStream().readAllBytes());
        assertTrue(cc.waitFor(60, TimeUnit.SECONDS), "gcc finished");
        assertEquals(0, cc.exitValue(), "gcc (needed to build the test child) failed: " + out);
    }

    static byte pattern(long seed, long i) {
        long x = i * 0x9E3779B97F4A7C15L + seed;
        x ^= x >>> 29;
        return (byte) x;
    }

    /** A running child and the address of its patterned memory. */
    record Child(Process process, long address) implements AutoCloseable {
        static Child start(long size, long seed) throws IOException {
            Process p = new ProcessBuilder(child.toString(), Long.toString(size), Long.toString(seed)).start();
            BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream()));
            String line = r.readLine();
            if (line == null || !line.startsWith("addr ")) {
                p.destroyForcibly();
                throw new IOException("child did not report its address: " + line);
            }
            return new Child(p, Long.parseUnsignedLong(line.substring(5)));
        }

        int pid() {
            return (int) process.pid();
        }

        @Override
        public void close() throws Exception {
            process.getOutputStream().close(); // the child exits when its stdin closes
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly();
            }
        }
    }

    @Test
    void aChildsMemoryAcrossMoreRangesThanOneCallTakesLandsInTheCache(@TempDir Path dir) throws Exception {
        long seed = 7;
        int pages = 3000; // three calls' worth of iovecs at least
        long size = (long) pages * B;
        try (Child c = Child.start(size, seed); SparseCache cache = SparseCache.create(dir.resolve("mem"), size)) {
            List<ProcessMemory.Range> ranges = new ArrayList<>();
            List<Integer> order = new ArrayList<>();
            for (int p = 0; p < pages; p++) {
                order.add(p);
            }
            Collections.shuffle(order, new Random(seed)); // scattered: no two neighbours in one iovec
            for (int p : order) {
                ranges.add(new ProcessMemory.Range(c.address() + (long) p * B, B, (long) p * B));
            }
            ProcessMemory.Stats stats = ProcessMemory.fill(cache, c.pid(), ranges);
            assertEquals(size, stats.bytes());
            assertTrue(stats.calls() >= (pages + ProcessMemory.IOV_MAX - 1) / ProcessMemory.IOV_MAX,
                    "split at the iovec limit: " + stats.calls() + " calls");
            assertTrue(cache.isCached(0, size));
            byte[] got = new byte[(int) size];
            cache.readAt(got, 0, got.length, 0);
            for (int i = 0; i < got.length; i++) {
                if (got[i] != pattern(seed, i)) {
                    throw new AssertionError("byte " + i + " differs from the child's memory");
                }
            }
            // The snapshot exports like any overlay: every block dirty, in order.
            DiffMetadata meta = cache.exportToDiff(dir.resolve("mem.diff"));
            assertEquals(pages, meta.dirty().cardinality());
            assertEquals(size, Files.size(dir.resolve("mem.diff")));
        }
    }

    @Test
    void oneLargeRangeIsCopiedInStagedPieces(@TempDir Path dir) throws Exception {
        long size = 10L << 20; // more than one 4 MiB stage
        try (Child c = Child.start(size, 99); SparseCache cache = SparseCache.create(dir.resolve("mem"), size)) {
            ProcessMemory.fill(cache, c.pid(), List.of(new ProcessMemory.Range(c.address(), size, 0)));
            byte[] got = new byte[B];
            for (long off = 0; off < size; off += 1 << 20) {
                cache.readAt(got, 0, B, off);
                for (int i = 0; i < B; i++) {
                    assertEquals(pattern(99, off + i), got[i], "byte " + (off + i));
                }
            }
        }
    }

    @Test
    void aDeadProcessAndAnUnmappedAddressAreClearErrors(@TempDir Path dir) throws Exception {
        Child c = Child.start(B, 1);
        int pid = c.pid();
        long addr = c.address();
        try (SparseCache cache = SparseCache.create(dir.resolve("mem"), 4 * B)) {
            IOException unmapped = assertThrows(IOException.class, () -> ProcessMemory.fill(cache, pid,
                    List.of(new ProcessMemory.Range(addr + 1024L * B * B, B, 0))));
            assertTrue(unmapped.getMessage().contains("not mapped") || unmapped.getMessage().contains("not readable"),
                    unmapped.getMessage());
            c.close();
            IOException gone = assertThrows(IOException.class, () -> ProcessMemory.fill(cache, pid,
                    List.of(new ProcessMemory.Range(addr, B, 0))));
            assertTrue(gone.getMessage().contains("pid " + pid) && gone.getMessage().contains("no such process"),
                    gone.getMessage());
            assertEquals(0, cache.presence().cardinality(), "nothing marked after a failure");
            assertThrows(IllegalArgumentException.class, () -> ProcessMemory.fill(cache, pid,
                    List.of(new ProcessMemory.Range(addr, 100, 5))));
        }
    }
}
