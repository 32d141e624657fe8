package dev.lazyblock.cli;

import dev.lazyblock.upstream.ConfigValues;
import dev.lazyblock.cache.PersistentCache;
import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.chunker.ChunkTier;
import dev.lazyblock.chunker.DiskBudget;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * Where serve and warm keep their chunkers' caches: scratch files, unlinked at creation, in a
 * directory of their own; or, with {@code --cache-dir}, {@link PersistentCache}s that outlive
 * the run, so bytes fetched once (by {@code warm}, or an earlier {@code serve}) are hits next time.
 */
final class Caches implements LayeredImage.CacheFactory {
    private final Path dir;
    private final boolean persistent;
    /** Every persistent cache opened; written by the opening thread, read after at stop. */
    private final List<PersistentCache.Opened> opened = new CopyOnWriteArrayList<>();

    Caches(Path dir, boolean persistent) {
        this.dir = dir;
        this.persistent = persistent;
    }

    /** The shared chunk tier the images read through, or null; set once before any image opens. */
    private volatile ChunkTier tier;

    Path dir() {
        return dir;
    }

    ChunkTier tier() {
        return tier;
    }

    void tier(ChunkTier t) {
        this.tier = t;
    }

    /**
     * Opens the shared tier at {@code dir}, under a disk budget when {@code budget} or {@code floor}
     * is given (sizes like 20G, 512M, 4096).
     */
    static ChunkTier openTier(Path dir, String budget, String floor) throws IOException {
        long max = budget == null ? Long.MAX_VALUE : size("--tier-budget", budget);
        long min = floor == null ? 0 : size("--tier-floor", floor);
        ChunkTier t = new ChunkTier(dir);
        if (budget != null || floor != null) {
            DiskBudget b = new DiskBudget(max, min, t.dir());
            t.budget(b);
            b.rescanEvery(java.time.Duration.ofMinutes(1)); // other hosts write to the tier too
        }
        return t;
    }

    /**
     * Reads and writes through the shared tier in {@code tierDir}, under a budget if one is given
     * (kept caches in this directory share it).
     *
     * @return the tier, to close after the images (it waits for its queued writes)
     * @throws IllegalArgumentException naming the option whose value is not a size
     */
    ChunkTier useTier(Path tierDir, String budget, String floor) throws IOException {
        ChunkTier t = openTier(tierDir, budget, floor);
        tier(t);
        if (t.budget() != null && persistent) {
            t.budget().governCaches(dir);
        }
        return t;
    }

    /** The tier's name for the chunks of a plain image: its name and version, hashed. */
    static String tierKey(String name, String version) {
        return "image-" + PersistentCache.key(name + "\n" + version);
    }

    private static long size(String option, String value) {
        try {
            return ConfigValues.size(value);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(option + ": " + e.getMessage(), e);
        }
    }

    boolean persistent() {
        return persistent;
    }

    /** A build's cache: builds never change, their identity says it all. */
    @Override
    public SparseCache create(String identity, long size, int blockSize) throws IOException {
        return create(identity, null, size, blockSize);
    }

    /** The cache of an object whose bytes the store names by {@code version} (see Upstream#version). */
    SparseCache create(String identity, String version, long size, int blockSize) throws IOException {
        if (!persistent) {
            return SparseCache.create(dir.resolve("image-" + UUID.randomUUID() + ".cache"), size, blockSize, blockSize);
        }
        PersistentCache.Opened o = PersistentCache.open(dir, identity, version, size, blockSize, blockSize);
        opened.add(o);
        if (o.discarded() != null) {
            System.err.println("lazyblock: the saved cache of " + identity + " was discarded: " + o.discarded());
        }
        return o.cache();
    }

    /** Bytes the persistent caches held from earlier runs when they were opened. */
    long restoredBytes() {
        return opened.stream().mapToLong(PersistentCache.Opened::restoredBytes).sum();
    }

    /**
     * Waits until every closed persistent cache has saved its map and let go of its lock (fetches
     * still writing when it was closed hold it until they end).
     *
     * @return false if some did not within {@code limit}
     */
    boolean awaitSaved(Duration limit) throws InterruptedException {
        long deadline = System.nanoTime() + limit.toNanos();
        for (PersistentCache.Opened o : opened) {
            if (!o.awaitReleased(Duration.ofNanos(Math.max(0, deadline - System.nanoTime())))) {
                return false;
            }
        }
        return true;
    }
}
