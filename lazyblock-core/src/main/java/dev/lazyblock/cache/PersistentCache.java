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
 * A {@link SparseCache} that outlives the process: per image, a named cache file and a saved
 * presence map in a directory, so bytes fetched by one run (a {@code warm}) are hits for the next.
 *
 * <p>Files, named by a hash of the image's identity ({@code <key>} below):
 * <ul>
 *   <li>{@code <key>.cache}: the bytes, sparse, the image's size;</li>
 *   <li>{@code <key>.presence}: which granules hold valid bytes. It exists only between a clean
 *       close and the next open: written at close after the data is fsynced (to a temporary name,
 *       fsynced, renamed, the directory fsynced), and deleted at open, before anything is served.
 *       So a run that crashes leaves no map, and the next run trusts nothing in the file;</li>
 *   <li>{@code <key>.lock}: held with an exclusive lock while the cache is open. A second open, in
 *       this process or another, fails instead of two writers sharing one file.</li>
 * </ul>
 *
 * <p>A map is trusted only if it is intact (CRC-32C), names the same identity, size, block size and
 * granularity, and the cache file has the image's size; otherwise it is discarded with a logged
 * reason and the file's old blocks are released. The identity is what the caller knows of the
 * image (its name; the key hashes only that, so an image whose size changed replaces its old cache
 * instead of leaving it beside). The version is what the store says of the object's bytes (an
 * ETag, a generation; see {@link dev.lazyblock.upstream.Upstream#version}): an object rewritten
 * under the same name, even at the same size, has another, and its saved map is discarded.
 */
public final class PersistentCache {
    private static final Logger log = LoggerFactory.getLogger(PersistentCache.class);

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

        Opened(SparseCache cache, long restoredBytes, String discarded, CountDownLatch released) {
            this.cache = cache;
            this.restoredBytes = restoredBytes;
            this.discarded = discarded;
            this.released = released;
        }

        /** The cache, owned by the caller (or by the chunker it is given to): closing it saves the map. */
        public SparseCache cache() {
            return cache;
        }

        /** Bytes marked present from the saved map (0 when nothing was trusted). */
        public long restoredBytes() {
            return restoredBytes;
        }

        /** Why a saved map was not trusted, or null (none found, or it was trusted). */
        public String discarded() {
            return discarded;
        }

        /**
         * Waits until the closed cache is freed: its map saved (unless it failed) and its lock
         * released. A close returns at once, but fetches still writing hold the cache until they
         * end (see {@link SparseCache#retain()}), and the map is saved by the last of them.
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
     * Opens (creating if need be) the persistent cache of {@code identity} in {@code dir}. A map
     * saved for another {@code version} (null: the store tells none) is discarded.
     *
     * @throws IOException if another open holds it (in this process or another), or the files
     *                     cannot be created, read or mapped
     */
    public static Opened open(Path dir, String identity, String version, long size, int blockSize,
                              long granularity) throws IOException {
        SparseCache.checkGeometry(size, blockSize, granularity);
        Files.createDirectories(dir);
        String key = key(identity);
        Path data = dir.resolve(key + ".cache");
        Path map = dir.resolve(key + ".presence");
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
            PresenceBitmap presence = null;
            String discarded = null;
            byte[] saved = consume(map, dir);
            if (saved != null) {
                try {
                    presence = parse(saved, identity, version, size, blockSize, granularity, granules);
                } catch (IOException e) {
                    discarded = e.getMessage();
                }
            }
            fd = Libc.open(data.toString(), Libc.O_RDWR | Libc.O_CREAT | Libc.O_CLOEXEC, 0600);
            long found = Libc.fstat(fd).size();
            if (presence != null && found != size) {
                discarded = "the cache file has " + found + " bytes, the map was saved for " + size;
                presence = null;
            }
            if (presence == null) {
                // Nothing in the file is vouched for: give its blocks back, then size it sparse.
                Libc.ftruncate(fd, 0);
                Libc.ftruncate(fd, size);
            }
            if (discarded != null) {
                log.warn("cache {} of {}: discarding its saved presence map: {}", data, identity, discarded);
            } else if (saved == null && found > 0) {
                log.info("cache {} of {}: no saved presence map (the last run did not close it cleanly): "
                        + "starting empty", data, identity);
            }
            long restored = presence == null ? 0 : Math.min(size, presence.cardinality() * granularity);
            if (presence != null) {
                log.info("cache {} of {}: {} of {} bytes present from an earlier run", data, identity, restored, size);
            }
            int owned = fd;
            fd = -1; // adopt owns it now, and closes it if mapping fails
            CountDownLatch released = new CountDownLatch(1);
            SparseCache cache = SparseCache.adopt(data.toString(), owned, size, blockSize, granularity,
                    presence, new Saver(identity, version, size, blockSize, granularity, map, dir, lockChannel,
                            released));
            return new Opened(cache, restored, discarded, released);
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

    /**
     * Reads and deletes the saved map, the deletion made durable before anything is served: if
     * this run crashes, the next one must not find a map describing bytes this run may have
     * changed since.
     */
    private static byte[] consume(Path map, Path dir) throws IOException {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(map);
        } catch (NoSuchFileException e) {
            return null;
        }
        Files.delete(map);
        fsyncDirectory(dir);
        return bytes;
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

    private static byte[] serialize(String identity, String version, long size, int blockSize, long granularity,
                                    PresenceBitmap p) {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        try (DataOutputStream out = new DataOutputStream(buf)) {
            out.write(MAGIC);
            byte[] id = identity.getBytes(StandardCharsets.UTF_8);
            out.writeInt(id.length);
            out.write(id);
            if (version == null) {
                out.writeInt(-1);
            } else {
                byte[] v = version.getBytes(StandardCharsets.UTF_8);
                out.writeInt(v.length);
                out.write(v);
            }
            out.writeLong(size);
            out.writeInt(blockSize);
            out.writeLong(granularity);
            ByteArrayOutputStream runs = new ByteArrayOutputStream();
            DataOutputStream r = new DataOutputStream(runs);
            long count = 0;
            for (long g = p.nextSet(0); g >= 0; ) {
                long end = p.nextClear(g);
                r.writeLong(g);
                r.writeLong(end);
                count++;
                g = end < p.granules() ? p.nextSet(end) : -1;
            }
            out.writeLong(count);
            runs.writeTo(out);
        } catch (IOException e) {
            throw new AssertionError("in-memory streams do not fail", e);
        }
        byte[] body = buf.toByteArray();
        CRC32C crc = new CRC32C();
        crc.update(body);
        return ByteBuffer.allocate(body.length + 4).put(body).putInt((int) crc.getValue()).array();
    }

    private static void fsyncDirectory(Path dir) throws IOException {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        }
    }

    /** Saves the map at a clean close; releases the lock whatever happens. */
    private record Saver(String identity, String version, long size, int blockSize, long granularity, Path map, Path dir,
                         FileChannel lockChannel, CountDownLatch done) implements SparseCache.Persistence {
        @Override
        public void save(int fd, PresenceBitmap presence) throws IOException {
            // The bytes first: a map on disk must never describe bytes that are not.
            Libc.fsync(fd);
            Path tmp = tmpOf(map);
            try (FileChannel out = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING)) {
                ByteBuffer b = ByteBuffer.wrap(serialize(identity, version, size, blockSize, granularity, presence));
                while (b.hasRemaining()) {
                    out.write(b);
                }
                out.force(true);
            }
            try {
                Files.move(tmp, map, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.deleteIfExists(tmp);
                throw e;
            }
            fsyncDirectory(dir);
            log.debug("saved the presence map of {} ({} granules present)", identity, presence.cardinality());
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
