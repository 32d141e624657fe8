package dev.lazyblock.cli;

import dev.lazyblock.cache.PersistentCache;
import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.chunker.ChunkTier;
import dev.lazyblock.content.ContentCache;
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

    /** The content cache opened by {@link #openContent}, or null; set before the tier. */
    private volatile ContentCache content;

    /** The images read through {@code t}; kept caches and chunk files here share its disk budget, if it has one. */
    void useTier(ChunkTier t) throws IOException {
        this.tier = t;
        if (t.budget() != null && persistent) {
            t.budget().governCaches(dir);
        }
        if (t.budget() != null && content != null) {
            t.budget().governContent(content);
        }
    }

    /**
     * The content-addressed chunks' files in {@code dir/content}, at most {@code maxBytes}: what
     * serve maps and warm fills. Null when {@code maxBytes} is 0, or when another process has the
     * directory (said on stderr: chunks are then copied into each build's cache).
     *
     * @throws IOException if the directory cannot be made or read
     */
    ContentCache openContent(long maxBytes, String command) throws IOException {
        if (maxBytes == 0) {
            return null;
        }
        try {
            content = new ContentCache(dir.resolve("content"), maxBytes);
        } catch (ContentCache.InUseException e) {
            System.err.println("lazyblock " + command + ": " + e.getMessage() + "; content-addressed chunks are "
                    + "copied into each build's cache instead");
        }
        return content;
    }

    /** The tier's name for the chunks of a plain image: its name and version, hashed. */
    static String tierKey(String name, String version) {
        return "image-" + PersistentCache.key(name + "\n" + version);
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
