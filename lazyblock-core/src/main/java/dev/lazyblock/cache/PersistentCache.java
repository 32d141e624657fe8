package dev.lazyblock.cache;

import dev.lazyblock.os.Libc;
import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.HexFormat;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.zip.CRC32C;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A {@link SparseCache} that outlives the process, crashes included: per image, a named cache
 * file and a presence journal in a directory, so bytes fetched by one run (a {@code warm}, or a
 * serve killed with {@code kill -9}) are hits for the next.
 *
 * <p>Files, named by a hash of the image's identity ({@code <key>} below):
 * <ul>
 *   <li>{@code <key>.cache}: the bytes, sparse, the image's size;</li>
 *   <li>{@code <key>.journal}: which granules hold durable bytes ({@link PresenceJournal}): a
 *       granule is recorded only after its bytes are fsynced, so after a crash at any moment the
 *       next open trusts every granule committed before it and nothing else. Commits run every
 *       {@link #DEFAULT_COMMIT_INTERVAL} while fetches land, at {@link SparseCache#flush()} and at
 *       close;</li>
 *   <li>{@code <key>.presence}: the map an earlier lazyblock saved at a clean close; read once
 *       (if it is trusted, it becomes the journal) and removed;</li>
 *   <li>{@code <key>.lock}: held with an exclusive lock while the cache is open. A second open, in
 *       this process or another, fails instead of two writers sharing one file.</li>
 * </ul>
 *
 * <p>A journal is trusted only if its header is intact (CRC-32C) and names the same identity,
 * version, size, block size and granularity, and the cache file has the image's size; otherwise
 * it is discarded with a logged reason and the file's old blocks are released (an overlay's,
 * which holds a user's writes, is never discarded: {@link #openOverlay} fails instead). The
 * identity is what the caller knows of the image (its name; the key hashes only that, so an image
 * whose size changed replaces its old cache instead of leaving it beside). The version is what the
 * store says of the object's bytes (an ETag, a generation; see
 * {@link dev.lazyblock.upstream.Upstream#version}): an object rewritten under the same name, even
 * at the same size, has another, and its journal is discarded.
 */
public final class PersistentCache {
    private static final Logger log = LoggerFactory.getLogger(PersistentCache.class);

    /** How often marks are committed to the journal while fetches land. */
    public static final Duration DEFAULT_COMMIT_INTERVAL = Duration.ofMillis(200);

    private static final byte[] MAGIC = "LBPMAP02".getBytes(StandardCharsets.US_ASCII);
    /** Maps saved before versions were kept: no version to check, so never trusted. */
    private static final byte[] MAGIC_V1 = "LBPMAP01".getBytes(StandardCharsets.US_ASCII);

    private PersistentCache() {}

    /** What {@link #open} found, and a way to wait until a closed cache's map is saved. */
    public static final class Opened {
        private final SparseCache cache;
        private final long restoredBytes;
        private final String discarded;
        private final CountDownLatch released;
        private final PresenceJournal journal;
        private final long droppedBytes;

        Opened(SparseCache cache, long restoredBytes, String discarded, CountDownLatch released,
               PresenceJournal journal, long droppedBytes) {
            this.cache = cache;
            this.restoredBytes = restoredBytes;
            this.discarded = discarded;
            this.released = released;
            this.journal = journal;
            this.droppedBytes = droppedBytes;
        }

        /**
         * Bytes known durable: granules committed to the journal with their bytes, which a restart
         * after a crash now keeps. At most the bytes present; behind them by up to a commit interval.
         */
        public long durableBytes() {
            return Math.min(cache.size(), journal.durableGranules() * cache.granularity());
        }

        /** Bytes of the journal's tail that a crash had torn, found and ignored at this open. */
        public long droppedJournalBytes() {
            return droppedBytes;
        }

        /** The cache, owned by the caller (or by the chunker it is given to): closing it saves the map. */
        public SparseCache cache() {
            return cache;
        }

        /** Bytes marked present from earlier runs (0 when nothing was trusted). */
        public long restoredBytes() {
            return restoredBytes;
        }

        /** Why a saved journal (or map) was not trusted, or null (none found, or it was trusted). */
        public String discarded() {
            return discarded;
        }

        /**
         * Waits until the closed cache is freed: its journal committed (unless it failed) and its
         * lock released. A close returns at once, but fetches still writing hold the cache until
         * they end (see {@link SparseCache#retain()}), and the last of them commits.
         *
         * @return false if that did not happen within {@code limit}
         */
        public boolean awaitReleased(Duration limit) throws InterruptedException {
            return released.await(limit.toNanos(), TimeUnit.NANOSECONDS);
        }
    }

    /** The file name stem for an identity: 32 hex digits of its SHA-256. */
    public static String key(String identity) {
        try {
            byte[] h = MessageDigest.getInstance("SHA-256").digest(identity.getBytes(StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(h, 0, 16);
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError("every JDK has SHA-256", e);
        }
    }

    /** The cache of {@code identity} in {@code dir}, 4 KiB blocks and granularity, no version. */
    public static Opened open(Path dir, String identity, long size) throws IOException {
        return open(dir, identity, null, size, SparseCache.DEFAULT_BLOCK_SIZE, SparseCache.DEFAULT_BLOCK_SIZE);
    }

    /** {@link #open(Path, String, String, long, int, long)} of an object that never changes (a build). */
    public static Opened open(Path dir, String identity, long size, int blockSize, long granularity)
            throws IOException {
        return open(dir, identity, null, size, blockSize, granularity);
    }

    /**
     * Opens (creating if need be) the persistent cache of {@code identity} in {@code dir}. A journal
     * written for another {@code version} (null: the store tells none) is discarded.
     *
     * @throws IOException if another open holds it (in this process or another), or the files
     *                     cannot be created, read or mapped
     */
    public static Opened open(Path dir, String identity, String version, long size, int blockSize,
                              long granularity) throws IOException {
        return open(dir, identity, version, size, blockSize, granularity, false, DEFAULT_COMMIT_INTERVAL, null);
    }

    /**
     * Opens (creating if need be) a kept copy-on-write overlay's cache: granularity = block, the
     * presence is the written blocks. Its bytes are a user's writes, so a journal that does not
     * match (another image, version or size, a corrupt header) is an error naming why, never
     * silently discarded; a tail torn by a crash is (those writes were never flushed).
     */
    public static Opened openOverlay(Path dir, String identity, String version, long size, int blockSize)
            throws IOException {
        return openOverlay(dir, identity, version, size, blockSize, null);
    }

    /**
     * What must be durable before a cache vouches for its first bytes, beside the cache's own
     * files: a caller's record of what the cache is for, say.
     */
    @FunctionalInterface
    public interface Barrier {
        void run() throws IOException;
    }

    /**
     * {@link #openOverlay(Path, String, String, long, int)}, running {@code beforeFirstCommit} once
     * before the first flush (or commit) makes anything durable. A new overlay's files are synced
     * then too, not at open: opening one costs no fsync.
     */
    public static Opened openOverlay(Path dir, String identity, String version, long size, int blockSize,
                                     Barrier beforeFirstCommit) throws IOException {
        return open(dir, identity, version, size, blockSize, blockSize, true, DEFAULT_COMMIT_INTERVAL,
                beforeFirstCommit);
    }

    /** {@link #open(Path, String, String, long, int, long)} with another commit interval (tests, benchmarks). */
    public static Opened open(Path dir, String identity, String version, long size, int blockSize,
                              long granularity, Duration commitInterval) throws IOException {
        return open(dir, identity, version, size, blockSize, granularity, false, commitInterval, null);
    }

    private static Opened open(Path dir, String identity, String version, long size, int blockSize,
                               long granularity, boolean keepWrites, Duration commitInterval,
                               Barrier beforeFirstCommit) throws IOException {
        SparseCache.checkGeometry(size, blockSize, granularity);
        Files.createDirectories(dir);
        String key = key(identity);
        Path data = dir.resolve(key + ".cache");
        Path map = dir.resolve(key + ".presence");
        Path journalFile = dir.resolve(key + ".journal");
        Path lockFile = dir.resolve(key + ".lock");
        FileChannel lockChannel = FileChannel.open(lockFile, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
        FileLock lock;
        try {
            lock = lockChannel.tryLock();
        } catch (OverlappingFileLockException e) {
            lockChannel.close();
            throw new IOException("cache " + data + " of " + identity + " is already open in this process (lock "
                    + lockFile + " is held)", e);
        } catch (IOException | RuntimeException e) {
            lockChannel.close();
            throw e;
        }
        if (lock == null) {
            lockChannel.close();
            throw new IOException("cache " + data + " of " + identity + " is in use by another process (lock "
                    + lockFile + " is held); stop it, or use another cache directory");
        }
        int fd = -1;
        try {
            long granules = SparseCache.granules(size, granularity);
            Files.deleteIfExists(tmpOf(map));
            Files.deleteIfExists(PresenceJournal.tmpOf(journalFile));
            PresenceJournal.Header header = new PresenceJournal.Header(identity, version, size, blockSize, granularity);
            PresenceBitmap presence = null;
            String discarded = null;
            long dropped = 0;
            byte[] saved = readIfExists(map);
            boolean hadJournal = Files.exists(journalFile);
            if (saved != null) {
                // An earlier lazyblock's clean close, newer than any journal beside it.
                try {
                    presence = parse(saved, identity, version, size, blockSize, granularity, granules);
                } catch (IOException e) {
                    discarded = e.getMessage();
                }
            } else {
                PresenceJournal.Replay r = PresenceJournal.replay(journalFile, header, granules);
                if (r != null) {
                    presence = r.presence();
                    discarded = r.discarded();
                    dropped = r.droppedBytes();
                }
            }
            fd = Libc.open(data.toString(), Libc.O_RDWR | Libc.O_CREAT | Libc.O_CLOEXEC, 0600);
            long found = Libc.fstat(fd).size();
            if (presence != null && found != size) {
                discarded = "the cache file has " + found + " bytes, the journal was written for " + size;
                presence = null;
            }
            if (keepWrites && discarded != null) {
                throw new IOException("overlay " + data + " of " + identity + " cannot be reopened: " + discarded
                        + "; its writes are kept as they are: move " + dir + " away to start a new overlay");
            }
            if (presence == null) {
                // Nothing in the file is vouched for: give its blocks back, then size it sparse.
                Libc.ftruncate(fd, 0);
                Libc.ftruncate(fd, size);
            }
            if (discarded != null) {
                log.warn("cache {} of {}: discarding its saved presence: {}", data, identity, discarded);
            } else if (saved == null && !hadJournal && found > 0) {
                log.info("cache {} of {}: a cache file without a journal: starting empty", data, identity);
            }
            if (dropped > 0) {
                log.info("cache {} of {}: {} bytes at the journal's end were torn by a crash and are ignored "
                        + "(their chunks are fetched again)", data, identity, dropped);
            }
            long restored = presence == null ? 0 : Math.min(size, presence.cardinality() * granularity);
            if (restored > 0) {
                log.info("cache {} of {}: {} of {} bytes present from earlier runs", data, identity, restored, size);
            }
            if (presence == null) {
                presence = new PresenceBitmap(granules);
            }
            // Durable before anything is served: the journal now describes exactly what is trusted.
            // A fresh one (no journal or map was there) vouches for nothing yet: synced at its
            // first commit instead.
            PresenceJournal journal = PresenceJournal.create(journalFile, header, presence, commitInterval,
                    data.getFileName().toString(), saved == null && !hadJournal, beforeFirstCommit);
            journal.attach(fd);
            if (saved != null) {
                Files.delete(map);
                PresenceJournal.fsyncDirectory(dir);
            }
            int owned = fd;
            fd = -1; // adopt owns it now, and closes it if mapping fails
            CountDownLatch released = new CountDownLatch(1);
            SparseCache cache = SparseCache.adopt(data.toString(), owned, size, blockSize, granularity,
                    presence, new Journaled(identity, journal, lockChannel, released));
            return new Opened(cache, restored, discarded, released, journal, dropped);
        } catch (IOException | RuntimeException e) {
            if (fd >= 0) {
                try {
                    Libc.close(fd);
                } catch (IOException suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            lockChannel.close(); // releases the lock
            throw e;
        }
    }

    private static Path tmpOf(Path map) {
        return map.resolveSibling(map.getFileName() + ".tmp");
    }

    private static byte[] readIfExists(Path map) throws IOException {
        try {
            return Files.readAllBytes(map);
        } catch (NoSuchFileException e) {
            return null;
        }
    }

    private static PresenceBitmap parse(byte[] saved, String identity, String version, long size, int blockSize,
                                        long granularity, long granules) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(saved);
        if (saved.length >= MAGIC_V1.length && java.util.Arrays.equals(saved, 0, MAGIC_V1.length, MAGIC_V1, 0,
                MAGIC_V1.length)) {
            throw new IOException("it was saved by an earlier lazyblock, which kept no version of the image");
        }
        if (saved.length < MAGIC.length + 4 || !java.util.Arrays.equals(saved, 0, MAGIC.length, MAGIC, 0, MAGIC.length)) {
            throw new IOException("not a presence map (bad magic or too short: " + saved.length + " bytes)");
        }
        CRC32C crc = new CRC32C();
        crc.update(saved, 0, saved.length - 4);
        int stored = b.getInt(saved.length - 4);
        if ((int) crc.getValue() != stored) {
            throw new IOException(String.format("the map is corrupt: CRC-32C %08x, stored %08x",
                    (int) crc.getValue(), stored));
        }
        try {
            b.position(MAGIC.length);
            byte[] id = new byte[b.getInt()];
            b.get(id);
            String savedId = new String(id, StandardCharsets.UTF_8);
            int versionLength = b.getInt();
            String savedVersion = null;
            if (versionLength >= 0) {
                byte[] v = new byte[versionLength];
                b.get(v);
                savedVersion = new String(v, StandardCharsets.UTF_8);
            }
            long savedSize = b.getLong();
            int savedBlock = b.getInt();
            long savedGranularity = b.getLong();
            if (!savedId.equals(identity)) {
                throw new IOException("it was saved for image '" + savedId + "', this is '" + identity + "'");
            }
            if (!java.util.Objects.equals(savedVersion, version)) {
                throw new IOException("the image changed: the map was saved for " + describe(savedVersion)
                        + ", the store now says " + describe(version));
            }
            if (savedSize != size) {
                throw new IOException("it was saved for an image of " + savedSize + " bytes, the image now has " + size);
            }
            if (savedBlock != blockSize || savedGranularity != granularity) {
                throw new IOException("it was saved with block " + savedBlock + " and granularity " + savedGranularity
                        + ", this cache has block " + blockSize + " and granularity " + granularity);
            }
            long runs = b.getLong();
            PresenceBitmap p = new PresenceBitmap(granules);
            for (long i = 0; i < runs; i++) {
                long from = b.getLong();
                long to = b.getLong();
                if (from < 0 || to > granules || from >= to) {
                    throw new IOException("run [" + from + ", " + to + ") is outside [0, " + granules + ")");
                }
                p.set(from, to);
            }
            if (b.remaining() != 4) {
                throw new IOException(b.remaining() - 4 + " stray bytes after " + runs + " runs");
            }
            return p;
        } catch (java.nio.BufferUnderflowException | NegativeArraySizeException | IndexOutOfBoundsException e) {
            throw new IOException("the map is truncated or malformed: " + e);
        }
    }

    private static String describe(String version) {
        return version == null ? "no version" : "version '" + version + "'";
    }

    /** Journals marks as they come, commits at flush and at the last release; releases the lock whatever happens. */
    private record Journaled(String identity, PresenceJournal journal, FileChannel lockChannel, CountDownLatch done)
            implements SparseCache.Persistence {
        @Override
        public void marked(long from, long to) {
            journal.marked(from, to);
        }

        @Override
        public void flush(int fd) throws IOException {
            journal.commit(fd, true);
        }

        @Override
        public void save(int fd, PresenceBitmap presence) throws IOException {
            journal.closeFinal(fd);
            log.debug("committed the presence journal of {} at close ({} granules present)", identity,
                    presence.cardinality());
        }

        @Override
        public void discard() throws IOException {
            journal.discard();
        }

        @Override
        public void released() {
            try {
                lockChannel.close(); // releases the lock
            } catch (IOException e) {
                log.warn("releasing the lock of the cache of {}: {}", identity, e.toString());
            } finally {
                done.countDown();
            }
        }
    }
}
