package dev.lazyblock.content;

import dev.lazyblock.frame.FrameCodec;
import dev.lazyblock.frame.FrameTable;
import dev.lazyblock.upstream.ObjectStore;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.LongConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Stores a file as content-addressed chunks under a store prefix and returns their
 * {@link ContentTable}: each chunk is read, compressed (if a codec is given), hashed, and
 * uploaded only if the store lacks an object of that name. All-zero chunks are stored nowhere;
 * a chunk repeated inside the file is uploaded once.
 *
 * <p>A failed write leaves the chunks it uploaded in place: they are named by their content, so
 * another layer may already reference them, and deleting one could break it. Unreferenced ones
 * are garbage for a collector to take.
 *
 * <p>{@code threads} chunks are worked on at once, each with its own buffers (at most
 * {@code 2 * threads} chunks in memory).
 */
public final class ContentWriter {
    private static final Logger log = LoggerFactory.getLogger(ContentWriter.class);

    private ContentWriter() {}

    /**
     * What a write did: chunks in the table, all-zero ones (stored nowhere), ones repeated
     * inside the file, ones the store already had, ones uploaded (and their bytes).
     */
    public record Result(ContentTable table, long chunks, long zeroChunks, long repeatedChunks, long presentChunks,
                         long uploadedChunks, long uploadedBytes) {
        @Override
        public String toString() {
            return chunks + " chunks of " + table.chunkSize() / 1024 + " KiB: " + uploadedChunks + " uploaded ("
                    + uploadedBytes + " bytes), " + presentChunks + " already in the store, " + repeatedChunks
                    + " repeated, " + zeroChunks + " zero";
        }
    }

    /**
     * @param codec    null (or id 0) to store chunks raw
     * @param progress told the bytes of the file done as it goes
     */
    public static Result write(Path file, long size, int chunkSize, FrameCodec codec, int threads, ObjectStore store,
                               String dir, LongConsumer progress) throws IOException {
        return write(file, size, chunkSize, codec, threads, store, dir, progress, null, null);
    }

    /**
     * {@link #write(Path, long, int, FrameCodec, int, ObjectStore, String, LongConsumer)} under an
     * export's lease ({@link ContentLocks}): taken before any chunk is checked, refreshed as the
     * chunks go (the caller keeps it until the header is written). Null: no lease (nothing
     * collects garbage under {@code dir} meanwhile). A {@code cipher} (null: none) encrypts each
     * chunk after compressing it ({@link ContentCipher}).
     */
    public static Result write(Path file, long size, int chunkSize, FrameCodec codec, int threads, ObjectStore store,
                               String dir, LongConsumer progress, ContentLocks.ExportLease lease, ContentCipher cipher)
            throws IOException {
        FrameCodec c = codec == null || codec.id() == 0 ? null : codec;
        int n = Math.toIntExact((size + chunkSize - 1) / chunkSize);
        byte[] hashes = new byte[Math.multiplyExact(n, ContentTable.HASH_BYTES)];
        int[] stored = new int[n];
        int[] crcs = new int[n];
        byte[] wrapped = cipher == null ? null : new byte[Math.multiplyExact(n, ContentCipher.WRAPPED_BYTES)];
        // A chunk's first writer in this file uploads it; the others count it as repeated.
        ConcurrentHashMap<ContentKey, Boolean> seen = new ConcurrentHashMap<>();
        LongAdder zero = new LongAdder();
        LongAdder repeated = new LongAdder();
        LongAdder present = new LongAdder();
        LongAdder uploaded = new LongAdder();
        LongAdder uploadedBytes = new LongAdder();
        int workers = Math.max(1, Math.min(threads, n));
        ExecutorService pool = Executors.newFixedThreadPool(workers,
                Thread.ofPlatform().daemon().name("lazyblock-content-", 0).factory());
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            List<Future<?>> inFlight = new ArrayList<>();
            ThreadLocal<Buffers> buffers = ThreadLocal.withInitial(() -> new Buffers(chunkSize, c, cipher != null));
            for (int i = 0; i < n; i++) {
                int chunk = i;
                inFlight.add(pool.submit(() -> {
                    Buffers b = buffers.get();
                    long off = (long) chunk * chunkSize;
                    int len = (int) Math.min(chunkSize, size - off);
                    MemorySegment raw = b.raw.asSlice(0, len);
                    readFully(ch, raw.asByteBuffer(), off, file);
                    // Not published for encrypted chunks: the tag authenticates them.
                    crcs[chunk] = cipher == null ? FrameTable.crc(raw.asByteBuffer()) : 0;
                    if (allZero(raw)) {
                        zero.increment(); // hash all zero, stored size 0
                    } else {
                        MemorySegment out = c == null ? raw : b.packed.asSlice(0, c.compress(raw, b.packed));
                        if (cipher != null) {
                            b.md.reset();
                            b.md.update(out.asByteBuffer());
                            byte[] key = cipher.chunkKey(b.md.digest());
                            out = b.sealed.asSlice(0, cipher.encrypt(key, out.asByteBuffer(), b.sealed.asByteBuffer()));
                            System.arraycopy(cipher.wrap(key), 0, wrapped, chunk * ContentCipher.WRAPPED_BYTES,
                                    ContentCipher.WRAPPED_BYTES);
                        }
                        b.md.reset();
                        b.md.update(out.asByteBuffer());
                        byte[] digest = b.md.digest();
                        System.arraycopy(digest, 0, hashes, chunk * ContentTable.HASH_BYTES, ContentTable.HASH_BYTES);
                        stored[chunk] = (int) out.byteSize();
                        ContentKey key = ContentKey.of(digest);
                        if (seen.putIfAbsent(key, Boolean.TRUE) != null) {
                            repeated.increment();
                        } else {
                            String objectKey = key.objectKey(dir);
                            if (store.exists(objectKey)) {
                                present.increment();
                            } else {
                                store.put(objectKey, out.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
                                uploaded.increment();
                                uploadedBytes.add(out.byteSize());
                            }
                        }
                    }
                    progress.accept(len);
                    return null;
                }));
                if (inFlight.size() >= 2 * workers) {
                    await(inFlight.removeFirst());
                    if (lease != null) {
                        lease.refresh();
                    }
                }
            }
            for (Future<?> f : inFlight) {
                await(f);
            }
        } finally {
            pool.shutdownNow();
        }
        ContentTable table = new ContentTable(chunkSize, c == null ? 0 : c.id(), size, hashes, stored, crcs, wrapped);
        Result r = new Result(table, n, zero.sum(), repeated.sum(), present.sum(), uploaded.sum(), uploadedBytes.sum());
        log.info("stored {} in {} under {}: {}", file.getFileName(), store.name(), dir.isEmpty() ? "/" : dir, r);
        return r;
    }

    /** One worker's chunk buffers and digest. */
    private static final class Buffers {
        final MemorySegment raw;
        final MemorySegment packed;
        final MemorySegment sealed;
        final MessageDigest md;

        Buffers(int chunkSize, FrameCodec codec, boolean encrypt) {
            Arena arena = Arena.ofAuto();
            raw = arena.allocate(chunkSize, 4096);
            packed = codec == null ? null : arena.allocate(codec.maxCompressedLength(chunkSize), 4096);
            sealed = !encrypt ? null : arena.allocate((codec == null ? chunkSize : codec.maxCompressedLength(chunkSize))
                    + ContentCipher.TAG_BYTES, 4096);
            try {
                md = MessageDigest.getInstance("SHA-256");
            } catch (NoSuchAlgorithmException e) {
                throw new AssertionError("every JDK has SHA-256", e);
            }
        }
    }

    private static final MemorySegment ZEROS = Arena.global().allocate(64 << 10);

    private static boolean allZero(MemorySegment s) {
        long len = s.byteSize();
        for (long pos = 0; pos < len; pos += ZEROS.byteSize()) {
            long n = Math.min(ZEROS.byteSize(), len - pos);
            if (MemorySegment.mismatch(s, pos, pos + n, ZEROS, 0, n) != -1) {
                return false;
            }
        }
        return true;
    }

    private static void readFully(FileChannel ch, ByteBuffer dst, long pos, Path file) throws IOException {
        while (dst.hasRemaining()) {
            int n = ch.read(dst, pos);
            if (n < 0) {
                throw new IOException(file + " ended at " + pos + " while it was being stored (did it shrink?)");
            }
            pos += n;
        }
    }

    private static void await(Future<?> f) throws IOException {
        try {
            f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while storing chunks");
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof IOException io) {
                throw io;
            }
            if (cause instanceof RuntimeException re) {
                throw re;
            }
            throw new IOException(cause);
        }
    }
}
