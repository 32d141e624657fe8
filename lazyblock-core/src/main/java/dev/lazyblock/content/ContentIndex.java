package dev.lazyblock.content;

import dev.lazyblock.cache.CacheClosedException;
import dev.lazyblock.cache.SparseCache;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;

/**
 * Which open caches of this host hold which content-addressed chunks: a miss on a chunk that
 * another open build (another template, another layer) already fetched copies it from that
 * build's cache instead of fetching it from the store. One per host or daemon, shared by every
 * content-addressed chunker opened with it ({@code ChunkerOptions.withContentIndex}).
 *
 * <p>Bounded by what is open: an entry is added only for a chunk present in an open cache, and
 * its chunker removes its entries when it closes, so the index holds at most one location per
 * present chunk of an open content-addressed build (a few bytes each: 10 GiB of 4 MiB chunks is
 * 2,560 entries). A location is a hint, never trusted blindly: a copy checks that the cache is
 * still open and the range still present, under a lease, and otherwise tries the next location
 * or reports a miss. The bytes were checked against their hash when they were fetched.
 *
 * <p>Thread-safe: each key's locations are an immutable array replaced in a
 * {@link ConcurrentHashMap#compute}, so a reader sees a whole array, old or new.
 */
public final class ContentIndex {
    /** Where a chunk's uncompressed bytes lie: {@code [off, off + len)} of {@code cache}. */
    private record Location(SparseCache cache, long off, int len) {}

    private static final Location[] NONE = new Location[0];

    private final ConcurrentHashMap<ContentKey, Location[]> locations = new ConcurrentHashMap<>();
    private final LongAdder hits = new LongAdder();
    private final LongAdder hitBytes = new LongAdder();
    private final LongAdder misses = new LongAdder();

    /** Notes that {@code cache} holds chunk {@code key}'s bytes, present, at {@code [off, off + len)}. */
    public void add(ContentKey key, SparseCache cache, long off, int len) {
        Location loc = new Location(cache, off, len);
        locations.compute(key, (k, old) -> {
            Location[] base = old == null ? NONE : old;
            for (Location l : base) {
                if (l.equals(loc)) {
                    return base;
                }
            }
            Location[] next = java.util.Arrays.copyOf(base, base.length + 1);
            next[base.length] = loc;
            return next;
        });
    }

    /** Forgets that {@code cache} holds {@code key} at {@code off}: its chunker is closing. */
    public void remove(ContentKey key, SparseCache cache, long off) {
        locations.computeIfPresent(key, (k, old) -> {
            int keep = 0;
            Location[] next = new Location[old.length];
            for (Location l : old) {
                if (!(l.cache() == cache && l.off() == off)) {
                    next[keep++] = l;
                }
            }
            return keep == 0 ? null : keep == old.length ? old : java.util.Arrays.copyOf(next, keep);
        });
    }

    /**
     * Copies chunk {@code key}'s bytes into {@code dst} (its exact uncompressed size) from an
     * open cache that holds them.
     *
     * @return true if {@code dst} now holds them; false if no open cache does
     */
    public boolean copyTo(ContentKey key, MemorySegment dst) {
        Location[] at = locations.get(key);
        if (at != null) {
            for (Location l : at) {
                if (l.len() != dst.byteSize() || !copy(l, dst)) {
                    continue;
                }
                hits.increment();
                hitBytes.add(l.len());
                return true;
            }
        }
        misses.increment();
        return false;
    }

    private static boolean copy(Location l, MemorySegment dst) {
        SparseCache c = l.cache();
        try {
            c.retain();
        } catch (CacheClosedException closed) {
            return false;
        }
        try {
            return c.readAt(dst, l.off()) == l.len();
        } catch (IllegalStateException | java.io.UncheckedIOException gone) {
            // Not cached (NotCachedException), closed (CacheClosedException), or failed: a stale hint.
            return false;
        } finally {
            c.release();
        }
    }

    /** Distinct chunks some open cache holds. */
    public int chunks() {
        return locations.size();
    }

    /** Misses served from another open cache. */
    public long hits() {
        return hits.sum();
    }

    public long hitBytes() {
        return hitBytes.sum();
    }

    /** Misses no open cache could serve. */
    public long misses() {
        return misses.sum();
    }

    @Override
    public String toString() {
        return "ContentIndex[" + chunks() + " chunks, " + hits() + " hits (" + hitBytes() + " bytes), " + misses()
                + " misses]";
    }
}
