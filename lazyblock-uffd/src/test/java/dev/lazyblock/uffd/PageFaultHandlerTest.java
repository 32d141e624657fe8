package dev.lazyblock.uffd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.testing.Await;
import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.device.Device;
import dev.lazyblock.device.WorkingSet;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.device.Overlay;
import dev.lazyblock.upstream.DirectoryStore;
import dev.lazyblock.metrics.CountingMetrics;
import dev.lazyblock.upstream.FileUpstream;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The handler against the real kernel: a C program under src/test/c plays Firecracker (creates
 * the userfaultfd, registers anonymous memory, sends fd + regions over the socket exactly as
 * Firecracker does), then faults pages from several threads and checks every byte.
 */
class PageFaultHandlerTest {
    static final int PAGE = 4096;
    static final int SIZE = 16 << 20;

    @TempDir
    static Path work;
    static Path vmm;
    static Path image;
    static byte[] bytes;

    @BeforeAll
    static void build() throws Exception {
        vmm = FakeVmm.build(work);
        bytes = new byte[SIZE];
        new Random(11).nextBytes(bytes);
        image = work.resolve("memory.img");
        Files.write(image, bytes);
    }

    record Run(int exit, String output, PageFaultHandler.Stats stats, WorkingSet workingSet) {}

    private Run run(Device memory, int threads, int touches, long badPage) throws Exception {
        return run(memory, threads, touches, badPage, java.util.Map.of());
    }

    private Run run(Device memory, int threads, int touches, long badPage, java.util.Map<String, String> env)
            throws Exception {
        return run(memory, threads, touches, badPage, env, image);
    }

    /** {@code reference} is the file the fake VMM checks every byte against. */
    private Run run(Device memory, int threads, int touches, long badPage, java.util.Map<String, String> env,
                    Path reference) throws Exception {
        Path socket = work.resolve("uffd-" + System.nanoTime() + ".sock");
        PageFaultHandler handler = new PageFaultHandler(memory, socket);
        CompletableFuture<PageFaultHandler.Stats> served = new CompletableFuture<>();
        Thread serving = Thread.ofPlatform().name("uffd-handler").start(() -> {
            try {
                served.complete(handler.serve(Duration.ofSeconds(30)));
            } catch (Throwable t) {
                served.completeExceptionally(t);
            }
        });
        Process p = null;
        try {
            // The handler creates the socket; wait (bounded) for it before the VMM connects.
            Await.until(() -> Files.exists(socket), Duration.ofSeconds(30), () -> "handler socket appeared");
            ProcessBuilder pb = new ProcessBuilder(vmm.toString(), socket.toString(), reference.toString(),
                    Integer.toString(SIZE), Integer.toString(threads), Integer.toString(touches), "5", Long.toString(badPage))
                    .redirectErrorStream(true);
            pb.environment().putAll(env);
            p = pb.start();
            assertTrue(p.waitFor(1, TimeUnit.MINUTES), "fake VMM finished");
            String out = new String(p.getInputStream().readAllBytes()).trim();
            PageFaultHandler.Stats stats = served.get(30, TimeUnit.SECONDS);
            return new Run(p.exitValue(), out, stats, handler.workingSet(PAGE));
        } finally {
            if (p != null && p.isAlive()) {
                p.destroyForcibly(); // never leave a VMM stuck on a fault behind
            }
            handler.stop();
            serving.join(TimeUnit.SECONDS.toMillis(10));
        }
    }

    private Chunker chunker(Path dir) throws IOException {
        return chunker(dir, ChunkerOptions.DEFAULTS);
    }

    private Chunker chunker(Path dir, ChunkerOptions options) throws IOException {
        return ChunkerKind.REQUEST_FIRST.create(new FileUpstream(image),
                SparseCache.create(dir.resolve("mem-" + System.nanoTime() + ".cache"), SIZE), options);
    }

    @Test
    void aRecordedWorkingSetPrefetchedOnResumeServesMostFaultsFromTheCache(@TempDir Path dir) throws Exception {
        // One page per chunk, so a fault finds its page cached only if it was fetched for it
        // (by prefetch), not because a neighbour's fault brought its chunk.
        ChunkerOptions pageChunks = ChunkerOptions.DEFAULTS.withChunkSize(PAGE);
        CountingMetrics cold = new CountingMetrics();
        WorkingSet recorded;
        try (Chunker memory = chunker(dir, pageChunks.withMetrics(cold))) {
            Run first = run(memory, 4, 300, -1);
            assertEquals(0, first.exit(), first.output());
            recorded = first.workingSet();
        }
        Path file = dir.resolve("working-set.bin");
        recorded.save(file);
        WorkingSet loaded = WorkingSet.load(file);
        assertEquals(recorded, loaded);

        CountingMetrics warm = new CountingMetrics();
        try (Chunker memory = chunker(dir, pageChunks.withMetrics(warm))) {
            long pages = loaded.prefetch(memory, 8).get(1, TimeUnit.MINUTES);
            assertEquals(loaded.offsets().size(), pages);
            CountingMetrics.Snapshot before = warm.snapshot();
            Run second = run(memory, 4, 300, -1);
            assertEquals(0, second.exit(), second.output());
            CountingMetrics.Snapshot after = warm.snapshot();
            long hits = after.hits() - before.hits();
            long misses = after.misses() - before.misses();
            CountingMetrics.Snapshot c = cold.snapshot();
            System.out.printf("faults served from the cache: %d of %d with prefetch (%.0f%%), %d of %d cold (%.0f%%); "
                    + "working set %d pages%n", hits, hits + misses, 100.0 * hits / (hits + misses), c.hits(),
                    c.hits() + c.misses(), 100.0 * c.hits() / (c.hits() + c.misses()), loaded.offsets().size());
            assertTrue(misses * 10 <= hits + misses, "at least 90% of faults found their page cached: " + hits + " hits, "
                    + misses + " misses");
        }
    }

    @Test
    void faultsFromManyThreadsGetTheImagesBytesAndARemovedPageComesBackAsZeros(@TempDir Path dir) throws Exception {
        try (Chunker memory = chunker(dir)) {
            Run r = run(memory, 8, 400, -1);
            assertEquals(0, r.exit(), r.output());
            assertTrue(r.output().contains("mismatches=0") && r.output().contains("remove_zero=1"), r.output());
            PageFaultHandler.Stats s = r.stats();
            assertTrue(s.copies() > 0 && s.faults() >= s.copies(), s.toString());
            assertTrue(s.removes() >= 1 && s.zeroPages() >= 1, "the removed page was served as zeros: " + s);
            assertEquals(0, s.failures(), s.toString());
        }
    }

    @Test
    void aPageThatCannotBeReadSignalsTheFaultingThreadAndOthersAreStillServed(@TempDir Path dir) throws Exception {
        long bad = 1000;
        try (Chunker chunker = chunker(dir)) {
            Device failing = new Device() {
                @Override public long size() { return chunker.size(); }
                @Override public int blockSize() { return chunker.blockSize(); }
                @Override public long readAt(MemorySegment dst, long off) throws IOException {
                    if (off == bad * PAGE) {
                        throw new IOException("injected: the store lost page " + bad);
                    }
                    return chunker.readAt(dst, off);
                }
                @Override public void close() { }
                @Override public String toString() { return "failing-device"; }
            };
            Run r = run(failing, 4, 200, bad);
            assertEquals(0, r.exit(), r.output());
            assertTrue(r.output().contains("sigbus=1") && r.output().contains("mismatches=0"), r.output());
            assertEquals(1, r.stats().failures(), r.stats().toString());
            assertTrue(r.stats().retries() >= PageFaultHandler.READ_ATTEMPTS - 1, r.stats().toString());
        }
    }

    /**
     * Write-protect dirty tracking: read faults install pages write-protected, the first write
     * to a page marks it dirty; at pause the dirty pages are read out of the VMM with
     * process_vm_readv and exported as the memory's next layer, holding only those pages.
     */
    @Test
    void pagesTheGuestWritesExportAsTheMemorysNextLayer(@TempDir Path dir) throws Exception {
        try (DirectoryStore store = new DirectoryStore(dir.resolve("store"))) {
            LayerExporter.Layer base = LayerExporter.publishBase(image, PAGE, store, "mem");
            try (LayeredImage memory = LayeredImage.open(store, base.headerKey(), dir, ChunkerKind.REQUEST_FIRST,
                    ChunkerOptions.DEFAULTS)) {
                Path socket = dir.resolve("wp.sock");
                PageFaultHandler handler = new PageFaultHandler(memory, socket, true);
                CompletableFuture<PageFaultHandler.Stats> served = new CompletableFuture<>();
                Thread serving = Thread.ofPlatform().start(() -> {
                    try {
                        served.complete(handler.serve(Duration.ofSeconds(30)));
                    } catch (Throwable t) {
                        served.completeExceptionally(t);
                    }
                });
                Await.until(() -> Files.exists(socket), Duration.ofSeconds(30), () -> "handler socket appeared");
                ProcessBuilder pb = new ProcessBuilder(vmm.toString(), socket.toString(), image.toString(),
                        Integer.toString(SIZE), "2", "50", "5", "-1").redirectErrorStream(true);
                pb.environment().put("FAKE_VMM_WP", "1");
                Process p = pb.start();
                try {
                    java.io.BufferedReader out = new java.io.BufferedReader(new java.io.InputStreamReader(p.getInputStream()));
                    CompletableFuture<String> paused = CompletableFuture.supplyAsync(() -> {
                        try {
                            for (String line; (line = out.readLine()) != null; ) {
                                if (line.equals("paused")) {
                                    return line;
                                }
                            }
                            return "ended";
                        } catch (IOException e) {
                            return e.toString();
                        }
                    });
                    assertEquals("paused", paused.get(1, TimeUnit.MINUTES));

                    List<ProcessMemory.Range> dirty = handler.dirtyPages();
                    List<Long> pages = dirty.stream().map(r -> r.cacheOffset() / PAGE).toList();
                    List<Long> written = new java.util.ArrayList<>();
                    for (long pg = 10; pg < 40; pg++) {
                        if (pg < 20 || pg >= 30) {
                            written.add(pg);
                        }
                    }
                    assertEquals(written, pages, "exactly the written pages are dirty, read-only ones are not");

                    SparseCache snapshot = SparseCache.create(dir.resolve("dirty.cache"), SIZE);
                    ProcessMemory.fill(snapshot, handler.vmmPid(), dirty);
                    LayerExporter.Layer layer;
                    try (Overlay ov = new Overlay(memory, snapshot)) {
                        layer = LayerExporter.export(ov, memory.header(), store, "mem", dir);
                    }
                    assertEquals(20, layer.storedBlocks());
                    p.getOutputStream().write('\n');
                    p.getOutputStream().flush();
                    assertTrue(p.waitFor(1, TimeUnit.MINUTES), "the VM resumed and finished");
                    String rest = new String(p.getInputStream().readAllBytes());
                    assertEquals(0, p.exitValue(), rest);

                    try (LayeredImage next = LayeredImage.open(store, layer.headerKey(), dir, ChunkerKind.STREAMING,
                            ChunkerOptions.DEFAULTS)) {
                        byte[] got = new byte[PAGE];
                        for (long pg = 0; pg < 64; pg++) {
                            next.readAt(got, 0, PAGE, pg * PAGE);
                            boolean isWritten = written.contains(pg);
                            for (int i = 0; i < PAGE; i++) {
                                byte want = isWritten ? (byte) (pg * 7 + i) : bytes[(int) (pg * PAGE + i)];
                                if (got[i] != want) {
                                    throw new AssertionError("page " + pg + " byte " + i + " of the exported layer");
                                }
                            }
                        }
                    }
                } finally {
                    if (p.isAlive()) {
                        p.destroyForcibly();
                    }
                    handler.stop();
                    serving.join(10_000);
                }
                assertEquals(0, served.get(30, TimeUnit.SECONDS).failures());

            }
        }
    }

    /**
     * A region of 2 MiB huge pages: each fault copies the whole huge page, and a removed huge page
     * comes back as zeros (copied from a zero buffer: UFFDIO_ZEROPAGE is 4 KiB only). Needs free
     * hugetlbfs pages: as root the test reserves them for its run and gives them back.
     */
    @Test
    void hugePageRegionsAreServedWholeHugePageAtATime(@TempDir Path dir) throws Exception {
        Path nr = Path.of("/proc/sys/vm/nr_hugepages");
        int need = SIZE / (2 << 20) + 2;
        String before = Files.exists(nr) ? Files.readString(nr).trim() : null;
        org.junit.jupiter.api.Assumptions.assumeTrue(before != null, "no /proc/sys/vm/nr_hugepages: hugetlbfs unsupported");
        boolean raised = false;
        if (freeHugePages() < need) {
            try {
                Files.writeString(nr, Integer.toString(Integer.parseInt(before) + need));
                raised = true;
            } catch (IOException e) {
                org.junit.jupiter.api.Assumptions.abort("no free 2 MiB huge pages and no right to reserve them: " + e);
            }
        }
        try {
            org.junit.jupiter.api.Assumptions.assumeTrue(freeHugePages() >= need,
                    "the kernel could not reserve " + need + " huge pages (memory fragmented?)");
            try (Chunker memory = chunker(dir)) {
                Run r = run(memory, 4, 200, -1, java.util.Map.of("FAKE_VMM_HUGE", "1"));
                assertEquals(0, r.exit(), r.output());
                assertTrue(r.output().contains("mismatches=0") && r.output().contains("remove_zero=1"), r.output());
                PageFaultHandler.Stats s = r.stats();
                assertTrue(s.copies() <= SIZE / (2 << 20), "at most one copy per huge page: " + s);
                assertTrue(s.zeroPages() >= 1, "the removed huge page came back as zeros: " + s);
            }
        } finally {
            if (raised) {
                Files.writeString(nr, before);
            }
        }
    }

    private static long freeHugePages() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
            if (line.startsWith("HugePages_Free:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        }
        return 0;
    }

    /** Pages a layer header maps to zeros are installed with UFFDIO_ZEROPAGE: nothing is fetched. */
    @Test
    void pagesTheHeaderMapsToZerosAreServedAsZeroPages(@TempDir Path dir) throws Exception {
        int zeroed = 1 << 20; // the first MiB, pages 0..255, where every thread starts
        try (DirectoryStore store = new DirectoryStore(dir.resolve("store"))) {
            LayerExporter.Layer base = LayerExporter.publishBase(image, PAGE, store, "mem");
            LayerExporter.Layer zeroLayer;
            try (LayeredImage parent = LayeredImage.open(store, base.headerKey(), dir, ChunkerKind.STREAMING,
                    ChunkerOptions.DEFAULTS);
                 Overlay ov = new Overlay(parent, SparseCache.create(dir.resolve("zero.ov"), SIZE))) {
                ov.writeZeroes(0, zeroed);
                zeroLayer = LayerExporter.export(ov, parent.header(), store, "mem", dir);
            }
            assertEquals(zeroed / PAGE, zeroLayer.zeroBlocks());
            byte[] expect = bytes.clone();
            java.util.Arrays.fill(expect, 0, zeroed, (byte) 0);
            Path reference = Files.write(dir.resolve("reference.img"), expect);
            try (LayeredImage memory = LayeredImage.open(store, zeroLayer.headerKey(), dir, ChunkerKind.REQUEST_FIRST,
                    ChunkerOptions.DEFAULTS)) {
                assertTrue(memory.isZero(0, zeroed) && !memory.isZero(zeroed - PAGE, 2 * PAGE));
                Run r = run(memory, 4, 200, -1, java.util.Map.of(), reference);
                assertEquals(0, r.exit(), r.output());
                assertTrue(r.stats().zeroPages() >= 4, "the shared first pages were zero pages: " + r.stats());
            }
        }
    }

    @Test
    void noVmmWithinTheTimeoutIsAClearError(@TempDir Path dir) throws Exception {
        try (Chunker memory = chunker(dir)) {
            PageFaultHandler h = new PageFaultHandler(memory, dir.resolve("lonely.sock"));
            IOException e = assertThrows(IOException.class, () -> h.serve(Duration.ofMillis(300)));
            assertTrue(e.getMessage().contains("no VMM connected"), e.getMessage());
            assertTrue(Files.notExists(dir.resolve("lonely.sock")), "socket removed");
        }
    }

    @Test
    void regionListsInBothFirecrackerSpellingsParse() {
        List<GuestRegion> r = GuestRegion.parseAll("[{\"base_host_virt_addr\": 140000000000000, \"size\": 8192, "
                + "\"offset\": 4096, \"page_size_kib\": 4096}, {\"size\":2097152,\"base_host_virt_addr\":2097152,"
                + "\"offset\":0,\"page_size\":2097152}]");
        assertEquals(2, r.size());
        assertEquals(4096, r.get(0).pageSize());
        assertEquals(2097152, r.get(1).pageSize());
        assertThrows(IllegalArgumentException.class, () -> GuestRegion.parseAll("[{\"size\": 4096}]"));
        assertThrows(IllegalArgumentException.class, () -> GuestRegion.parseAll("[{\"base_host_virt_addr\": 1, "
                + "\"size\": 4096, \"offset\": 0, \"page_size\": 4096}]"));
        assertThrows(IllegalArgumentException.class, () -> GuestRegion.parseAll("[ {\"size\": -1} ]"));
    }
}
