package dev.lazyblock.content;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.os.Libc;
import dev.lazyblock.os.Libc.ErrnoException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.function.Predicate;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * This host's local cache of content-addressed chunks, keyed by hash: one file per chunk with its
 * uncompressed bytes, {@code <dir>/<first 2 hex>/<hash>.plain}. A content-addressed build does not
 * copy a chunk into its own cache file: it maps this file over the chunk's range of its cache
 * ({@link SparseCache#mapFrom}), so ten builds that hold one chunk hold it once on disk and once
 * in the page cache, and a build opened later maps what an earlier one fetched without a copy.
 * The files outlive the process: a restarted server maps what it fetched before.
 *
 * <p>Bounded: at most {@code maxBytes} of files, the least recently used removed first. Removing
 * a file a build has mapped is safe: the mapping keeps its blocks (the kernel frees them when the
 * last build unmaps), so the disk can briefly hold more than the bound, never more than what open
 * builds map. Files are never changed in place, only replaced whole by rename, so a mapping never
 * sees one shrink.
 *
 * <p>Trusted only once checked: a file is mapped, then its bytes are checked (the caller's
 * CRC-32C of the uncompressed chunk from the header) before the range is marked present; a bad
 * one is unmapped, removed and counted. One process per directory (a lock file says so).
 *
 * <p>Thread-safe: the recency map and byte count are guarded by {@code this}; the work under it is
 * map operations and, when over the bound, deleting files.
 */
public final class ContentCache implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ContentCache.class);
    private static final String SUFFIX = ".plain";
    private static final String VIEWS = ".views";

    private final Path dir;
    private final long maxBytes;
    private final FileChannel lockFile;
    private final FileLock lock;
    /** Guarded by {@code this}: chunk files in least-recently-used order (access order), and their sizes. */
    private final LinkedHashMap<ContentKey, Long> files = new LinkedHashMap<>(64, 0.75f, true);
    /** Guarded by {@code this}. */
    private long bytes;
    private long hits;
    private long hitBytes;
    private long misses;
    private long stored;
    private long storedBytes;
    private long evicted;
    private long evictedBytes;
    private long bad;
    private long failedWrites;
    private boolean closed;

    /** Another process (or another cache in this one) has the directory. */
    public static final class InUseException extends IOException {
        InUseException(String message) {
            super(message);
        }
    }

    /**
     * Opens (or creates) the cache in {@code dir}, keeping the chunk files already there, newest first,
     * up to {@code maxBytes}.
     *
     * @throws InUseException if another process has it open
     * @throws IOException if {@code dir} cannot be made
     */
    public ContentCache(Path dir, long maxBytes) throws IOException {
        if (maxBytes <= 0) {
            throw new IllegalArgumentException("a content cache needs a positive bound, got " + maxBytes + " bytes");
        }
        this.dir = Files.createDirectories(dir);
        this.maxBytes = maxBytes;
        Files.createDirectories(dir.resolve(VIEWS));
        this.lockFile = FileChannel.open(dir.resolve(".lock"), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
        FileLock l;
        try {
            l = lockFile.tryLock();
        } catch (OverlappingFileLockException e) {
            l = null;
        }
        if (l == null) {
            lockFile.close();
            throw new InUseException("the content cache " + dir + " is in use by another process (or another "
                    + "ContentCache in this one): give each its own directory");
        }
        this.lock = l;
        try {
            load();
        } catch (IOException | RuntimeException e) {
            close();
            throw e;
        }
    }

    /** What a previous run left: its chunk files (oldest first, so the newest survive the bound); no temporaries. */
    private void load() throws IOException {
        record Found(ContentKey key, Path file, long size, long modified) {}
        List<Found> found = new ArrayList<>();
        try (Stream<Path> groups = Files.list(dir)) {
            for (Path g : groups.filter(p -> p.getFileName().toString().length() == 2).toList()) {
                try (Stream<Path> in = Files.list(g)) {
                    for (Path f : in.toList()) {
                        String name = f.getFileName().toString();
                        if (name.startsWith(".") && name.endsWith(".tmp")) {
                            Files.deleteIfExists(f); // a write a crash cut short
                            continue;
                        }
                        ContentKey key = keyOf(name);
                        if (key == null) {
                            continue; // not ours: left alone
                        }
                        found.add(new Found(key, f, Files.size(f), Files.getLastModifiedTime(f).toMillis()));
                    }
                }
            }
        }
        found.sort(Comparator.comparingLong(Found::modified));
        synchronized (this) {
            for (Found f : found) {
                files.put(f.key(), f.size());
                bytes += f.size();
            }
            evictOverBound(null);
        }
        if (!found.isEmpty()) {
            log.info("content cache {}: {} chunk files ({} bytes) kept from before", dir, files.size(), bytes);
        }
    }

    private static ContentKey keyOf(String name) {
        if (!name.endsWith(SUFFIX) || name.length() != 64 + SUFFIX.length()) {
            return null;
        }
        try {
            return ContentKey.of(HexFormat.of().parseHex(name, 0, 64));
        } catch (IllegalArgumentException notHex) {
            return null;
        }
    }

    public Path dir() {
        return dir;
    }

    /** Where chunk {@code key}'s file is. */
    public Path file(ContentKey key) {
        String hex = key.hex();
        return dir.resolve(hex.substring(0, 2)).resolve(hex + SUFFIX);
    }

    /**
     * A new path for a build's scratch cache, which {@link SparseCache#create} unlinks at once: its
     * file holds only the chunks no file here backs (none, normally); it is on this file system so
     * its holes cost nothing.
     */
    public Path scratchFile() {
        return dir.resolve(VIEWS).resolve(UUID.randomUUID() + ".view");
    }

    /**
     * Maps chunk {@code key}'s file, if this cache has one, over {@code [off, off + len)} of
     * {@code cache}, and keeps it there if {@code check} accepts the bytes.
     *
     * @return true if the range now reads the chunk; false if there was no file, or a bad one (removed)
     */
    public boolean mapInto(ContentKey key, SparseCache cache, long off, int len, Predicate<MemorySegment> check)
            throws IOException {
        return map(key, cache, off, len, check, true);
    }

    /** @param lookup a lookup (counted as a hit or miss), not the map that follows a store */
    private boolean map(ContentKey key, SparseCache cache, long off, int len, Predicate<MemorySegment> check,
                        boolean lookup) throws IOException {
        Path f = file(key);
        int fd;
        try {
            fd = Libc.open(f.toString(), Libc.O_RDONLY | Libc.O_CLOEXEC, 0);
        } catch (ErrnoException e) {
            if (e.errno() != Libc.ENOENT) {
                log.warn("content cache file {} cannot be opened: {}", f, e.getMessage());
            }
            synchronized (this) {
                // Its entry, if any, stays: a store racing this one may have just put it, and an
                // entry without a file costs nothing (evicting it deletes nothing).
                if (lookup) {
                    misses++;
                }
            }
            return false;
        }
        try {
            long size = Libc.fstat(fd).size();
            boolean good = size == len && cache.mapFrom(off, len, fd, check);
            synchronized (this) {
                if (good) {
                    if (lookup) {
                        hits++;
                        hitBytes += len;
                    }
                    files.get(key); // most recently used now
                    return true;
                }
                bad++;
            }
            log.warn("content cache file {} is bad ({} bytes, expected {}{}): removed", f, size, len,
                    size == len ? ", and its bytes fail their check" : "");
            remove(key, f);
            return false;
        } finally {
            Libc.close(fd);
        }
    }

    /**
     * Keeps {@code chunk} (the checked, uncompressed bytes of {@code key}) as a file, then maps it over
     * {@code [off, off + chunk.byteSize())} of {@code cache}.
     *
     * @return true if the range now reads the file; false if it could not be written or mapped (the
     *         caller then writes the bytes into {@code cache} itself)
     */
    public boolean storeAndMap(ContentKey key, MemorySegment chunk, SparseCache cache, long off) throws IOException {
        if (!store(key, chunk)) {
            return false;
        }
        long expected = chunk.byteSize();
        // Another thread may replace the file between store and map: only ever by a whole, checked one
        // of the same chunk, so a size check is enough here.
        return map(key, cache, off, (int) expected, bytes -> bytes.byteSize() == expected, false);
    }

    /** Writes the chunk's file (whole, then renamed into place); false if that failed (counted, logged). */
    boolean store(ContentKey key, MemorySegment chunk) {
        Path f = file(key);
        Path tmp = null;
        try {
            Path parent = Files.createDirectories(f.getParent());
            tmp = parent.resolve("." + f.getFileName() + "." + UUID.randomUUID() + ".tmp");
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
                java.nio.ByteBuffer b = chunk.asByteBuffer();
                while (b.hasRemaining()) {
                    ch.write(b);
                }
            }
            // No fsync: after a crash a torn file fails the check when it is next mapped, and is replaced.
            Files.move(tmp, f, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException | RuntimeException e) {
            if (tmp != null) {
                try {
                    Files.deleteIfExists(tmp);
                } catch (IOException suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            synchronized (this) {
                failedWrites++;
            }
            log.warn("content cache {}: chunk {} not kept ({}); it is copied into its build's cache instead", dir,
                    key.hex(), e instanceof AtomicMoveNotSupportedException ? "no atomic rename" : e.toString());
            return false;
        }
        synchronized (this) {
            Long old = files.put(key, chunk.byteSize());
            bytes += chunk.byteSize() - (old == null ? 0 : old);
            stored++;
            storedBytes += chunk.byteSize();
            evictOverBound(key);
        }
        return true;
    }

    /**
     * Removes least recently used files until at least {@code bytes} are freed or none is left: what a
     * disk budget over this cache and other files asks for when the whole is over.
     *
     * @return the bytes freed
     */
    public synchronized long shrinkBy(long bytes) {
        long before = this.bytes;
        evictDownTo(Math.max(0, before - bytes), null);
        return before - this.bytes;
    }

    /** Removes least recently used files, never {@code keep}, until the bound holds. Caller holds the lock. */
    private void evictOverBound(ContentKey keep) {
        evictDownTo(maxBytes, keep);
    }

    private void evictDownTo(long target, ContentKey keep) {
        Iterator<Map.Entry<ContentKey, Long>> it = files.entrySet().iterator();
        while (bytes > target && it.hasNext()) {
            Map.Entry<ContentKey, Long> e = it.next();
            if (e.getKey().equals(keep)) {
                continue;
            }
            try {
                Files.deleteIfExists(file(e.getKey()));
            } catch (IOException failed) {
                log.warn("content cache {}: removing {} failed: {}", dir, e.getKey().hex(), failed.toString());
                continue;
            }
            it.remove();
            bytes -= e.getValue();
            evicted++;
            evictedBytes += e.getValue();
        }
    }

    private void remove(ContentKey key, Path f) {
        synchronized (this) {
            if (files.remove(key) instanceof Long gone) {
                bytes -= gone;
            }
        }
        try {
            Files.deleteIfExists(f);
        } catch (IOException e) {
            log.warn("content cache {}: removing {} failed: {}", dir, f, e.toString());
        }
    }

    /** Chunk files held. */
    public synchronized int chunks() {
        return files.size();
    }

    /** Bytes of chunk files held (not counting removed files still mapped by open builds). */
    public synchronized long bytes() {
        return bytes;
    }

    public long maxBytes() {
        return maxBytes;
    }

    /** Misses served by mapping a file already here. */
    public synchronized long hits() {
        return hits;
    }

    /** Bytes of those misses: what builds mapped from here instead of fetching. */
    public synchronized long hitBytes() {
        return hitBytes;
    }

    /** Lookups that found no file. */
    public synchronized long misses() {
        return misses;
    }

    /** Chunk files written. */
    public synchronized long stored() {
        return stored;
    }

    public synchronized long storedBytes() {
        return storedBytes;
    }

    /** Files removed to keep the bound. */
    public synchronized long evicted() {
        return evicted;
    }

    public synchronized long evictedBytes() {
        return evictedBytes;
    }

    /** Files that failed their check (wrong size or bytes) and were removed. */
    public synchronized long bad() {
        return bad;
    }

    /** Chunks that could not be written (full disk, ...): their builds copied them instead. */
    public synchronized long failedWrites() {
        return failedWrites;
    }

    /** Releases the directory's lock; the files stay for the next run. Builds that mapped files keep them. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        try {
            if (lock != null) {
                lock.release();
            }
            lockFile.close();
        } catch (IOException e) {
            log.warn("content cache {}: releasing its lock failed: {}", dir, e.toString());
        }
    }

    @Override
    public synchronized String toString() {
        return "ContentCache[" + dir + ", " + files.size() + " chunks, " + bytes + " of " + maxBytes + " bytes, " + hits
                + " hits, " + misses + " misses, " + stored + " stored, " + evicted + " evicted, " + bad + " bad]";
    }
}
