package dev.lazyblock.device;

import dev.lazyblock.cache.DiffMetadata;
import dev.lazyblock.cache.PresenceBitmap;
import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.content.ContentCipher;
import dev.lazyblock.content.ContentLocks;
import dev.lazyblock.content.ContentTable;
import dev.lazyblock.content.ContentWriter;
import dev.lazyblock.device.LayerHeader.Build;
import dev.lazyblock.device.LayerHeader.Mapping;
import dev.lazyblock.frame.FrameCodec;
import dev.lazyblock.frame.FrameCodecs;
import dev.lazyblock.frame.FrameTable;
import dev.lazyblock.frame.FrameWriter;
import dev.lazyblock.upstream.ObjectStore;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.function.LongConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Turns an overlay's written blocks into a new layer on top of its parent: a diff object with
 * the blocks that changed, and a header that maps them over the parent's mappings.
 *
 * <p>Blocks written with the bytes the parent already has are not stored again; written blocks
 * that are all zeros are mapped as zeros, not stored. The diff is uploaded before the header, so
 * a reader never finds a header whose diff is missing, and a failed upload leaves no header.
 */
public final class LayerExporter {
    private static final Logger log = LoggerFactory.getLogger(LayerExporter.class);

    private LayerExporter() {}

    /** What an export produced; {@code content} is what it uploaded of a content-addressed build's chunks (else null). */
    public record Layer(LayerHeader header, String headerKey, String diffKey, long diffBytes, long headerBytes,
                        long dirtyBlocks, long storedBlocks, long zeroBlocks, long unchangedBlocks,
                        ContentWriter.Result content) {

        /** Bytes of the new build's diff object in the store: {@link #diffBytes} unless compressed. */
        public long storedBytes() {
            for (Build b : header.builds()) {
                if (b.id().equals(header.buildId())) {
                    return b.storedSize();
                }
            }
            return 0;
        }
    }

    /**
     * How a new build's diff is stored: raw ({@link #NONE}: header version 1, as before) or in
     * frames of {@code frameSize} uncompressed bytes compressed with {@code codec}, by
     * {@code threads} threads, staged in {@code scratch}.
     */
    public record Compression(FrameCodec codec, int frameSize, int threads, Path scratch) {
        public static final Compression NONE = new Compression(null, 0, 0, null);

        public static Compression of(FrameCodec codec, Path scratch) {
            if (codec == null || codec == FrameCodecs.NONE) {
                return NONE;
            }
            return new Compression(codec, FrameTable.DEFAULT_FRAME_SIZE,
                    Math.max(1, Runtime.getRuntime().availableProcessors()), scratch);
        }

        public boolean enabled() {
            return codec != null;
        }
    }

    /**
     * Whether a new build is stored as one diff object ({@link #NONE}) or as content-addressed
     * chunks of {@code chunkSize} bytes, each an object named by its hash under the layer's
     * directory, uploaded only when the store lacks it (header version 3). A {@link Compression}
     * then compresses chunk by chunk (its frame size does not apply); a {@code cipher} (null:
     * none) encrypts each chunk after that.
     */
    public record ContentAddressing(int chunkSize, ContentCipher cipher) {
        public static final ContentAddressing NONE = new ContentAddressing(0, null);

        public ContentAddressing {
            if (chunkSize != 0 && (chunkSize < ContentTable.MIN_CHUNK_SIZE || chunkSize > ContentTable.MAX_CHUNK_SIZE
                    || Integer.bitCount(chunkSize) != 1)) {
                throw new IllegalArgumentException("content chunk size must be a power of two in ["
                        + ContentTable.MIN_CHUNK_SIZE / 1024 + " KiB, " + (ContentTable.MAX_CHUNK_SIZE >> 20)
                        + " MiB], is " + chunkSize);
            }
        }

        public static ContentAddressing of(int chunkSize) {
            return new ContentAddressing(chunkSize, null);
        }

        /**
         * The chunks encrypted convergently with a tenant's {@code cipher}: the same chunk is the
         * same object within the tenant (dedup), another tenant's is another; readers need it.
         */
        public ContentAddressing encrypted(ContentCipher cipher) {
            return new ContentAddressing(chunkSize, java.util.Objects.requireNonNull(cipher, "cipher"));
        }

        public boolean enabled() {
            return chunkSize != 0;
        }

        void check(int blockSize) {
            if (enabled() && chunkSize % blockSize != 0) {
                throw new IllegalArgumentException("content chunk size " + chunkSize + " is not a multiple of the block "
                        + "size " + blockSize);
            }
        }

        /** Chunks hashed and uploaded at once: the work is mostly waiting on the store. */
        int threads(Compression compression) {
            return Math.max(4, compression.enabled() ? compression.threads() : Runtime.getRuntime().availableProcessors());
        }
    }

    /**
     * Publishes a raw image file as a base layer: the file becomes build {@code id}'s diff and a
     * header maps the whole image to it.
     */
    public static Layer publishBase(Path rawImage, int blockSize, ObjectStore store, String dir) throws IOException {
        return publishBase(rawImage, blockSize, store, dir, NO_PROGRESS);
    }

    /** {@link #publishBase(Path, int, ObjectStore, String)}, telling {@code hashed} the bytes hashed as it goes. */
    public static Layer publishBase(Path rawImage, int blockSize, ObjectStore store, String dir, LongConsumer hashed)
            throws IOException {
        return publishBase(rawImage, blockSize, store, dir, hashed, Compression.NONE);
    }

    /**
     * {@link #publishBase(Path, int, ObjectStore, String, LongConsumer)}, the diff stored as
     * {@code compression} says ({@code hashed} then also hears the bytes compressed).
     */
    public static Layer publishBase(Path rawImage, int blockSize, ObjectStore store, String dir, LongConsumer hashed,
                                    Compression compression) throws IOException {
        return publishBase(rawImage, blockSize, store, dir, hashed, compression, ContentAddressing.NONE);
    }

    /**
     * {@link #publishBase(Path, int, ObjectStore, String, LongConsumer, Compression)}, the image
     * stored as {@code content} says: content-addressed, its all-zero chunks become zero
     * mappings (stored nowhere, reported as holes) and only the chunks the store lacks are
     * uploaded ({@code hashed} hears the bytes hashed, then the bytes chunked).
     */
    public static Layer publishBase(Path rawImage, int blockSize, ObjectStore store, String dir, LongConsumer hashed,
                                    Compression compression, ContentAddressing content) throws IOException {
        content.check(blockSize);
        if (content.enabled()) {
            return publishContentBase(rawImage, blockSize, store, dir, hashed, compression, content);
        }
        UUID id = UUID.randomUUID();
        long size = Files.size(rawImage);
        byte[] sha = sha256(rawImage, hashed);
        String diffKey = LayeredImage.diffKey(dir, id);
        String headerKey = LayeredImage.headerKey(dir, id);
        long blocks = (size + blockSize - 1) / blockSize;
        if (!compression.enabled() || size == 0) {
            LayerHeader header = LayerHeader.base(id, size, blockSize, sha);
            upload(store, diffKey, rawImage, headerKey, header);
            return new Layer(header, headerKey, diffKey, size, header.toBytes().length, blocks, blocks, 0, 0, null);
        }
        Path framed = Files.createTempFile(compression.scratch(), id + "-", ".frames");
        try {
            Build build = new Build(id, size, sha, compress(rawImage, framed, compression, hashed));
            LayerHeader header = new LayerHeader(size, blockSize, id, LayerHeader.NO_PARENT, 0, List.of(build),
                    List.of(new Mapping(0, size, 0, 0)));
            upload(store, diffKey, framed, headerKey, header);
            return new Layer(header, headerKey, diffKey, size, header.toBytes().length, blocks, blocks, 0, 0, null);
        } finally {
            Files.deleteIfExists(framed);
        }
    }

    private static Layer publishContentBase(Path rawImage, int blockSize, ObjectStore store, String dir,
                                            LongConsumer hashed, Compression compression, ContentAddressing content)
            throws IOException {
        UUID id = UUID.randomUUID();
        long size = Files.size(rawImage);
        byte[] sha = sha256(rawImage, hashed);
        try (ContentLocks.ExportLease lease = ContentLocks.ExportLease.acquire(store, dir, ContentLocks.DEFAULT_TTL)) {
            ContentWriter.Result r = ContentWriter.write(rawImage, size, content.chunkSize(), compression.codec(),
                    content.threads(compression), store, dir, hashed, lease, content.cipher());
            return publishContentHeader(blockSize, store, dir, id, size, sha, r);
        }
    }

    /** The header of a content-addressed base, uploaded under the export's lease (its chunks are in the store). */
    private static Layer publishContentHeader(int blockSize, ObjectStore store, String dir, UUID id, long size,
                                              byte[] sha, ContentWriter.Result r)
            throws IOException {
        ContentTable t = r.table();
        List<Mapping> mappings = new ArrayList<>();
        long zeroBlocks = 0; // per chunk, so a short zero last chunk counts its own blocks, not a whole chunk's
        for (int i = 0; i < t.chunks(); i++) {
            long off = t.uncompressedOffset(i);
            long len = t.uncompressedSize(i);
            if (t.isZero(i)) zeroBlocks += (len + blockSize - 1) / blockSize;
            appendCoalesced(mappings, t.isZero(i) ? Mapping.zero(off, len) : new Mapping(off, len, 0, off));
        }
        LayerHeader header = new LayerHeader(size, blockSize, id, LayerHeader.NO_PARENT, 0,
                List.of(Build.contentAddressed(id, size, sha, t)), mappings);
        String headerKey = LayeredImage.headerKey(dir, id);
        upload(store, null, null, headerKey, header); // the chunks are in the store: the header goes last
        long blocks = (size + blockSize - 1) / blockSize;
        return new Layer(header, headerKey, null, size, header.toBytes().length, blocks, blocks - zeroBlocks,
                zeroBlocks, 0, r);
    }

    private static FrameTable compress(Path raw, Path framed, Compression c, LongConsumer progress) throws IOException {
        Files.delete(framed); // FrameWriter creates it new
        FrameTable t = FrameWriter.compress(raw, framed, c.codec(), c.frameSize(), c.threads(), progress);
        log.info("compressed {} with {} in frames of {}: {} -> {} bytes ({}%)", raw.getFileName(), c.codec().name(),
                c.frameSize(), t.size(), t.compressedSize(), t.size() == 0 ? 100 : 100 * t.compressedSize() / t.size());
        return t;
    }

    /**
     * Exports {@code overlay}'s written blocks as a layer over {@code parent} into {@code dir}
     * of {@code store}; {@code scratch} holds the diff file until it is uploaded. Pause writes to
     * the overlay first: a block written during the export may or may not be in the layer.
     */
    public static Layer export(Overlay overlay, LayerHeader parent, ObjectStore store, String dir, Path scratch)
            throws IOException {
        return export(overlay, parent, store, dir, scratch, NO_PROGRESS);
    }

    /**
     * {@link #export(Overlay, LayerHeader, ObjectStore, String, Path)}, telling {@code compared}
     * the bytes of written blocks compared with the parent as it goes: the long part when the
     * parent is fetched lazily (up to {@link #writtenBytes} in all).
     */
    public static Layer export(Overlay overlay, LayerHeader parent, ObjectStore store, String dir, Path scratch,
                               LongConsumer compared) throws IOException {
        return export(overlay, parent, store, dir, scratch, compared, Compression.NONE);
    }

    /** {@link #export(Overlay, LayerHeader, ObjectStore, String, Path, LongConsumer)}, the diff stored as {@code compression} says. */
    public static Layer export(Overlay overlay, LayerHeader parent, ObjectStore store, String dir, Path scratch,
                               LongConsumer compared, Compression compression) throws IOException {
        return export(overlay, parent, store, dir, scratch, compared, compression, ContentAddressing.NONE);
    }

    /**
     * {@link #export(Overlay, LayerHeader, ObjectStore, String, Path, LongConsumer, Compression)},
     * the diff stored as {@code content} says: content-addressed, only the chunks of the diff the
     * store lacks are uploaded.
     */
    public static Layer export(Overlay overlay, LayerHeader parent, ObjectStore store, String dir, Path scratch,
                               LongConsumer compared, Compression compression, ContentAddressing content)
            throws IOException {
        content.check(overlay.blockSize());
        if (overlay.size() != parent.imageSize() || overlay.blockSize() != parent.blockSize()) {
            throw new IllegalArgumentException("overlay (" + overlay.size() + " bytes, block " + overlay.blockSize()
                    + ") does not sit on this parent (" + parent.imageSize() + " bytes, block " + parent.blockSize() + ")");
        }
        SparseCache cache = overlay.cache();
        BitSet unchanged = unchangedBlocks(overlay, compared);
        UUID id = UUID.randomUUID();
        Path diff = Files.createTempFile(scratch, id + "-", ".diff");
        Path framed = null;
        ContentLocks.ExportLease lease = null; // held from the chunks' existence checks to the header
        try {
            DiffMetadata meta = cache.exportToDiff(diff, false, unchanged);
            List<Mapping> overrides = overrides(meta, overlay.size());
            long stored = meta.storedBlocks();
            FrameTable frames = null;
            Path upload = diff;
            ContentWriter.Result chunks = null;
            Build build;
            if (content.enabled() && stored > 0) {
                lease = ContentLocks.ExportLease.acquire(store, dir, ContentLocks.DEFAULT_TTL);
                chunks = ContentWriter.write(diff, meta.diffBytes(), content.chunkSize(), compression.codec(),
                        content.threads(compression), store, dir, NO_PROGRESS, lease, content.cipher());
                build = Build.contentAddressed(id, meta.diffBytes(), sha256(diff), chunks.table());
            } else {
                if (compression.enabled() && stored > 0) {
                    framed = Files.createTempFile(scratch, id + "-", ".frames");
                    frames = compress(diff, framed, compression, NO_PROGRESS);
                    upload = framed;
                }
                build = new Build(id, meta.diffBytes(), sha256(diff), frames);
            }
            LayerHeader header = merge(parent, id, build, overrides);
            String diffKey = stored > 0 && chunks == null ? LayeredImage.diffKey(dir, id) : null;
            String headerKey = LayeredImage.headerKey(dir, id);
            upload(store, diffKey, upload, headerKey, header);
            Layer layer = new Layer(header, headerKey, diffKey, meta.diffBytes(),
                    header.toBytes().length, meta.dirty().cardinality(), stored, meta.empty().cardinality(),
                    unchanged.cardinality(), chunks);
            log.info("exported layer {} over {}: {} blocks written, {} stored ({} bytes), {} zero, {} unchanged; "
                    + "header {} bytes, {} mappings{}", id, parent.buildId(), layer.dirtyBlocks() + layer.unchangedBlocks(),
                    stored, meta.diffBytes(), layer.zeroBlocks(), layer.unchangedBlocks(), layer.headerBytes(),
                    header.mappings().size(), chunks == null ? "" : "; " + chunks);
            return layer;
        } finally {
            Files.deleteIfExists(diff);
            if (framed != null) {
                Files.deleteIfExists(framed);
            }
            if (lease != null) {
                lease.close();
            }
        }
    }

    /** Written blocks whose bytes equal the base's: nothing changed there. */
    private static BitSet unchangedBlocks(Overlay overlay, LongConsumer compared) throws IOException {
        int bs = overlay.blockSize();
        PresenceBitmap written = overlay.cache().presence();
        BitSet same = new BitSet();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment mine = arena.allocate(bs);
            MemorySegment theirs = arena.allocate(bs);
            for (long b = written.nextSet(0); b >= 0; b = written.nextSet(b + 1)) {
                long off = b * bs;
                long len = Math.min(bs, overlay.size() - off);
                overlay.readAt(mine.asSlice(0, len), off);
                overlay.base().readAt(theirs.asSlice(0, len), off);
                if (MemorySegment.mismatch(mine, 0, len, theirs, 0, len) == -1) {
                    same.set((int) b);
                }
                compared.accept(len);
            }
        }
        return same;
    }

    /** The new layer's own mappings, in order: stored runs point into the diff, zero runs are zero. */
    private static List<Mapping> overrides(DiffMetadata meta, long imageSize) {
        int bs = meta.blockSize();
        List<Mapping> out = new ArrayList<>();
        long storedIndex = 0;
        BitSet dirty = meta.dirty();
        BitSet zero = meta.empty();
        for (int b = dirty.nextSetBit(0); b >= 0; b = dirty.nextSetBit(b + 1)) {
            long off = (long) b * bs;
            long len = Math.min(bs, imageSize - off);
            Mapping next = zero.get(b) ? Mapping.zero(off, len) : new Mapping(off, len, 0, storedIndex++ * bs);
            appendCoalesced(out, next);
        }
        return out;
    }

    /**
     * The parent's mappings with the overrides laid over them; the new build is the last in the
     * builds list, parent builds no longer referenced are dropped.
     */
    static LayerHeader merge(LayerHeader parent, UUID id, Build build, List<Mapping> overrides) {
        final int newBuild = Integer.MAX_VALUE; // placeholder index until the builds list is known
        List<Mapping> merged = new ArrayList<>();
        long pos = 0;
        for (Mapping o : overrides) {
            copyParent(parent, pos, o.offset(), merged);
            appendCoalesced(merged, o.isZero() ? o : new Mapping(o.offset(), o.length(), newBuild, o.buildOffset()));
            pos = o.end();
        }
        copyParent(parent, pos, parent.imageSize(), merged);

        List<Build> builds = new ArrayList<>();
        Map<Integer, Integer> index = new HashMap<>();
        for (Mapping m : merged) {
            if (!m.isZero() && m.build() != newBuild && !index.containsKey(m.build())) {
                index.put(m.build(), -1);
            }
        }
        for (int i = 0; i < parent.builds().size(); i++) {
            if (index.containsKey(i)) {
                index.put(i, builds.size());
                builds.add(parent.builds().get(i));
            }
        }
        boolean usesNew = merged.stream().anyMatch(m -> m.build() == newBuild);
        if (usesNew) {
            index.put(newBuild, builds.size());
            builds.add(build);
        }
        List<Mapping> mappings = new ArrayList<>(merged.size());
        for (Mapping m : merged) {
            mappings.add(m.isZero() ? m : new Mapping(m.offset(), m.length(), index.get(m.build()), m.buildOffset()));
        }
        return new LayerHeader(parent.imageSize(), parent.blockSize(), id, parent.buildId(), parent.generation() + 1,
                builds, mappings);
    }

    /** Appends the parent's mappings clipped to {@code [from, to)}. */
    private static void copyParent(LayerHeader parent, long from, long to, List<Mapping> out) {
        if (from >= to) {
            return;
        }
        List<Mapping> ms = parent.mappings();
        for (int i = parent.mappingAt(from); i < ms.size() && ms.get(i).offset() < to; i++) {
            Mapping m = ms.get(i);
            long start = Math.max(from, m.offset());
            long end = Math.min(to, m.end());
            appendCoalesced(out, m.isZero() ? Mapping.zero(start, end - start)
                    : new Mapping(start, end - start, m.build(), m.buildOffset() + (start - m.offset())));
        }
    }

    /** Appends {@code m}, merging it into the last mapping when it continues it. */
    private static void appendCoalesced(List<Mapping> out, Mapping m) {
        if (!out.isEmpty()) {
            Mapping last = out.getLast();
            boolean adjacent = last.end() == m.offset();
            if (adjacent && last.isZero() && m.isZero()) {
                out.set(out.size() - 1, Mapping.zero(last.offset(), last.length() + m.length()));
                return;
            }
            if (adjacent && !last.isZero() && last.build() == m.build()
                    && last.buildOffset() + last.length() == m.buildOffset()) {
                out.set(out.size() - 1, new Mapping(last.offset(), last.length() + m.length(), last.build(),
                        last.buildOffset()));
                return;
            }
        }
        out.add(m);
    }

    /** Diff first, header last; a failed header upload takes the diff back out. */
    private static void upload(ObjectStore store, String diffKey, Path diff, String headerKey, LayerHeader header)
            throws IOException {
        if (diffKey != null) {
            store.put(diffKey, diff);
        }
        try {
            store.put(headerKey, header.toBytes());
        } catch (IOException | RuntimeException e) {
            if (diffKey != null) {
                try {
                    store.delete(diffKey);
                } catch (IOException | RuntimeException suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            throw e;
        }
    }

    /** The bytes of the blocks written to {@code overlay}: what an export compares. */
    public static long writtenBytes(Overlay overlay) {
        PresenceBitmap written = overlay.cache().presence();
        long bytes = written.cardinality() * overlay.blockSize();
        long last = (overlay.size() - 1) / overlay.blockSize();
        if (overlay.size() > 0 && written.get(last)) {
            bytes -= (long) overlay.blockSize() - (overlay.size() - last * overlay.blockSize()); // a short last block
        }
        return bytes;
    }

    private static final LongConsumer NO_PROGRESS = bytes -> { };

    static byte[] sha256(Path file) throws IOException {
        return sha256(file, NO_PROGRESS);
    }

    static byte[] sha256(Path file, LongConsumer hashed) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) {
                md.update(buf, 0, n);
                hashed.accept(n);
            }
            return md.digest();
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError("every JDK has SHA-256", e);
        }
    }
}
