package dev.lazyblock.device;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.chunker.ChunkTier;
import dev.lazyblock.chunker.ContentChunker;
import dev.lazyblock.content.ContentCache;
import dev.lazyblock.content.ContentObjects;
import dev.lazyblock.content.ContentTable;
import dev.lazyblock.chunker.DiskBudget;
import dev.lazyblock.chunker.FrameChunker;
import dev.lazyblock.frame.FrameCodec;
import dev.lazyblock.frame.FrameCodecs;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.device.LayerHeader.Build;
import dev.lazyblock.device.LayerHeader.Mapping;
import dev.lazyblock.upstream.ObjectStore;
import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.UpstreamException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

/**
 * An image assembled from the builds its {@link LayerHeader} names: each read is routed, range
 * by range, to the build that holds it (through that build's chunker and cache) or filled with
 * zeros. A mapping is a run of adjacent blocks of one build, so a read within it is one read.
 *
 * <p>Objects are found by convention next to the header: build {@code id}'s diff is
 * {@code <dir>/<id>.diff} and a layer's header {@code <dir>/<id>.header}, where {@code dir} is the
 * header key's directory; a content-addressed build's chunks are {@code <dir>/chunks/<hh>/<hash>}
 * ({@link dev.lazyblock.content.ContentKey#objectKey}), shared by every layer under {@code dir}.
 */
public final class LayeredImage implements Device {
    /** Headers are small (a few KiB to MiB); this bounds what a corrupt size makes us read. */
    static final int MAX_HEADER_BYTES = 256 << 20;

    private final String name;
    private final LayerHeader header;
    private final Upstream[] upstreams;
    private final Chunker[] chunkers;
    /** Pins on this image's builds in a tier's disk budget, released at close; empty without one. */
    private final List<DiskBudget.Pin> pins;

    private LayeredImage(String name, LayerHeader header, Upstream[] upstreams, Chunker[] chunkers,
                         List<DiskBudget.Pin> pins) {
        this.name = name;
        this.header = header;
        this.upstreams = upstreams;
        this.chunkers = chunkers;
        this.pins = pins;
    }

    public static String diffKey(String dir, UUID build) {
        return dir.isEmpty() ? build + ".diff" : dir + "/" + build + ".diff";
    }

    public static String headerKey(String dir, UUID build) {
        return dir.isEmpty() ? build + ".header" : dir + "/" + build + ".header";
    }

    /** The directory part of a key ("" at the top). */
    public static String dirOf(String key) {
        int slash = key.lastIndexOf('/');
        return slash < 0 ? "" : key.substring(0, slash);
    }

    /** Reads and parses the header object at {@code key}. */
    public static LayerHeader readHeader(ObjectStore store, String key) throws IOException {
        try (Upstream up = store.open(key)) {
            long size = up.size();
            if (size > MAX_HEADER_BYTES) {
                throw new UpstreamException(up.name(), 0, size, "a layer header of " + size + " bytes is past the "
                        + MAX_HEADER_BYTES + "-byte limit");
            }
            ByteBuffer b = ByteBuffer.allocate((int) size);
            up.readFully(0, b);
            return LayerHeader.parse(b.array());
        }
    }

    /** Makes the cache of one build: a scratch file, or a persistent cache that outlives the run. */
    @FunctionalInterface
    public interface CacheFactory {
        /**
         * @param identity names the build's object for good: {@code store/dir/<build-id>.diff}
         *                 (a build's diff never changes, so this is a safe key for a persistent cache)
         */
        SparseCache create(String identity, long size, int blockSize) throws IOException;
    }

    /**
     * Opens the layered image whose header is at {@code headerKey}, with a cache per build in
     * {@code cacheDir}, unlinked at creation.
     */
    public static LayeredImage open(ObjectStore store, String headerKey, Path cacheDir, ChunkerKind kind,
                                    ChunkerOptions options) throws IOException {
        return open(store, headerKey, kind, options, (identity, size, blockSize) -> SparseCache.create(
                cacheDir.resolve("build-" + UUID.randomUUID() + ".cache"), size, blockSize, blockSize));
    }

    /** Opens the layered image whose header is at {@code headerKey}, each build's cache from {@code caches}. */
    public static LayeredImage open(ObjectStore store, String headerKey, ChunkerKind kind, ChunkerOptions options,
                                    CacheFactory caches) throws IOException {
        return open(store, headerKey, kind, options, caches, null);
    }

    /**
     * Opens the layered image whose header is at {@code headerKey}, each build's cache from
     * {@code caches}. Compressed builds are read frame by frame ({@link FrameChunker}: {@code kind}
     * does not apply to them), through the shared {@code tier} when there is one (null: none);
     * with a tier, raw builds are read whole chunk by whole chunk through it as well.
     */
    public static LayeredImage open(ObjectStore store, String headerKey, ChunkerKind kind, ChunkerOptions options,
                                    CacheFactory caches, ChunkTier tier) throws IOException {
        LayerHeader header = readHeader(store, headerKey);
        String dir = dirOf(headerKey);
        List<Build> builds = header.builds();
        Upstream[] upstreams = new Upstream[builds.size()];
        Chunker[] chunkers = new Chunker[builds.size()];
        List<DiskBudget.Pin> pins = new ArrayList<>();
        DiskBudget budget = tier == null ? null : tier.budget();
        if (budget != null) {
            // Pinned before any chunk is read: an open build's tier files are never evicted.
            for (Build b : builds) {
                pins.add(budget.pin(b.id().toString()));
            }
        }
        try {
            for (int i = 0; i < builds.size(); i++) {
                Build b = builds.get(i);
                if (b.size() == 0) {
                    continue; // nothing can be read from it
                }
                OpenedBuild o = openBuild(store, diffKey(dir, b.id()), b, header.blockSize(), kind, options, caches, tier);
                upstreams[i] = o.upstream();
                chunkers[i] = o.chunker();
            }
        } catch (IOException | RuntimeException e) {
            closeAll(upstreams, chunkers);
            pins.forEach(DiskBudget.Pin::close);
            throw e;
        }
        return new LayeredImage(store.name() + "/" + headerKey, header, upstreams, chunkers, pins);
    }

    /** One build's diff object and the chunker reading it; {@link #close} closes both, the chunker first. */
    public record OpenedBuild(Upstream upstream, Chunker chunker) {
        public void close() {
            if (!chunker.cache().isClosed()) {
                chunker.close();
            }
            try {
                upstream.close();
            } catch (IOException ignored) {
                // closing a read-only object: nothing to lose
            }
        }
    }

    /**
     * Opens build {@code b}'s diff object at {@code diffKey} and a chunker over it, its cache from
     * {@code caches}: compressed builds frame by frame, raw builds through {@code tier} when there
     * is one, else with a chunker of {@code kind}. The diff's size is checked against the header.
     */
    public static OpenedBuild openBuild(ObjectStore store, String diffKey, Build b, int blockSize, ChunkerKind kind,
                                        ChunkerOptions options, CacheFactory caches, ChunkTier tier) throws IOException {
        if (b.contentAddressed()) {
            return openContentBuild(store, diffKey, b, blockSize, options, caches, tier);
        }
        Upstream up = store.open(diffKey);
        try {
            long actual = up.size();
            if (actual != b.storedSize()) {
                throw new UpstreamException(up.name(), 0, actual, "the header says build " + b.id()
                        + (b.compressed() ? " stores " + b.storedSize() + " bytes of compressed frames"
                        : " has " + b.size() + " bytes") + ", its diff object has " + actual);
            }
            FrameCodec codec = b.compressed() ? FrameCodecs.byId(b.frames().codec()) : null;
            SparseCache cache = caches.create(store.name() + "/" + diffKey, b.size(), blockSize);
            DiskBudget budget = tier == null ? null : tier.budget();
            if (budget != null) {
                budget.count(cache);
            }
            try {
                Chunker c = b.compressed()
                        ? new FrameChunker(up, b.id().toString(), b.frames(), codec, cache, options, tier)
                        : tier != null ? FrameChunker.raw(up, b.id().toString(), cache, options, tier)
                        : kind.create(up, cache, options);
                return new OpenedBuild(up, c);
            } catch (IOException | RuntimeException e) {
                cache.close(); // a persistent cache would keep its lock otherwise
                throw e;
            }
        } catch (IOException | RuntimeException e) {
            try {
                up.close();
            } catch (IOException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    /**
     * A content-addressed build has no diff object: its chunks are objects of their own under
     * the header's directory ({@link ContentChunker}), found in this host's chunk files
     * ({@code options}' content cache), in its other open builds (the content index), then in
     * the tier, then in the store.
     */
    private static OpenedBuild openContentBuild(ObjectStore store, String diffKey, Build b, int blockSize,
                                                ChunkerOptions options, CacheFactory caches, ChunkTier tier)
            throws IOException {
        ContentTable table = b.content();
        FrameCodec codec = table.codec() == 0 ? null : FrameCodecs.byId(table.codec());
        ContentCache files = table.encrypted() ? null : options.contentCache();
        // With the host's chunk files the build's own cache is a scratch file of holes they are
        // mapped into: what it holds lives in those files (kept across runs), not in a kept cache.
        SparseCache cache = files != null
                ? SparseCache.create(files.scratchFile(), b.size(), blockSize, blockSize)
                : caches.create(store.name() + "/" + diffKey, b.size(), blockSize);
        try {
            DiskBudget budget = tier == null ? null : tier.budget();
            if (budget != null) {
                budget.count(cache);
            }
            String dir = dirOf(diffKey);
            Chunker c = new ContentChunker(store, dir, b.id().toString(), table, codec, cache, options, tier);
            return new OpenedBuild(new ContentObjects(store, dir, table), c);
        } catch (RuntimeException e) {
            cache.close();
            throw e;
        }
    }

    /**
     * Gives a layered image the chunker of each of its builds: a host that serves many images
     * over shared base builds opens each build once and hands out references
     * ({@link #open(ObjectStore, String, BuildOpener)}). The image closes each chunker it got
     * when it closes; a shared one should take that as a release of its reference.
     */
    @FunctionalInterface
    public interface BuildOpener {
        Chunker open(ObjectStore store, String diffKey, Build build, int blockSize) throws IOException;
    }

    /** Opens the layered image whose header is at {@code headerKey}, each build's chunker from {@code builds}. */
    public static LayeredImage open(ObjectStore store, String headerKey, BuildOpener builds) throws IOException {
        LayerHeader header = readHeader(store, headerKey);
        String dir = dirOf(headerKey);
        List<Build> list = header.builds();
        Upstream[] none = new Upstream[0]; // the opener owns the builds' diff objects
        Chunker[] chunkers = new Chunker[list.size()];
        try {
            for (int i = 0; i < list.size(); i++) {
                Build b = list.get(i);
                if (b.size() != 0) {
                    chunkers[i] = builds.open(store, diffKey(dir, b.id()), b, header.blockSize());
                    if (chunkers[i].size() != b.size()) {
                        throw new IOException("the chunker given for build " + b.id() + " holds " + chunkers[i].size()
                                + " bytes, the header says " + b.size());
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            closeAll(none, chunkers);
            throw e;
        }
        return new LayeredImage(store.name() + "/" + headerKey, header, none, chunkers, List.of());
    }

    public LayerHeader header() {
        return header;
    }

    @Override
    public long size() {
        return header.imageSize();
    }

    @Override
    public int blockSize() {
        return header.blockSize();
    }

    @Override
    public long readAt(MemorySegment dst, long off) throws IOException {
        long size = header.imageSize();
        if (off < 0 || off >= size) {
            throw new IndexOutOfBoundsException("offset " + off + " is outside the image [0, " + size + ") of " + name);
        }
        long n = Math.min(dst.byteSize(), size - off);
        long end = off + n;
        List<Mapping> mappings = header.mappings();
        long pos = off;
        for (int i = header.mappingAt(off); pos < end; i++) {
            Mapping m = mappings.get(i);
            long len = Math.min(end, m.end()) - pos;
            MemorySegment part = dst.asSlice(pos - off, len);
            if (m.isZero()) {
                part.fill((byte) 0);
            } else {
                long got = chunkers[m.build()].readAt(part, m.buildOffset() + (pos - m.offset()));
                if (got != len) {
                    throw new IOException("short read of build " + header.builds().get(m.build()).id() + " at "
                            + (m.buildOffset() + (pos - m.offset())) + ": expected " + len + " bytes, got " + got);
                }
            }
            pos += len;
        }
        return n;
    }

    /** Whether {@code [off, off+len)} lies entirely in zero mappings: it reads as zeros, stored nowhere. */
    public boolean isZero(long off, long len) {
        if (off < 0 || len <= 0 || off >= header.imageSize()) {
            return false;
        }
        long end = Math.min(header.imageSize(), off + len);
        List<Mapping> mappings = header.mappings();
        for (int i = header.mappingAt(off); i < mappings.size() && mappings.get(i).offset() < end; i++) {
            if (!mappings.get(i).isZero()) {
                return false;
            }
        }
        return true;
    }

    /** The chunker of each build (null for an empty build), for statistics. */
    public List<Chunker> chunkers() {
        List<Chunker> out = new ArrayList<>();
        for (Chunker c : chunkers) {
            out.add(c);
        }
        return out;
    }

    @Override
    public void close() {
        closeAll(upstreams, chunkers);
        pins.forEach(DiskBudget.Pin::close);
    }

    private static void closeAll(Upstream[] upstreams, Chunker[] chunkers) {
        for (Chunker c : chunkers) {
            if (c != null && !c.cache().isClosed()) {
                c.close();
            }
        }
        for (Upstream u : upstreams) {
            if (u != null) {
                try {
                    u.close();
                } catch (IOException ignored) {
                    // closing a read-only object: nothing to lose
                }
            }
        }
    }

    @Override
    public String toString() {
        return "LayeredImage[" + name + ", " + header.builds().size() + " builds, " + header.mappings().size()
                + " mappings]";
    }
}
