package dev.lazyblock.chunker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.upstream.DirectoryStore;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A tier and the local caches of several images under one small disk budget: while an open image
 * is read without pause, other images are opened, read whole and closed one after another; after
 * every step the tier's files plus the open caches stay under the budget, the open image's tier
 * files are all still there, and least recently used builds are the ones that went.
 */
class DiskBudgetTest {
    static final int B = 4096;
    static final int CHUNK = 64 << 10;
    static final int IMAGE = 8 * CHUNK;
    /** Small chunks so a build is eight tier files. */
    static final ChunkerOptions OPTIONS = ChunkerOptions.DEFAULTS.withChunkSize(CHUNK);

    @TempDir
    Path dir;

    record Published(String headerKey, String build, byte[] bytes) {}

    private List<Published> publish(DirectoryStore store, int n) throws Exception {
        List<Published> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            byte[] bytes = new byte[IMAGE];
            new Random(i).nextBytes(bytes);
            Path raw = Files.write(dir.resolve("img" + i + ".raw"), bytes);
            LayerExporter.Layer l = LayerExporter.publishBase(raw, B, store, "img" + i);
            out.add(new Published(l.headerKey(), l.header().buildId().toString(), bytes));
        }
        return out;
    }

    private LayeredImage open(DirectoryStore store, Published p, ChunkTier tier) throws Exception {
        Path caches = Files.createDirectories(dir.resolve("caches"));
        return LayeredImage.open(store, p.headerKey(), ChunkerKind.FULL_FETCH, OPTIONS,
                (id, size, bs) -> SparseCache.create(caches.resolve(UUID.randomUUID() + ".cache"), size, bs, bs), tier);
    }

    private static void readWhole(LayeredImage img, byte[] expect) throws Exception {
        byte[] got = new byte[expect.length];
        img.readAt(MemorySegment.ofArray(got), 0);
        assertArrayEquals(expect, got);
    }

    private static long onDisk(Path tierDir) throws Exception {
        try (Stream<Path> s = Files.walk(tierDir)) {
            return s.filter(Files::isRegularFile).mapToLong(p -> p.toFile().length()).sum();
        }
    }

    private static long files(Path d) throws Exception {
        if (!Files.isDirectory(d)) {
            return 0;
        }
        try (Stream<Path> s = Files.list(d)) {
            return s.count();
        }
    }

    @Test
    void aSmallBudgetHoldsWhileReadsContinueAndOpenBuildsStay() throws Exception {
        DirectoryStore store = new DirectoryStore(dir.resolve("store"));
        List<Published> images = publish(store, 7);
        Path tierDir = dir.resolve("tier");
        // Room for two open images (tier files + local caches: 4 x 512 KiB) and one more build's files.
        long max = 5L * IMAGE + 64 * 8;
        try (ChunkTier tier = new ChunkTier(tierDir)) {
            DiskBudget budget = new DiskBudget(max, 0, dir);
            tier.budget(budget);
            Published pinned = images.getFirst();
            try (LayeredImage p = open(store, pinned, tier)) {
                readWhole(p, pinned.bytes());
                tier.awaitWrites(10_000);
                assertEquals(8, files(tier.buildDir(pinned.build())));
                // A reader of the open image that never pauses, from its cache and (after eviction
                // elsewhere) never from a removed file of its own.
                AtomicBoolean stop = new AtomicBoolean();
                AtomicReference<Throwable> failure = new AtomicReference<>();
                AtomicLong reads = new AtomicLong();
                Thread reader = Thread.ofPlatform().start(() -> {
                    Random r = new Random(1);
                    byte[] got = new byte[B];
                    try {
                        while (!stop.get()) {
                            int off = r.nextInt(IMAGE / B) * B;
                            p.readAt(MemorySegment.ofArray(got), off);
                            if (!java.util.Arrays.equals(got, 0, B, pinned.bytes(), off, off + B)) {
                                throw new AssertionError("wrong bytes at " + off);
                            }
                            reads.incrementAndGet();
                        }
                    } catch (Throwable e) {
                        failure.set(e);
                    }
                });
                for (Published other : images.subList(1, images.size())) {
                    try (LayeredImage o = open(store, other, tier)) {
                        readWhole(o, other.bytes());
                        tier.awaitWrites(10_000);
                        assertTrue(budget.usedBytes() <= max, "used " + budget.usedBytes() + " of " + max);
                        assertEquals(8, files(tier.buildDir(other.build())), "the open build's files stay");
                    }
                    assertTrue(onDisk(tierDir) + IMAGE <= max, "tier holds " + onDisk(tierDir) + " on disk");
                    assertEquals(8, files(tier.buildDir(pinned.build())), "the pinned build lost files after "
                            + other.build());
                }
                stop.set(true);
                reader.join();
                if (failure.get() != null) {
                    throw new AssertionError(failure.get().getMessage(), failure.get());
                }
                assertTrue(reads.get() > 0);
            }
            assertTrue(budget.evictedBuilds() >= 4, budget.toString());
            // Least recently used first: the last image read is still there, the first unpinned one is gone.
            assertEquals(8, files(tier.buildDir(images.getLast().build())));
            assertEquals(0, files(tier.buildDir(images.get(1).build())));
            // Closed now, the pinned build can go too.
            try (LayeredImage again = open(store, images.get(1), tier)) {
                readWhole(again, images.get(1).bytes());
                tier.awaitWrites(10_000);
            }
            budget.enforce();
            assertTrue(onDisk(tierDir) <= max);
        }
    }

    /** Under a free-space floor the disk cannot meet, every build not open is evicted after each write; open ones stay. */
    @Test
    void aFreeSpaceFloorEvictsEverythingNotOpen() throws Exception {
        DirectoryStore store = new DirectoryStore(dir.resolve("store"));
        List<Published> images = publish(store, 3);
        Path tierDir = dir.resolve("tier");
        try (ChunkTier tier = new ChunkTier(tierDir)) {
            long impossible = Files.getFileStore(dir).getTotalSpace() + 1;
            DiskBudget budget = new DiskBudget(Long.MAX_VALUE, impossible, dir);
            tier.budget(budget);
            try (LayeredImage a = open(store, images.get(0), tier)) {
                readWhole(a, images.get(0).bytes());
                tier.awaitWrites(10_000);
                try (LayeredImage b = open(store, images.get(1), tier)) {
                    readWhole(b, images.get(1).bytes());
                    tier.awaitWrites(10_000);
                    assertEquals(8, files(tier.buildDir(images.get(0).build())));
                    assertEquals(8, files(tier.buildDir(images.get(1).build())));
                }
                try (LayeredImage c = open(store, images.get(2), tier)) {
                    readWhole(c, images.get(2).bytes());
                    tier.awaitWrites(10_000);
                }
                assertFalse(Files.exists(tier.buildDir(images.get(1).build())), "b was closed: evicted");
                assertEquals(8, files(tier.buildDir(images.get(0).build())), "a is open: kept");
            }
        }
    }

    /** A budget adopts a tier's existing files at start (a restarted host), oldest first for eviction. */
    @Test
    void existingTierFilesAreCountedAtStart() throws Exception {
        DirectoryStore store = new DirectoryStore(dir.resolve("store"));
        List<Published> images = publish(store, 2);
        Path tierDir = dir.resolve("tier");
        try (ChunkTier tier = new ChunkTier(tierDir)) {
            for (Published p : images) {
                try (LayeredImage img = open(store, p, tier)) {
                    readWhole(img, p.bytes());
                }
            }
            tier.awaitWrites(10_000);
        }
        long before = onDisk(tierDir);
        try (ChunkTier tier = new ChunkTier(tierDir)) {
            DiskBudget budget = new DiskBudget(before - 1, 0, dir);
            tier.budget(budget);
            assertEquals(1, budget.evictedBuilds(), budget.toString());
            assertTrue(onDisk(tierDir) < before);
        }
    }

    /**
     * Two hosts, two budgets, one tier: host B, over its budget, does not evict a build host A
     * has open (A's lease file), evicts it once A closes it, and ignores (and removes) a lease
     * left by a host that stopped without unpinning.
     */
    @Test
    void anotherHostsOpenBuildIsNotEvictedAndStaleLeasesAreIgnored() throws Exception {
        DirectoryStore store = new DirectoryStore(dir.resolve("store"));
        List<Published> images = publish(store, 3);
        Path tierDir = dir.resolve("tier");
        Published x = images.get(0);
        Published crashed = images.get(1);
        try (ChunkTier tierA = new ChunkTier(tierDir); ChunkTier tierB = new ChunkTier(tierDir)) {
            DiskBudget budgetA = new DiskBudget(Long.MAX_VALUE, 0, dir);
            tierA.budget(budgetA);
            // A build whose tier files a crashed host still "holds": its lease is old.
            try (LayeredImage c = open(store, crashed, tierA)) {
                readWhole(c, crashed.bytes());
            }
            tierA.awaitWrites(10_000);
            Path stale = tierDir.resolve(".leases").resolve(crashed.build()).resolve("crashed-host");
            Files.createDirectories(stale.getParent());
            Files.createFile(stale);
            Files.setLastModifiedTime(stale, java.nio.file.attribute.FileTime.fromMillis(
                    System.currentTimeMillis() - java.time.Duration.ofMinutes(2).toMillis()));

            LayeredImage a = open(store, x, tierA);
            try {
                readWhole(a, x.bytes());
                tierA.awaitWrites(10_000);
                // Host B starts now: it counts x's and the crashed build's files, and may hold one build.
                DiskBudget budgetB = new DiskBudget(IMAGE + 64 * 8, 0, dir, java.time.Duration.ofMinutes(1));
                tierB.budget(budgetB);
                assertEquals(8, files(tierB.buildDir(x.build())), "x is open on host A");
                assertFalse(Files.exists(tierB.buildDir(crashed.build())), "a stale lease does not keep a build");
                assertFalse(Files.exists(stale), "the stale lease is removed");
                try (LayeredImage b = open(store, images.get(2), tierB)) {
                    readWhole(b, images.get(2).bytes());
                    tierB.awaitWrites(10_000);
                }
                assertEquals(8, files(tierB.buildDir(x.build())), "still open on host A: kept");
                a.close();
                budgetB.enforce();
                assertFalse(Files.exists(tierB.buildDir(x.build())), "closed on A: B may evict it");
            } finally {
                a.close();
                budgetA.close();
            }
        }
    }

    private LayeredImage openKept(DirectoryStore store, Published p, ChunkTier tier, Path kept,
                                  List<dev.lazyblock.cache.PersistentCache.Opened> opened) throws Exception {
        return LayeredImage.open(store, p.headerKey(), ChunkerKind.FULL_FETCH, OPTIONS, (id, size, bs) -> {
            var o = dev.lazyblock.cache.PersistentCache.open(kept, id, size, bs, bs);
            opened.add(o);
            return o.cache();
        }, tier);
    }

    private static List<Path> keptFiles(Path kept) throws Exception {
        try (Stream<Path> s = Files.list(kept)) {
            return s.filter(f -> f.getFileName().toString().endsWith(".cache")).sorted().toList();
        }
    }

    /**
     * Kept local caches share the budget with the tier: under a size budget the oldest of tier
     * builds and closed kept caches go first and the total stays under it; under a floor the disk
     * cannot meet, every closed kept cache and unpinned build goes, and the open image's kept
     * cache (its lock held) stays and reads right.
     */
    @Test
    void keptLocalCachesShareTheBudgetAndAnOpenOneStays() throws Exception {
        DirectoryStore store = new DirectoryStore(dir.resolve("store"));
        List<Published> images = publish(store, 4);
        Path kept = Files.createDirectories(dir.resolve("kept"));
        List<dev.lazyblock.cache.PersistentCache.Opened> opened = new ArrayList<>();
        long max = 3L * IMAGE + 64 * 8;
        try (ChunkTier tier = new ChunkTier(dir.resolve("tier"))) {
            DiskBudget budget = new DiskBudget(max, 0, dir);
            tier.budget(budget);
            budget.governCaches(kept);
            for (Published p : images.subList(0, 3)) {
                try (LayeredImage img = openKept(store, p, tier, kept, opened)) {
                    readWhole(img, p.bytes());
                    tier.awaitWrites(10_000);
                    assertTrue(budget.usedBytes() <= max, "used " + budget.usedBytes() + " of " + max);
                }
                for (var o : opened) {
                    assertTrue(o.awaitReleased(java.time.Duration.ofSeconds(10)));
                }
                budget.enforce();
                assertTrue(budget.usedBytes() <= max, "used " + budget.usedBytes() + " of " + max);
            }
            assertTrue(budget.evictedCaches() >= 1 && budget.evictedBuilds() >= 1, budget.toString());
            assertEquals(8, files(tier.buildDir(images.get(2).build())), "the most recent build stays");

            // Now a floor nothing can meet: everything closed goes, the open image's cache stays.
            DiskBudget floor = new DiskBudget(Long.MAX_VALUE, Files.getFileStore(dir).getTotalSpace() + 1, dir);
            floor.governCaches(kept);
            try (LayeredImage img = openKept(store, images.get(3), tier, kept, opened)) {
                readWhole(img, images.get(3).bytes());
                List<Path> before = keptFiles(kept);
                floor.enforce();
                List<Path> after = keptFiles(kept);
                assertEquals(1, after.size(), "only the open cache is left: " + after + " (was " + before + ")");
                assertTrue(floor.evictedCaches() >= 1, floor.toString());
                readWhole(img, images.get(3).bytes());
            }
        }
    }

    /**
     * Stress: two hosts (tier instances with their own budgets on one directory), 6 reader
     * threads each, each opening random images, reading random blocks (checked against the
     * source) and closing them, while the budgets evict. Every read is right; once both hosts
     * rescan (each sees the other's files), the disk is under the budget.
     */
    @Test
    void twoHostsReadingManyImagesUnderOneBudgetStayRightAndUnderIt() throws Exception {
        DirectoryStore store = new DirectoryStore(dir.resolve("store"));
        List<Published> images = publish(store, 6);
        Path tierDir = dir.resolve("tier");
        long max = 3L * IMAGE;
        try (ChunkTier tierA = new ChunkTier(tierDir); ChunkTier tierB = new ChunkTier(tierDir)) {
            DiskBudget a = new DiskBudget(max, 0, dir);
            DiskBudget b = new DiskBudget(max, 0, dir);
            tierA.budget(a);
            tierB.budget(b);
            int threads = 12;
            AtomicReference<Throwable> failure = new AtomicReference<>();
            List<Thread> ts = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int id = t;
                ChunkTier tier = t % 2 == 0 ? tierA : tierB;
                ts.add(Thread.ofPlatform().start(() -> {
                    Random r = new Random(id);
                    byte[] got = new byte[B];
                    try {
                        for (int n = 0; n < 12; n++) {
                            Published p = images.get(r.nextInt(images.size()));
                            try (LayeredImage img = open(store, p, tier)) {
                                for (int k = 0; k < 16; k++) {
                                    int off = r.nextInt(IMAGE / B) * B;
                                    img.readAt(MemorySegment.ofArray(got), off);
                                    if (!java.util.Arrays.equals(got, 0, B, p.bytes(), off, off + B)) {
                                        throw new AssertionError("wrong bytes at " + off + " of " + p.build());
                                    }
                                }
                            }
                        }
                    } catch (Throwable e) {
                        failure.compareAndSet(null, e);
                    }
                }));
            }
            for (Thread t : ts) {
                t.join();
            }
            if (failure.get() != null) {
                throw new AssertionError(failure.get().getMessage(), failure.get());
            }
            tierA.awaitWrites(30_000);
            tierB.awaitWrites(30_000);
            a.rescan();
            b.rescan();
            assertTrue(onDisk(tierDir) <= max, "the tier holds " + onDisk(tierDir) + " bytes, budget " + max);
            assertTrue(a.evictedBuilds() + b.evictedBuilds() > 0, a + " " + b);
            a.close();
            b.close();
        }
    }
}
