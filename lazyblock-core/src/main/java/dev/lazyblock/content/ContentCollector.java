package dev.lazyblock.content;

import dev.lazyblock.device.LayerHeader;
import dev.lazyblock.device.LayerHeader.Build;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.upstream.ObjectStore;
import dev.lazyblock.upstream.ObjectStore.Listed;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Deletes the chunk objects under a store prefix that no header there references, and that are
 * older than a grace period: chunks are shared between layers, so a layer's chunks cannot go
 * with it, only once nothing references them.
 *
 * <p>Safe against exports running at the same time ({@link ContentLocks}): the collection takes
 * its lock first and gives up, deleting nothing, if an export holds one. Every header under the
 * prefix must parse, else nothing is deleted (an unreadable header's references are unknown).
 * The grace period keeps chunks written recently by writers that take no lock. Stops before the
 * lock's TTL is half gone, so an export never waits on a lock that has expired while in use.
 */
public final class ContentCollector {
    private static final Logger log = LoggerFactory.getLogger(ContentCollector.class);
    private static final Pattern CHUNK = Pattern.compile(ContentKey.CHUNKS + "/[0-9a-f]{2}/[0-9a-f]{64}");

    private ContentCollector() {}

    /** What a collection found and did. */
    public record Result(int headers, long chunks, long live, long deleted, long deletedBytes, long keptByGrace,
                         boolean dryRun) {
        @Override
        public String toString() {
            return headers + " headers reference " + live + " of " + chunks + " chunk objects; "
                    + (dryRun ? "would delete " : "deleted ") + deleted + " (" + deletedBytes + " bytes), " + keptByGrace
                    + " unreferenced kept by the grace period";
        }
    }

    /** Another party holds the prefix: an export is running. Nothing was deleted. */
    public static final class BusyException extends IOException {
        public BusyException(String message) {
            super(message);
        }
    }

    /**
     * @param dir    the store prefix (the headers' directory; its chunks are {@code dir/chunks/...})
     * @param grace  unreferenced chunks younger than this (on the store's clock) are kept
     * @param dryRun list what would go, delete nothing
     */
    public static Result collect(ObjectStore store, String dir, Duration grace, Duration ttl, boolean dryRun)
            throws IOException {
        String lock = ContentLocks.lockDir(dir) + "gc-" + UUID.randomUUID();
        long started = System.nanoTime();
        store.put(lock, "garbage collection lock\n".getBytes(StandardCharsets.UTF_8));
        try {
            List<Listed> locks = store.list(ContentLocks.lockDir(dir));
            Instant now = ContentLocks.storeTime(locks, lock);
            List<Listed> exports = ContentLocks.young(locks, "export", lock, ttl);
            if (!exports.isEmpty()) {
                throw new BusyException(exports.size() + " export(s) to " + store.name() + "/" + dir + " in progress ("
                        + exports.getFirst().key() + "); nothing deleted, try again when they are done");
            }
            String base = dir.isEmpty() ? "" : dir + "/";
            List<Listed> all = store.list(base);
            Set<ContentKey> live = new HashSet<>();
            int headers = 0;
            List<Listed> chunks = new ArrayList<>();
            for (Listed o : all) {
                String rel = o.key().substring(base.length());
                if (rel.endsWith(".header") && !rel.contains("/")) {
                    LayerHeader h;
                    try {
                        h = LayeredImage.readHeader(store, o.key());
                    } catch (IllegalArgumentException e) {
                        throw new IOException("header " + o.key() + " does not parse, so what it references is unknown; "
                                + "nothing deleted: " + e.getMessage(), e);
                    }
                    headers++;
                    for (Build b : h.builds()) {
                        if (b.contentAddressed()) {
                            live.addAll(b.content().keys());
                        }
                    }
                } else if (CHUNK.matcher(rel).matches()) {
                    chunks.add(o);
                }
            }
            Instant cutoff = now.minus(grace);
            long deleted = 0;
            long bytes = 0;
            long kept = 0;
            long liveFound = 0;
            for (Listed c : chunks) {
                String hex = c.key().substring(c.key().length() - 64);
                if (live.contains(ContentKey.of(java.util.HexFormat.of().parseHex(hex)))) {
                    liveFound++;
                    continue;
                }
                if (c.lastModified().isAfter(cutoff)) {
                    kept++;
                    continue;
                }
                if (System.nanoTime() - started > ttl.toNanos() / 2) {
                    throw new IOException("garbage collection of " + store.name() + "/" + dir + " stopped after "
                            + deleted + " deletions: it ran for half its lock's TTL (" + ttl + "); run it again");
                }
                if (!dryRun) {
                    store.delete(c.key());
                }
                deleted++;
                bytes += c.size();
            }
            Result r = new Result(headers, chunks.size(), liveFound, deleted, bytes, kept, dryRun);
            log.info("garbage collection of {}/{}: {}", store.name(), dir, r);
            return r;
        } finally {
            store.delete(lock);
        }
    }
}
