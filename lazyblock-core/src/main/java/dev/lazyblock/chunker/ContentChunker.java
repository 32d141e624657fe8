package dev.lazyblock.chunker;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.content.ContentCache;
import dev.lazyblock.content.ContentCipher;
import dev.lazyblock.content.ContentIndex;
import dev.lazyblock.content.ContentKey;
import dev.lazyblock.content.ContentObjects;
import dev.lazyblock.content.ContentTable;
import dev.lazyblock.content.CorruptChunkException;
import dev.lazyblock.frame.FrameCodec;
import dev.lazyblock.frame.FrameTable;
import dev.lazyblock.upstream.ObjectStore;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/**
 * Serves a content-addressed build ({@link ContentTable}): a chunk is one object, named by the
 * SHA-256 of its stored bytes. A miss looks for the chunk, in this order, in another open cache
 * of this host that holds the same content ({@link ContentIndex}), in the shared tier (kept by
 * hash, whichever build put it there), and in the store (one ranged read of the whole object);
 * bytes from the tier or the store are hashed and must match their name, are decompressed
 * (compressed chunks), and must match their uncompressed CRC-32C, and only then are they written
 * into the cache, released and marked present. An all-zero chunk is fetched from nowhere.
 *
 * <p>Encrypted chunks ({@link ContentCipher}) are checked against their name, then decrypted
 * with their unwrapped key (the tag authenticates them again), then decompressed.
 *
 * <p>A chunk that fails a check fails every waiter with {@link CorruptChunkException}, writes and
 * marks nothing, and the next read fetches it again; a bad tier copy is ignored and replaced.
 */
public final class ContentChunker extends AbstractChunker {
    private static final ThreadLocal<MessageDigest> SHA256 = ThreadLocal.withInitial(() -> {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError("every JDK has SHA-256", e);
        }
    });

    private final String build;
    private final ContentTable table;
    /** Null for chunks stored raw. */
    private final FrameCodec codec;
    private final ChunkTier tier;
    /** Null: no sharing between this host's open builds. */
    private final ContentIndex index;
    /** Null unless the chunks are encrypted. */
    private final ContentCipher cipher;
    /**
     * Null: chunks are copied into this build's cache. Else the host's files by hash, mapped into
     * it; never for encrypted chunks, whose plain bytes have no published checksum to trust a file by.
     */
    private final ContentCache files;

    /**
     * @param store where the chunk objects are
     * @param dir   the store prefix they live under (the header's directory)
     * @param build names the build in errors: its id
     * @param codec the table's codec, null for raw chunks
     * @param tier  a shared chunk tier, or null
     */
    public ContentChunker(ObjectStore store, String dir, String build, ContentTable table, FrameCodec codec,
                          SparseCache cache, ChunkerOptions options, ChunkTier tier) {
        super(new ContentObjects(store, dir, table), table.size(), cache, options.withChunkSize(table.chunkSize()));
        if ((codec == null) != (table.codec() == 0) || codec != null && codec.id() != table.codec()) {
            throw new IllegalArgumentException("build " + build + " stores its chunks with codec " + table.codec()
                    + ", not " + (codec == null ? "raw" : codec.name() + " (" + codec.id() + ")"));
        }
        this.build = build;
        this.table = table;
        this.codec = codec;
        this.tier = tier;
        // Encrypted chunks are never shared through the host: their plain bytes are keyed by the
        // hash of a tenant's ciphertext, which any header can name, so another build must get them
        // only by decrypting the object with its own secret, never from a peer's cache.
        this.index = table.encrypted() ? null : options.contentIndex();
        this.cipher = table.encrypted() ? options.contentCipher() : null;
        this.files = table.encrypted() || cache.persistent() ? null : options.contentCache();
        if (table.encrypted() && cipher == null) {
            throw new IllegalArgumentException("build " + build + " is encrypted: it can be read only with its tenant's "
                    + "secret (ChunkerOptions.withContentCipher; serve and warm: LAZYBLOCK_CONTENT_SECRET; the "
                    + "daemon: a create request's \"tenant\")");
        }
        if (cipher != null) {
            checkTenant(build, table, cipher);
        }
        if (index != null) {
            // A kept cache: what it already holds is there for the other builds at once.
            for (int i = 0; i < table.chunks(); i++) {
                if (!table.isZero(i) && cache.isCached(table.uncompressedOffset(i), table.uncompressedSize(i))) {
                    share(i);
                }
            }
        }
    }

    public ContentTable table() {
        return table;
    }

    /** Per fetch thread, shared with {@link FrameChunker}: 0 stored bytes, 1 uncompressed, 2 decrypted compressed. */
    private static MemorySegment buffer(int which, int len) {
        return FrameChunker.buffer(which, len);
    }

    @Override
    Session newSession(long chunk) {
        return new ProgressSession(this, chunk) {
            @Override
            void fetch() throws IOException {
                if (fetchChunk(this, (int) chunkIndex) && index != null) {
                    // Before the readers are released, so whoever read it finds it shared; a peer
                    // that looks before the chunk is marked finds it not present and fetches.
                    share((int) chunkIndex);
                }
                advance(chunkLen);
                complete();
            }
        };
    }

    /** @return whether the chunk's bytes are now in the cache (false: a zero chunk, or the session ended) */
    private boolean fetchChunk(Session session, int i) throws IOException {
        if (table.isZero(i)) {
            return false; // the cache reads as zeros where nothing was written
        }
        long off = table.uncompressedOffset(i);
        int len = table.uncompressedSize(i);
        ContentKey key = table.key(i);
        if (files != null) {
            int crc = table.uncompressedCrc(i);
            if (files.mapInto(key, cache, off, len, bytes -> FrameTable.crc(bytes.asByteBuffer()) == crc)) {
                return true; // a local hit: the content cache counts it
            }
        }
        MemorySegment out = buffer(1, len);
        // A peer's bytes are checked against this header's CRC too: a header naming a hash it did
        // not come by honestly gets nothing from another build's cache.
        if (index != null && index.copyTo(key, out) && FrameTable.crc(out.asByteBuffer()) == table.uncompressedCrc(i)) {
            land(key, out, off);
            return true;
        }
        MemorySegment in = codec == null && cipher == null ? out : buffer(0, table.storedSize(i));
        if (tier != null) {
            boolean hit = tier.read(key, in);
            if (hit) {
                CorruptChunkException bad = decode(i, key, in, out, "the shared tier");
                if (bad == null) {
                    metrics.tierRead(true, in.byteSize());
                    land(key, out, off);
                    return true;
                }
                log.warn("shared tier copy of chunk {} of build {} is bad, fetching from the store: {}", i, build,
                        bad.getMessage());
            }
            metrics.tierRead(false, 0);
        }
        if (!readTracked(session, (long) i * table.chunkSize(), in.asByteBuffer())) {
            return false; // the session ended (timed out, closed) before the request went out
        }
        CorruptChunkException bad = decode(i, key, in, out, upstream.name());
        if (bad != null) {
            throw bad;
        }
        land(key, out, off);
        if (tier != null) {
            tier.writeBehind(key, in); // copies the bytes before returning: the buffer is reused
        }
        return true;
    }

    /** Puts a checked chunk's bytes into this build's cache: as the host's file mapped in, or else a copy. */
    private void land(ContentKey key, MemorySegment out, long off) throws IOException {
        if (files == null || !files.storeAndMap(key, out, cache, off)) {
            cache.writeAt(out, off);
        }
    }

    /**
     * Fails an open with another tenant's secret at once, rather than at each read: a chunk key
     * wrapped with one secret does not unwrap with another (AES key wrap carries its own check).
     */
    private static void checkTenant(Object build, ContentTable table, ContentCipher cipher) {
        for (int i = 0; i < table.chunks(); i++) {
            if (table.isZero(i)) {
                continue;
            }
            try {
                cipher.unwrap(table.wrappedKey(i));
            } catch (GeneralSecurityException e) {
                throw new IllegalArgumentException("build " + build + " was not encrypted with this tenant's secret: "
                        + "its chunk keys do not unwrap with it");
            }
            return;
        }
    }

    /** Checks chunk {@code i}'s stored bytes against its name, decompresses them; null once {@code out} holds it. */
    private CorruptChunkException decode(int i, ContentKey key, MemorySegment in, MemorySegment out, String from) {
        MessageDigest md = SHA256.get();
        md.reset();
        md.update(in.asByteBuffer());
        byte[] digest = md.digest();
        if (!table.matches(i, digest)) {
            return corrupt(i, key, "its " + in.byteSize() + " bytes from " + from + " hash to "
                    + ContentKey.of(digest).hex() + ", not to their name");
        }
        MemorySegment packed = in;
        if (cipher != null) {
            packed = codec == null ? out : buffer(2, (int) in.byteSize() - ContentCipher.TAG_BYTES);
            try {
                int n = cipher.decrypt(cipher.unwrap(table.wrappedKey(i)), in.asByteBuffer(), packed.asByteBuffer());
                if (n != packed.byteSize()) {
                    return corrupt(i, key, "it decrypted to " + n + " bytes, expected " + packed.byteSize());
                }
            } catch (GeneralSecurityException e) {
                return corrupt(i, key, "it does not decrypt with this tenant's secret (" + e.getClass().getSimpleName()
                        + ")");
            }
        }
        if (codec != null) {
            int n;
            try {
                n = codec.decompress(packed, out);
            } catch (IOException | RuntimeException | AssertionError e) {
                return corrupt(i, key, codec.name() + " could not decompress it: " + e);
            }
            if (n != out.byteSize()) {
                return corrupt(i, key, codec.name() + " decompressed it to " + n + " bytes, expected " + out.byteSize());
            }
        }
        int crc = cipher != null ? 0 : FrameTable.crc(out.asByteBuffer()); // the tag authenticated it
        if (crc != table.uncompressedCrc(i)) {
            return corrupt(i, key, String.format("CRC-32C of the uncompressed bytes is %08x, the header says %08x", crc,
                    table.uncompressedCrc(i)));
        }
        return null;
    }

    private CorruptChunkException corrupt(int i, ContentKey key, String why) {
        return new CorruptChunkException(build, i, key, why);
    }

    /** Tells the index this cache holds chunk {@code i}; undone at once if the cache closed meanwhile. */
    private void share(int i) {
        ContentKey key = table.key(i);
        long off = table.uncompressedOffset(i);
        index.add(key, cache, off, table.uncompressedSize(i));
        // close() marks the cache closed before it removes this cache's entries: either it
        // removes this one, or this check sees the cache closed and removes it.
        if (cache.isClosed()) {
            index.remove(key, cache, off);
        }
    }

    @Override
    public void close() {
        super.close();
        if (index != null) {
            for (int i = 0; i < table.chunks(); i++) {
                if (!table.isZero(i)) {
                    index.remove(table.key(i), cache, table.uncompressedOffset(i));
                }
            }
        }
    }
}
