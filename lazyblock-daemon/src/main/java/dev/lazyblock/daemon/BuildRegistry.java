package dev.lazyblock.daemon;

import dev.lazyblock.cache.PersistentCache;
import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.content.ContentCipher;
import dev.lazyblock.device.LayerHeader.Build;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.upstream.ObjectStore;
import dev.lazyblock.upstream.Upstream;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One chunker and one persistent cache per build on the host, shared by every sandbox whose image
 * holds that build: a chunk two sandboxes read is fetched once. Each sandbox gets a {@link Lease}
 * whose close gives its reference back; a build nobody references stays open (its cache is warm
 * for the next sandbox from the same template) until room is needed, then the least recently used
 * idle build is closed, its presence map saved in {@code builds/} for the next open. When every
 * open build is referenced and the limit is reached, opening one more is refused (429), never
 * queued.
 */
final class BuildRegistry implements LayeredImage.BuildOpener, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(BuildRegistry.class);

    /** What the API shows of a build. */
    public record Info(String identity, String label, long size, int refs, long cachedBytes) {}

    private final Path cacheDir;
    private final ChunkerKind kind;
    private final ChunkerOptions options;
    private final int maxBuilds;
    private final Duration wait;

    // Guarded by this. Access order: the first entry is the least recently acquired.
    private final LinkedHashMap<String, Entry> entries = new LinkedHashMap<>(16, 0.75f, true);
    // Guarded by this: caches being closed, whose lock a reopen of the same build must wait for.
    private final Map<String, PersistentCache.Opened> releasing = new HashMap<>();
    private boolean closed; // guarded by this

    BuildRegistry(Path cacheDir, ChunkerKind kind, ChunkerOptions options, int maxBuilds, Duration wait) {
        this.cacheDir = cacheDir;
        this.kind = kind;
        this.options = options;
        this.maxBuilds = maxBuilds;
        this.wait = wait;
    }

    private static final class Entry {
        final String identity;
        final String label;
        // Completed once by the thread that inserted the entry; others wait on it (bounded).
        final CompletableFuture<Opened> opened = new CompletableFuture<>();
        int refs; // guarded by the registry

        Entry(String identity, String label) {
            this.identity = identity;
            this.label = label;
        }
    }

    /** {@code cache}: the kept cache, or null for a build whose chunks live in the content cache (nothing to save). */
    private record Opened(AutoCloseable owner, Chunker chunker, PersistentCache.Opened cache) {}

    @FunctionalInterface
    private interface Opener {
        Opened open() throws IOException;
    }

    /**
     * The shared chunker of a layered image's build; its close is the caller's release. An
     * encrypted build cannot be opened here (no tenant, no secret): see {@link #forTenant}.
     */
    @Override
    public Chunker open(ObjectStore store, String diffKey, Build build, int blockSize) throws IOException {
        return open(store, diffKey, build, blockSize, "", options);
    }

    /**
     * The builds as {@code tenant} opens them: an encrypted build is opened with its secret as an
     * instance of the tenant's own (its own cache too), never shared with another tenant's or an
     * unencrypted open of the same object, since its cache holds what only the secret decrypts; a
     * build in the clear is the host's shared one.
     */
    LayeredImage.BuildOpener forTenant(String tenant, ContentCipher cipher) {
        ChunkerOptions theirs = options.withContentCipher(cipher);
        return (store, diffKey, build, blockSize) -> build.contentAddressed() && build.content().encrypted()
                ? open(store, diffKey, build, blockSize, "tenant " + tenant + ": ", theirs)
                : open(store, diffKey, build, blockSize);
    }

    private Chunker open(ObjectStore store, String diffKey, Build build, int blockSize, String owner,
                         ChunkerOptions with) throws IOException {
        String identity = owner + store.name() + "/" + diffKey;
        return acquire(identity, build.id().toString(), () -> {
            PersistentCache.Opened[] pc = new PersistentCache.Opened[1];
            LayeredImage.CacheFactory caches = (id, size, bs) -> {
                pc[0] = PersistentCache.open(cacheDir, owner + id, size, bs, bs);
                return pc[0].cache();
            };
            LayeredImage.OpenedBuild ob = LayeredImage.openBuild(store, diffKey, build, blockSize, kind, with,
                    caches, null);
            return new Opened(ob::close, ob.chunker(), pc[0]);
        });
    }

    /**
     * The shared chunker of a raw image, keyed by its name and version: {@code upstream} is
     * adopted (closed with the build) when it opens a new build, else closed at once.
     */
    Chunker openRaw(Upstream upstream, int blockSize) throws IOException {
        String version = upstream.version();
        String identity = "raw:" + upstream.name() + (version == null ? "" : "@" + version);
        boolean[] adopted = {false};
        try {
            return acquire(identity, upstream.name(), () -> {
                PersistentCache.Opened pc = PersistentCache.open(cacheDir, identity, version, upstream.size(),
                        blockSize, blockSize);
                try {
                    Chunker c = kind.create(upstream, pc.cache(), options);
                    adopted[0] = true;
                    return new Opened(() -> {
                        try (upstream) {
                            c.close(); // closes the cache, which saves its presence map
                        }
                    }, c, pc);
                } catch (IOException | RuntimeException e) {
                    pc.cache().close();
                    throw e;
                }
            });
        } finally {
            if (!adopted[0]) {
                upstream.close();
            }
        }
    }

    private Chunker acquire(String identity, String label, Opener opener) throws IOException {
        Entry e;
        Entry victim = null;
        boolean mine = false;
        synchronized (this) {
            if (closed) {
                throw new DaemonException(503, "closing", "the daemon is closing");
            }
            e = entries.get(identity);
            if (e == null) {
                if (entries.size() >= maxBuilds) {
                    victim = idleLeastRecent();
                    if (victim == null) {
                        throw DaemonException.limit("all " + maxBuilds + " open builds are in use by sandboxes "
                                + "(maxBuilds); delete a sandbox or raise the limit");
                    }
                    entries.remove(victim.identity);
                    PersistentCache.Opened saving = victim.opened.join().cache();
                    if (saving != null) {
                        releasing.put(victim.identity, saving);
                    }
                }
                e = new Entry(identity, label);
                entries.put(identity, e);
                mine = true;
            }
            e.refs++;
        }
        if (victim != null) {
            closeEntry(victim);
        }
        if (mine) {
            try {
                awaitReleased(identity);
                e.opened.complete(opener.open());
                log.debug("opened build {} ({})", label, identity);
            } catch (IOException | RuntimeException | Error t) {
                synchronized (this) {
                    entries.remove(identity, e);
                }
                e.opened.completeExceptionally(t);
                throw t;
            }
        }
        Opened o;
        try {
            o = e.opened.get(wait.toNanos(), TimeUnit.NANOSECONDS);
        } catch (ExecutionException x) {
            // the opener's failure, already thrown to it; the entry is gone
            throw x.getCause() instanceof IOException io ? new IOException(io.getMessage(), io)
                    : new IOException("opening build " + label + " failed: " + x.getCause(), x.getCause());
        } catch (TimeoutException x) {
            release(e);
            throw new IOException("build " + label + " did not open within " + wait + " (another sandbox is opening it)");
        } catch (InterruptedException x) {
            release(e);
            Thread.currentThread().interrupt();
            throw new java.io.InterruptedIOException("interrupted waiting for build " + label);
        }
        return new Lease(e, o.chunker());
    }

    private Entry idleLeastRecent() {
        for (Entry c : entries.values()) {
            if (c.refs == 0 && c.opened.isDone() && !c.opened.isCompletedExceptionally()) {
                return c;
            }
        }
        return null;
    }

    private void awaitReleased(String identity) throws IOException {
        PersistentCache.Opened r;
        synchronized (this) {
            r = releasing.get(identity);
        }
        if (r == null) {
            return;
        }
        try {
            if (!r.awaitReleased(wait)) {
                throw new IOException("the cache of " + identity + " was not saved within " + wait);
            }
        } catch (InterruptedException x) {
            Thread.currentThread().interrupt();
            throw new java.io.InterruptedIOException("interrupted waiting for the cache of " + identity);
        }
    }

    private void closeEntry(Entry e) {
        Opened o = e.opened.getNow(null);
        if (o == null) {
            return;
        }
        try {
            o.owner().close();
        } catch (Exception x) {
            log.warn("closing build {}: {}", e.label, x.toString());
        }
        try {
            if (o.cache() != null && !o.cache().awaitReleased(wait)) {
                log.warn("the cache of build {} was not saved within {}", e.label, wait);
            }
        } catch (InterruptedException x) {
            Thread.currentThread().interrupt();
        } finally {
            synchronized (this) {
                releasing.remove(e.identity, o.cache());
            }
        }
        log.debug("closed build {}", e.label);
    }

    private synchronized void release(Entry e) {
        if (entries.get(e.identity) == e && e.refs > 0) {
            e.refs--;
        }
    }

    /** The open builds, least recently used first. */
    synchronized List<Info> list() {
        List<Info> out = new ArrayList<>();
        for (Entry e : entries.values()) {
            Opened o = e.opened.getNow(null);
            long size = o == null ? 0 : o.chunker().size();
            long cached = o == null ? 0 : o.chunker().cache().presence().cardinality() * o.chunker().cache().granularity();
            out.add(new Info(e.identity, e.label, size, e.refs, Math.min(size, cached)));
        }
        return out;
    }

    synchronized int open() {
        return entries.size();
    }

    /** Closes every build, referenced or not: the daemon has closed its sandboxes first. */
    @Override
    public void close() {
        List<Entry> all;
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            all = new ArrayList<>(entries.values());
            entries.clear();
        }
        for (Entry e : all) {
            closeEntry(e);
        }
    }

    /** A sandbox's reference to a shared build: reads go through, close releases (once). */
    private final class Lease implements Chunker {
        private final Entry entry;
        private final Chunker chunker;
        private final AtomicBoolean released = new AtomicBoolean();

        Lease(Entry entry, Chunker chunker) {
            this.entry = entry;
            this.chunker = chunker;
        }

        @Override
        public MemorySegment slice(long off, long len) throws IOException {
            return chunker.slice(off, len);
        }

        @Override
        public SparseCache cache() {
            return chunker.cache();
        }

        @Override
        public long size() {
            return chunker.size();
        }

        @Override
        public int blockSize() {
            return chunker.blockSize();
        }

        @Override
        public long readAt(MemorySegment dst, long off) throws IOException {
            return chunker.readAt(dst, off);
        }

        @Override
        public void close() {
            if (released.compareAndSet(false, true)) {
                release(entry);
            }
        }

        @Override
        public String toString() {
            return "shared " + chunker;
        }
    }
}
