package dev.lazyblock.chunker;

import dev.lazyblock.content.ContentKey;
import java.io.Closeable;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.UUID;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.zip.CRC32C;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A chunk cache shared by many hosts: a directory (NFS in production) of chunk files keyed by
 * build and chunk, {@code <dir>/<build>/<chunk>.chunk}, between each host's local cache and the
 * bucket. A miss reads the tier first; a chunk fetched from the bucket is written to it in the
 * background, once it arrived whole and was verified.
 *
 * <p>A tier file is the chunk's stored bytes followed by an 8-byte trailer: the CRC-32C of the
 * bytes and the magic {@code "LZBT"}, so a truncated or corrupt file is detected without the
 * layer's header; a compressed frame's bytes are also checked against the header's CRC by the
 * caller. A file appears under its final name only whole: it is written under a temporary name
 * unique to this writer and renamed into place (atomic on a local file system and on NFS), so
 * two hosts filling the same chunk leave one good file, whichever rename comes last.
 *
 * <p>Write-behind is best effort: a bounded queue, and a chunk is dropped (not written) when the
 * queue is full or the write fails. Thread-safe.
 */
public final class ChunkTier implements Closeable {
    private static final Logger log = LoggerFactory.getLogger(ChunkTier.class);
    private static final int TRAILER = 8;
    private static final int MAGIC = 0x54_42_5A_4C; // "LZBT" little-endian
    private static final String SUFFIX = ".chunk";

    private final Path dir;
    /** One thread: the tier is a single NFS mount; more writers would only contend for it. */
    private final ThreadPoolExecutor writer;
    private final LongAdder hits = new LongAdder();
    private final LongAdder misses = new LongAdder();
    private final LongAdder bad = new LongAdder();
    private final LongAdder written = new LongAdder();
    private final LongAdder dropped = new LongAdder();
    /** Writes queued or running; {@link #awaitWrites} waits for zero. */
    private final AtomicLong pending = new AtomicLong();
    private final Object idle = new Object();
    private volatile TierListener listener = TierListener.NONE;
    /** Set once by {@link #budget(DiskBudget)}; null: unbounded. */
    private volatile DiskBudget budget;

    /** Told about tier files written and read: what a disk budget tracks. */
    public interface TierListener {
        TierListener NONE = new TierListener() { };

        default void written(String build, Path file, long bytes) { }

        default void read(String build) { }
    }

    public ChunkTier(Path dir) throws IOException {
        this(dir, 256);
    }

    /** @param queue chunks that may wait to be written; more are dropped */
    public ChunkTier(Path dir, int queue) throws IOException {
        this.dir = Files.createDirectories(dir);
        this.writer = new ThreadPoolExecutor(1, 1, 30, TimeUnit.SECONDS, new ArrayBlockingQueue<>(queue),
                Thread.ofPlatform().daemon().name("lazyblock-tier-writer").factory(),
                (task, pool) -> { throw new java.util.concurrent.RejectedExecutionException("tier queue full"); });
        writer.allowCoreThreadTimeOut(true);
    }

    public Path dir() {
        return dir;
    }

    /** Puts this tier under {@code b} (see {@link DiskBudget#govern}). */
    public void budget(DiskBudget b) throws IOException {
        b.govern(this);
        this.budget = b;
    }

    /** The budget this tier is under, or null. */
    public DiskBudget budget() {
        return budget;
    }

    public void listener(TierListener l) {
        this.listener = l == null ? TierListener.NONE : l;
    }

    /** Where chunk {@code chunk} of {@code build} lives. */
    public Path file(String build, long chunk) {
        return dir.resolve(build).resolve(chunk + SUFFIX);
    }

    /** The directory of one build's chunk files. */
    public Path buildDir(String build) {
        return dir.resolve(build);
    }

    /**
     * Reads chunk {@code chunk} of {@code build} into {@code dst} (its exact stored size).
     *
     * @return true if the tier held a whole file whose trailer checksum matches; false if it held
     *         none, or a truncated or corrupt one (counted, and replaced by the next write)
     */
    public boolean read(String build, long chunk, MemorySegment dst) {
        return read(file(build, chunk), build, dst);
    }

    /**
     * Content-addressed chunks are kept by their hash, whichever build they came from: in
     * {@code <dir>/content-<first 2 hex>/<hash>.chunk}, 256 groups the disk budget counts and
     * evicts like builds (nobody pins them: a chunk a reader still needs is refetched).
     */
    public static String contentGroup(ContentKey key) {
        return "content-" + key.hex().substring(0, 2);
    }

    /** Where the content-addressed chunk {@code key} lives. */
    public Path file(ContentKey key) {
        return dir.resolve(contentGroup(key)).resolve(key.hex() + SUFFIX);
    }

    /** {@link #read(String, long, MemorySegment)} of the content-addressed chunk {@code key}. */
    public boolean read(ContentKey key, MemorySegment dst) {
        return read(file(key), contentGroup(key), dst);
    }

    /** {@link #writeBehind(String, long, MemorySegment)} of the content-addressed chunk {@code key}. */
    public void writeBehind(ContentKey key, MemorySegment src) {
        writeBehind(file(key), contentGroup(key), key.hex(), src);
    }

    private boolean read(Path f, String build, MemorySegment dst) {
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size != dst.byteSize() + TRAILER) {
                bad.increment();
                log.warn("tier file {} has {} bytes, expected {}: ignored", f, size, dst.byteSize() + TRAILER);
                return false;
            }
            ByteBuffer body = dst.asByteBuffer();
            readFully(ch, body, 0);
            ByteBuffer trailer = ByteBuffer.allocate(TRAILER).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, trailer, dst.byteSize());
            int stored = trailer.getInt(0);
            int magic = trailer.getInt(4);
            int crc = crc(dst.asByteBuffer());
            if (magic != MAGIC || crc != stored) {
                bad.increment();
                log.warn("tier file {} fails its checksum (CRC-32C {}, trailer says {}, magic {}): ignored", f,
                        Integer.toHexString(crc), Integer.toHexString(stored), Integer.toHexString(magic));
                return false;
            }
            hits.increment();
            listener.read(build);
            return true;
        } catch (NoSuchFileException e) {
            misses.increment();
            return false;
        } catch (IOException e) {
            bad.increment();
            log.warn("tier file {} unreadable: {}", f, e.toString());
            return false;
        }
    }

    /**
     * Queues {@code src} (copied before this returns) to be written as chunk {@code chunk} of
     * {@code build}. Call only with bytes that arrived whole and were verified.
     */
    public void writeBehind(String build, long chunk, MemorySegment src) {
        writeBehind(file(build, chunk), build, chunk + " of build " + build, src);
    }

    private void writeBehind(Path target, String build, String what, MemorySegment src) {
        byte[] copy = src.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        pending.incrementAndGet();
        try {
            writer.execute(() -> {
                try {
                    write(target, build, copy);
                } catch (IOException | RuntimeException e) {
                    dropped.increment();
                    log.warn("writing chunk {} to the tier {} failed: {}", what, dir, e.toString());
                } finally {
                    done();
                }
            });
        } catch (java.util.concurrent.RejectedExecutionException e) {
            dropped.increment();
            done();
        }
    }

    private void done() {
        if (pending.decrementAndGet() == 0) {
            synchronized (idle) {
                idle.notifyAll();
            }
        }
    }

    /**
     * Writes one chunk file now: to a temporary name unique to this writer, then renamed into
     * place, replacing whatever is there (called after a miss, so what is there is missing,
     * bad, or a good copy another host wrote meanwhile: replacing that is harmless).
     */
    public void write(String build, long chunk, byte[] bytes) throws IOException {
        write(file(build, chunk), build, bytes);
    }

    private void write(Path target, String build, byte[] bytes) throws IOException {
        Path parent = Files.createDirectories(target.getParent());
        Path tmp = parent.resolve("." + target.getFileName() + "." + UUID.randomUUID() + ".tmp");
        ByteBuffer trailer = ByteBuffer.allocate(TRAILER).order(ByteOrder.LITTLE_ENDIAN);
        trailer.putInt(crc(ByteBuffer.wrap(bytes))).putInt(MAGIC).flip();
        try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            ByteBuffer body = ByteBuffer.wrap(bytes);
            while (body.hasRemaining()) {
                ch.write(body);
            }
            while (trailer.hasRemaining()) {
                ch.write(trailer);
            }
            // Data before name: after a crash the name must never point at blocks not yet written.
            ch.force(false);
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.deleteIfExists(tmp);
            throw new IOException("the tier " + dir + " cannot rename atomically; nothing written", e);
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(tmp);
            throw e;
        }
        written.increment();
        listener.written(build, target, bytes.length + TRAILER);
    }

    /** Waits until every queued write has ended (written or dropped). For tests and shutdown. */
    public void awaitWrites(long timeoutMillis) throws InterruptedException {
        long deadline = System.currentTimeMillis() + timeoutMillis;
        synchronized (idle) {
            while (pending.get() != 0) {
                long left = deadline - System.currentTimeMillis();
                if (left <= 0) {
                    throw new IllegalStateException(pending.get() + " tier writes still pending after " + timeoutMillis
                            + " ms");
                }
                idle.wait(left);
            }
        }
    }

    public long hits() {
        return hits.sum();
    }

    public long misses() {
        return misses.sum();
    }

    /** Truncated, corrupt or unreadable files met (and ignored). */
    public long bad() {
        return bad.sum();
    }

    public long written() {
        return written.sum();
    }

    public long dropped() {
        return dropped.sum();
    }

    private static int crc(ByteBuffer b) {
        CRC32C c = new CRC32C();
        c.update(b);
        return (int) c.getValue();
    }

    private static void readFully(FileChannel ch, ByteBuffer dst, long pos) throws IOException {
        while (dst.hasRemaining()) {
            int n = ch.read(dst, pos);
            if (n < 0) {
                throw new IOException("ended early");
            }
            pos += n;
        }
    }

    /** Waits for queued writes (up to 10 s), then stops the writer. */
    @Override
    public void close() {
        try {
            awaitWrites(10_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (IllegalStateException e) {
            log.warn("closing the tier {}: {}", dir, e.getMessage());
        }
        writer.shutdown();
    }

    @Override
    public String toString() {
        return "ChunkTier[" + dir + ", " + hits() + " hits, " + misses() + " misses, " + bad() + " bad, " + written()
                + " written]";
    }
}
