package dev.lazyblock.content;

import dev.lazyblock.upstream.ObjectStore;
import dev.lazyblock.upstream.ObjectStore.Listed;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.UUID;

/**
 * Keeps a garbage collection of a store prefix's chunks and the exports writing to it apart, with
 * lock objects in the store itself ({@code <dir>/locks/export-<id>}, {@code <dir>/locks/gc-<id>}),
 * so it works across hosts with nothing but the store.
 *
 * <p>The danger is an export that finds a chunk present, skips uploading it, and a collector
 * that deletes it before the export's header (which references it) is written. Both sides
 * write their lock first and look for the other's second, so at least one of them sees the
 * other (the store's listing is strongly consistent: S3, GCS, Azure, a directory):
 * <ul>
 *   <li>an export that sees a collection's lock waits until it is gone (or older than the TTL:
 *       a crashed collector's) before it checks which chunks exist;
 *   <li>a collection that sees an export's lock gives up, deleting nothing.
 * </ul>
 * Lock ages are measured on the store's clock: against the last-modified time of the lock just
 * written, never the local clock. An export refreshes its lock every third of the TTL, so a long
 * upload keeps it and a crashed exporter's lock expires.
 */
public final class ContentLocks {
    /** How long a lock counts without a refresh. */
    public static final Duration DEFAULT_TTL = Duration.ofMinutes(10);
    static final String LOCKS = "locks";

    private ContentLocks() {}

    static String lockDir(String dir) {
        return (dir.isEmpty() ? "" : dir + "/") + LOCKS + "/";
    }

    /** Locks of {@code kind} under {@code dir} younger than {@code ttl} on the store's clock, {@code own} aside. */
    static List<Listed> young(List<Listed> locks, String kind, String own, Duration ttl) {
        // Ages on the store's clock only: a local clock that runs behind would make an old lock look young
        // (harmless) but one that runs ahead would make a live lock look dead, and that deletes live chunks.
        Instant cutoff = storeTime(locks, own).minus(ttl);
        return locks.stream().filter(l -> !l.key().equals(own))
                .filter(l -> l.key().substring(l.key().lastIndexOf('/') + 1).startsWith(kind + "-"))
                .filter(l -> l.lastModified().isAfter(cutoff)).toList();
    }

    /** The store's time of {@code own}, just written. */
    static Instant storeTime(List<Listed> locks, String own) {
        return locks.stream().filter(l -> l.key().equals(own)).map(Listed::lastModified).findFirst()
                .orElseThrow(() -> new IllegalStateException("the lock " + own + " just written is not listed: the "
                        + "store's listing is not consistent, so collecting garbage in it is not safe"));
    }

    /**
     * An export's lock, held from before it checks which chunks exist until its header is written.
     * On a store that cannot list, nothing can collect its garbage either: the lease is then a no-op.
     */
    public static final class ExportLease implements AutoCloseable {
        private final ObjectStore store;
        private final String key;
        private final Duration ttl;
        private volatile long refreshedAt;

        private ExportLease(ObjectStore store, String key, Duration ttl) {
            this.store = store;
            this.key = key;
            this.ttl = ttl;
        }

        /**
         * Writes the export's lock, then waits while a collection's lock younger than {@code ttl}
         * exists, at most {@code ttl}.
         *
         * @throws IOException if a collection still holds the prefix after {@code ttl}
         */
        public static ExportLease acquire(ObjectStore store, String dir, Duration ttl) throws IOException {
            String key = lockDir(dir) + "export-" + UUID.randomUUID();
            try {
                store.list(lockDir(dir));
            } catch (UnsupportedOperationException cannotList) {
                return new ExportLease(store, null, ttl);
            }
            ExportLease lease = new ExportLease(store, key, ttl);
            lease.put();
            long deadline = System.nanoTime() + ttl.toNanos();
            try {
                while (true) {
                    List<Listed> gc = young(store.list(lockDir(dir)), "gc", key, ttl);
                    if (gc.isEmpty()) {
                        return lease;
                    }
                    if (System.nanoTime() > deadline) {
                        throw new IOException("a garbage collection of " + store.name() + "/" + dir + " has held "
                                + gc.getFirst().key() + " for longer than " + ttl + "; the export did not start");
                    }
                    Thread.sleep(100);
                    lease.refresh();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                lease.close();
                throw new InterruptedIOException("interrupted waiting for a garbage collection to end");
            } catch (IOException | RuntimeException e) {
                lease.close();
                throw e;
            }
        }

        private void put() throws IOException {
            store.put(key, ("export lock, refreshed every " + ttl.dividedBy(3) + "\n").getBytes(StandardCharsets.UTF_8));
            refreshedAt = System.nanoTime();
        }

        /** Rewrites the lock if a third of the TTL has passed since it was written: call it as work goes on. */
        public void refresh() throws IOException {
            if (key != null && System.nanoTime() - refreshedAt > ttl.toNanos() / 3) {
                put();
            }
        }

        /** The lock's key, or null on a store that cannot list. */
        public String key() {
            return key;
        }

        @Override
        public void close() throws IOException {
            if (key != null) {
                store.delete(key);
            }
        }
    }
}
