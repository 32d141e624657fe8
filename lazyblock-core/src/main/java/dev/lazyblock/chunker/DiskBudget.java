package dev.lazyblock.chunker;

import dev.lazyblock.cache.SparseCache;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.FileStore;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One disk budget for a shared chunk tier and the local caches of the images open on this host:
 * a size (bytes the tier's files and the caches may occupy together) and a free-space floor on
 * the tier's file system. When either is crossed, the least recently used builds' tier files are
 * removed, whole builds at a time, until both hold again; a build that is open (pinned by an
 * image) is never removed, and open local caches are counted but cannot be removed (their files
 * are unlinked already and go when they close).
 *
 * <p>Hosts sharing a tier see each other's open builds through lease files,
 * {@code <tier>/.leases/<build>/<lease id>}: a pin creates one (and a daemon thread touches it
 * every {@code leaseTtl / 3}), unpinning deletes it, and no host evicts a build with a lease
 * younger than {@code leaseTtl} (an older one is a crashed host's, and is ignored and removed).
 *
 * <p>Enforced after every tier write (on the tier's writer thread) and on {@link #enforce}. All
 * state is guarded by {@code this}; work under the lock is a few map operations and, when evicting,
 * deleting files (rare, and what the caller is waiting for anyway).
 */
public final class DiskBudget {
    private static final Logger log = LoggerFactory.getLogger(DiskBudget.class);

    private final long maxBytes;
    private final long minFreeBytes;
    private final FileStore fileStore;
    /** Guarded by {@code this}: tier files per build, in least-recently-used order by {@link Entry#used}. */
    private final Map<String, Entry> builds = new HashMap<>();
    /** Guarded by {@code this}: local caches counted against the budget until they close. */
    private final List<SparseCache> caches = new ArrayList<>();
    /** Guarded by {@code this}: directories of kept local caches under this budget. */
    private final List<Path> cacheDirs = new ArrayList<>();
    /** Guarded by {@code this}: a logical clock for recency (no two uses tie). */
    private long clock;
    private long evictedBuilds;
    private long evictedBytes;
    private long evictedCaches;
    private ChunkTier tier;
    /** Guarded by {@code this}: the host's content-addressed chunk files, counted and shrunk last; or null. */
    private dev.lazyblock.content.ContentCache content;
    /** A lease older than this is a crashed host's. */
    private final java.time.Duration leaseTtl;
    /** Guarded by {@code this}: this host's lease files, touched by {@link #refresher}. */
    private final java.util.Set<Path> leases = new java.util.HashSet<>();
    /** Guarded by {@code this}: lease refreshing and rescans, started on first use. */
    private java.util.concurrent.ScheduledExecutorService refresher;
    private boolean refreshing;
    public static final java.time.Duration DEFAULT_LEASE_TTL = java.time.Duration.ofMinutes(10);
    static final String LEASES = ".leases";

    private static final class Entry {
        long bytes;
        /** Logical recency among tier builds (no ties). */
        long used;
        /** Wall-clock recency, to order tier builds against kept caches (whose use is a file time). */
        long usedMillis;
        int open;
    }

    /**
     * @param maxBytes     what the tier and the local caches may occupy together
     * @param minFreeBytes free space to keep on the file system of {@code probe}
     * @param probe        a path on the tier's file system
     */
    public DiskBudget(long maxBytes, long minFreeBytes, Path probe) throws IOException {
        this(maxBytes, minFreeBytes, probe, DEFAULT_LEASE_TTL);
    }

    /** @param leaseTtl how long another host's lease on a build keeps it from eviction without a refresh */
    public DiskBudget(long maxBytes, long minFreeBytes, Path probe, java.time.Duration leaseTtl) throws IOException {
        this.leaseTtl = leaseTtl;
        if (maxBytes <= 0 || minFreeBytes < 0) {
            throw new IllegalArgumentException("budget must be > 0 and floor >= 0, got " + maxBytes + " and "
                    + minFreeBytes);
        }
        this.maxBytes = maxBytes;
        this.minFreeBytes = minFreeBytes;
        this.fileStore = Files.getFileStore(probe);
    }

    /**
     * Puts {@code tier} under this budget: its existing build directories are counted (recency
     * from their files' modification times), and from now on its writes and reads update the
     * budget.
     */
    public synchronized void govern(ChunkTier tier) throws IOException {
        if (this.tier != null) {
            throw new IllegalStateException("this budget already governs " + this.tier.dir());
        }
        this.tier = tier;
        rescan();
        tier.listener(new ChunkTier.TierListener() {
            @Override
            public void written(String build, Path file, long bytes) {
                charge(build, bytes);
            }

            @Override
            public void read(String build) {
                touch(build);
            }
        });
        enforce();
    }

    /**
     * Recounts the tier's files from the directory: what other hosts wrote since, what was
     * replaced (a write over a bad file is charged again), what another host evicted. Known
     * builds keep their recency; builds first seen here get their newest file's time. Then
     * enforces. Called at {@link #govern} and, with {@link #rescanEvery}, periodically.
     */
    public synchronized void rescan() throws IOException {
        List<Path> dirs;
        try (Stream<Path> s = Files.list(tier.dir())) {
            dirs = s.filter(Files::isDirectory).filter(d -> !d.getFileName().toString().startsWith(".")).toList();
        }
        Map<String, long[]> found = new HashMap<>();
        for (Path d : dirs) {
            long bytes = 0;
            long newest = 0;
            try (Stream<Path> files = Files.list(d)) {
                for (Path f : files.toList()) {
                    try {
                        bytes += Files.size(f);
                        newest = Math.max(newest, Files.getLastModifiedTime(f).toMillis());
                    } catch (NoSuchFileException gone) {
                        // removed meanwhile (another host evicting)
                    }
                }
            } catch (NoSuchFileException gone) {
                continue;
            }
            found.put(d.getFileName().toString(), new long[] {bytes, newest});
        }
        builds.entrySet().removeIf(me -> me.getValue().open == 0 && !found.containsKey(me.getKey()));
        for (Map.Entry<String, Entry> me : builds.entrySet()) {
            if (!found.containsKey(me.getKey())) {
                me.getValue().bytes = 0; // open here, nothing in the tier yet
            }
        }
        found.entrySet().stream().sorted(Comparator.comparingLong(me -> me.getValue()[1])).forEach(me -> {
            Entry e = builds.get(me.getKey());
            if (e == null) {
                e = new Entry();
                e.used = ++clock;
                e.usedMillis = me.getValue()[1];
                builds.put(me.getKey(), e);
            }
            e.bytes = me.getValue()[0];
        });
        enforce();
    }

    /** Rescans the tier every {@code period} on a daemon thread (other hosts write to it too). */
    public synchronized void rescanEvery(java.time.Duration period) {
        scheduler().scheduleWithFixedDelay(() -> {
            try {
                rescan();
            } catch (IOException | RuntimeException e) {
                log.warn("disk budget: rescanning {} failed: {}", tier.dir(), e.toString());
            }
        }, period.toMillis(), period.toMillis(), java.util.concurrent.TimeUnit.MILLISECONDS);
    }

    private java.util.concurrent.ScheduledExecutorService scheduler() {
        if (refresher == null) {
            refresher = java.util.concurrent.Executors.newSingleThreadScheduledExecutor(
                    Thread.ofPlatform().daemon().name("lazyblock-tier-budget").factory());
        }
        return refresher;
    }

    /**
     * Puts a directory of kept local caches ({@code PersistentCache}: {@code <key>.cache},
     * {@code .presence}, {@code .lock}) under this budget too. Caches that are closed count with
     * the bytes their files occupy and may be evicted (all three files removed), least recently
     * used first (by the time their map was saved) and interleaved with tier builds by age; an
     * open cache holds its lock file, in this process or another, and is never removed.
     */
    public synchronized void governCaches(Path dir) {
        cacheDirs.add(dir);
        enforce();
    }

    /** Kept caches in the governed directories, closed or not: key, bytes on disk, last use (ms). */
    private record Kept(Path dir, String key, long bytes, long usedMillis) {}

    private List<Kept> keptCaches() {
        List<Kept> out = new ArrayList<>();
        for (Path d : cacheDirs) {
            List<Path> data;
            try (Stream<Path> s = Files.list(d)) {
                data = s.filter(p -> p.getFileName().toString().endsWith(".cache")).toList();
            } catch (IOException e) {
                continue;
            }
            for (Path p : data) {
                String name = p.getFileName().toString();
                String key = name.substring(0, name.length() - ".cache".length());
                try {
                    // The journal is appended while the cache is used: its time is the last use.
                    Path journal = d.resolve(key + ".journal");
                    Path map = d.resolve(key + ".presence");
                    Path stamp = Files.exists(journal) ? journal : Files.exists(map) ? map : p;
                    long used = Files.getLastModifiedTime(stamp).toMillis();
                    out.add(new Kept(d, key, allocated(p), used));
                } catch (IOException gone) {
                    // removed meanwhile
                }
            }
        }
        return out;
    }

    /** Bytes a sparse file occupies on disk (its allocated blocks, not its length). */
    private static long allocated(Path p) throws IOException {
        int fd = dev.lazyblock.os.Libc.open(p.toString(), dev.lazyblock.os.Libc.O_RDONLY | dev.lazyblock.os.Libc.O_CLOEXEC, 0);
        try {
            return dev.lazyblock.os.Libc.fstat(fd).allocatedBytes();
        } finally {
            dev.lazyblock.os.Libc.close(fd);
        }
    }

    /** Removes a kept cache unless it is open (its lock held, here or in another process); the bytes freed. */
    private static long removeKept(Kept k) {
        Path lockFile = k.dir().resolve(k.key() + ".lock");
        try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(lockFile,
                java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.WRITE)) {
            java.nio.channels.FileLock lock;
            try {
                lock = ch.tryLock();
            } catch (java.nio.channels.OverlappingFileLockException openHere) {
                return -1;
            }
            if (lock == null) {
                return -1; // open in another process
            }
            try {
                // The journal (and an old map) first: without them, whatever is left of the data is
                // trusted by nobody.
                Files.deleteIfExists(k.dir().resolve(k.key() + ".journal"));
                Files.deleteIfExists(k.dir().resolve(k.key() + ".presence"));
                Files.deleteIfExists(k.dir().resolve(k.key() + ".cache"));
            } finally {
                lock.release();
            }
            Files.deleteIfExists(lockFile);
            return k.bytes();
        } catch (IOException e) {
            log.warn("disk budget: removing kept cache {} failed: {}", k.key(), e.toString());
            return -1;
        }
    }

    /** A pin on a build: while held, its tier files are not evicted. */
    public interface Pin extends AutoCloseable {
        @Override
        void close();
    }

    /** Pins {@code build} (an image has it open) here and, through a lease file, for every host; counts as a use. */
    public synchronized Pin pin(String build) {
        Entry e = builds.computeIfAbsent(build, k -> new Entry());
        e.open++;
        e.used = ++clock;
        e.usedMillis = System.currentTimeMillis();
        Path lease = takeLease(build);
        boolean[] closed = {false};
        return () -> {
            synchronized (DiskBudget.this) {
                if (!closed[0]) {
                    closed[0] = true;
                    e.open--;
                    if (lease != null) {
                        leases.remove(lease);
                        try {
                            Files.deleteIfExists(lease);
                        } catch (IOException ex) {
                            log.warn("disk budget: cannot remove lease {}: {}", lease, ex.toString());
                        }
                    }
                }
            }
        };
    }

    /** Creates this pin's lease file (null without a tier: nothing to share). Called under {@code this}. */
    private Path takeLease(String build) {
        if (tier == null) {
            return null;
        }
        Path lease = tier.dir().resolve(LEASES).resolve(build).resolve(java.util.UUID.randomUUID().toString());
        try {
            Files.createDirectories(lease.getParent());
            Files.createFile(lease);
        } catch (IOException ex) {
            // Still pinned on this host; other hosts may evict it, and our reads then go to the bucket.
            log.warn("disk budget: cannot create lease {}: {}", lease, ex.toString());
            return null;
        }
        leases.add(lease);
        if (!refreshing) {
            refreshing = true;
            long period = Math.max(1, leaseTtl.toMillis() / 3);
            scheduler().scheduleAtFixedRate(this::refreshLeases, period, period, java.util.concurrent.TimeUnit.MILLISECONDS);
        }
        return lease;
    }

    private synchronized void refreshLeases() {
        java.nio.file.attribute.FileTime now = java.nio.file.attribute.FileTime.fromMillis(System.currentTimeMillis());
        for (Path l : leases) {
            try {
                Files.setLastModifiedTime(l, now);
            } catch (IOException ex) {
                log.warn("disk budget: cannot refresh lease {}: {}", l, ex.toString());
            }
        }
    }

    /** Whether another host (or this one) holds a live lease on {@code build}; stale leases are removed. */
    private boolean leased(String build) {
        Path dir = tier.dir().resolve(LEASES).resolve(build);
        if (!Files.isDirectory(dir)) {
            return false;
        }
        long cutoff = System.currentTimeMillis() - leaseTtl.toMillis();
        boolean live = false;
        try (Stream<Path> s = Files.list(dir)) {
            for (Path l : s.toList()) {
                try {
                    if (Files.getLastModifiedTime(l).toMillis() >= cutoff) {
                        live = true;
                    } else {
                        log.info("disk budget: removing stale lease {} (a host that stopped without unpinning)", l);
                        Files.deleteIfExists(l);
                    }
                } catch (NoSuchFileException gone) {
                    // unpinned meanwhile
                }
            }
        } catch (IOException ex) {
            return true; // cannot tell: keep the build
        }
        return live;
    }

    /**
     * Counts {@code c}'s chunk files against the budget too: when the whole is over, closed kept caches
     * and tier builds go first (least recently used), then the content cache's least recently used
     * files (a file a build has mapped frees its blocks when that build closes).
     */
    public synchronized void governContent(dev.lazyblock.content.ContentCache c) {
        this.content = c;
    }

    /** Counts a local cache against the budget until it closes. */
    public synchronized void count(SparseCache cache) {
        caches.add(cache);
    }

    synchronized void touch(String build) {
        Entry e = builds.computeIfAbsent(build, k -> new Entry());
        e.used = ++clock;
        e.usedMillis = System.currentTimeMillis();
    }

    synchronized void charge(String build, long bytes) {
        Entry e = builds.computeIfAbsent(build, k -> new Entry());
        e.bytes += bytes;
        e.used = ++clock;
        e.usedMillis = System.currentTimeMillis();
        enforce();
    }

    /** Bytes the tier's files and the open local caches occupy, as counted. */
    public synchronized long usedBytes() {
        long sum = 0;
        for (Entry e : builds.values()) {
            sum += e.bytes;
        }
        for (Kept k : keptCaches()) {
            sum += k.bytes(); // kept caches on disk, open or not (an open one is its file: not counted twice below)
        }
        if (content != null) {
            sum += content.bytes();
        }
        caches.removeIf(SparseCache::isClosed);
        for (SparseCache c : caches) {
            if (isKept(c)) {
                continue; // a kept cache's file is counted above
            }
            try {
                sum += c.fileSize();
            } catch (IOException | RuntimeException closedMeanwhile) {
                // closed between the check and the call: it occupies nothing any more
            }
        }
        return sum;
    }

    /** Whether {@code c} is one of the kept caches in a governed directory (counted from its file). */
    private boolean isKept(SparseCache c) {
        Path parent = Path.of(c.name()).toAbsolutePath().getParent();
        for (Path d : cacheDirs) {
            if (d.toAbsolutePath().equals(parent)) {
                return true;
            }
        }
        return false;
    }

    public synchronized long evictedBuilds() {
        return evictedBuilds;
    }

    /** Kept local caches removed. */
    public synchronized long evictedCaches() {
        return evictedCaches;
    }

    public synchronized long evictedBytes() {
        return evictedBytes;
    }

    private long free() {
        try {
            return fileStore.getUsableSpace();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Evicts least recently used, unpinned builds until the size and the floor hold (or nothing is left to evict). */
    public synchronized void enforce() {
        java.util.Set<String> leasedElsewhere = new java.util.HashSet<>();
        java.util.Set<String> skippedKept = new java.util.HashSet<>();
        long used = usedBytes();
        while (used > maxBytes || free() < minFreeBytes) {
            String victim = null;
            long oldest = Long.MAX_VALUE;
            for (Map.Entry<String, Entry> me : builds.entrySet()) {
                Entry e = me.getValue();
                if (e.open == 0 && e.bytes > 0 && e.used < oldest && !leasedElsewhere.contains(me.getKey())) {
                    oldest = e.used;
                    victim = me.getKey();
                }
            }
            if (victim != null && tier != null && leased(victim)) {
                leasedElsewhere.add(victim); // open on another host: skip it this round
                continue;
            }
            // A closed kept cache used before the least recently used tier build goes first.
            Kept oldestKept = null;
            for (Kept k : keptCaches()) {
                if (!skippedKept.contains(k.key()) && k.bytes() > 0
                        && (oldestKept == null || k.usedMillis() < oldestKept.usedMillis())) {
                    oldestKept = k;
                }
            }
            if (oldestKept != null && (victim == null || oldestKept.usedMillis() < builds.get(victim).usedMillis)) {
                long freed = removeKept(oldestKept);
                if (freed < 0) {
                    skippedKept.add(oldestKept.key()); // open: never removed
                } else {
                    evictedCaches++;
                    evictedBytes += freed;
                    used -= freed;
                    log.info("disk budget: evicted kept cache {} ({} bytes)", oldestKept.key(), freed);
                }
                continue;
            }
            if (victim == null && content != null) {
                long over = Math.max(used - maxBytes, minFreeBytes - free());
                long freed = content.shrinkBy(Math.max(1, over));
                if (freed > 0) {
                    evictedBytes += freed;
                    used -= freed;
                    log.info("disk budget: removed {} bytes of content-addressed chunk files", freed);
                    continue;
                }
            }
            if (victim == null) {
                log.warn("disk budget: {} bytes used of {}, {} free (floor {}), and every remaining build is open",
                        used, maxBytes, free(), minFreeBytes);
                return;
            }
            Entry e = builds.remove(victim);
            long freed = removeBuild(victim);
            evictedBuilds++;
            evictedBytes += freed;
            used -= e.bytes;
            log.info("disk budget: evicted build {} from the tier ({} bytes)", victim, freed);
        }
    }

    private long removeBuild(String build) {
        if (tier == null) {
            return 0;
        }
        Path d = tier.buildDir(build);
        long freed = 0;
        try (Stream<Path> files = Files.list(d)) {
            for (Path f : files.toList()) {
                try {
                    long size = Files.size(f);
                    Files.delete(f);
                    freed += size;
                } catch (NoSuchFileException gone) {
                    // another host evicted it first
                }
            }
            Files.deleteIfExists(d);
        } catch (NoSuchFileException gone) {
            return freed;
        } catch (IOException e) {
            // A file written meanwhile (DirectoryNotEmpty) or an NFS hiccup: what is left is
            // counted again when it is next written or at the next start.
            log.warn("disk budget: removing {} left something behind: {}", d, e.toString());
        }
        return freed;
    }

    /** Stops refreshing leases (pins still held keep their files until unpinned). */
    public synchronized void close() {
        if (refresher != null) {
            refresher.shutdownNow();
        }
    }

    @Override
    public String toString() {
        return "DiskBudget[max " + maxBytes + ", floor " + minFreeBytes + ", used " + usedBytes() + ", evicted "
                + evictedBuilds() + " builds]";
    }
}
