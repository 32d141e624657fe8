package dev.lazyblock.daemon;

import dev.lazyblock.cache.PersistentCache;
import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.chunker.DiskBudget;
import dev.lazyblock.chunker.FetchThreads;
import dev.lazyblock.content.ContentCipher;
import dev.lazyblock.device.Device;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.device.LayerHeader;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.device.Overlay;
import dev.lazyblock.metrics.CountingMetrics;
import dev.lazyblock.metrics.micrometer.MicrometerMetrics;
import dev.lazyblock.nbd.NbdExport;
import dev.lazyblock.upstream.NoSuchObjectException;
import dev.lazyblock.upstream.ObjectStore;
import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.UpstreamProvider;
import dev.lazyblock.upstream.Upstreams;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadLocalRandom;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The host daemon's core, without its HTTP face ({@link ControlServer}): sandboxes created from
 * images, each with its own overlay and NBD export on a Unix socket, over builds shared through
 * one {@link BuildRegistry}. Everything is bounded by {@link DaemonConfig}; nothing is global, so
 * two daemons (tests) live side by side in one process.
 *
 * <p>Restarts: each sandbox's directory keeps its {@link SandboxRecord} and a writable sandbox's
 * overlay (journaled: NBD FLUSH and FUA make writes durable). A daemon started on the same state
 * directory, after {@link #close()} or a {@code kill -9}, brings every sandbox back on the same
 * socket and export name, so an NBD client that reconnects (qemu's {@code reconnect-delay}) goes
 * on. Only {@link #delete} removes a sandbox.
 */
public final class Daemon implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(Daemon.class);
    static final Pattern ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");

    /**
     * What {@code create} takes; only {@code image} is required. {@code tenant}: whose secret opens
     * the images' encrypted builds, one of {@link DaemonConfig#tenants()} by name (never the secret).
     */
    public record CreateRequest(String id, String image, Boolean layered, Boolean writable, String export,
                                String memory, Boolean trackMemoryWrites, String tenant) {
        /** A disk-only request. */
        public CreateRequest(String id, String image, Boolean layered, Boolean writable, String export) {
            this(id, image, layered, writable, export, null, null, null);
        }
    }

    /** What an export wrote: the disk's new layer and, when the guest's writes were tracked, its memory's. */
    public record Exported(Layer disk, Layer memory) {}

    /** What the daemon reports of a sandbox. */
    public record SandboxInfo(String id, String state, String image, String created, long size, boolean writable,
                              String export, String nbdUri, String nbdSocket, List<String> builds,
                              SandboxMeters.Reads reads, Served nbd, long writtenBytes, List<Layer> layers,
                              MemoryHandler.Info memory, String tenant) {}

    /** The sandbox's NBD traffic, over all its runs. */
    public record Served(long connections, int open, long requests, long bytesRead, long bytesWritten, long errors) {}

    /** A layer an export wrote: its header's key in the sandbox's store, and what it holds. */
    public record Layer(String image, String store, String headerKey, String buildId, long storedBlocks,
                        long zeroBlocks, long unchangedBlocks, long diffBytes) {}

    /** Host-wide figures. */
    public record HostInfo(int sandboxes, int maxSandboxes, int builds, int maxBuilds, int stores,
                           long diskUsedBytes, long diskBudgetBytes, long evictedCaches,
                           CountingMetrics.Snapshot reads, Fetches fetches) {}

    /** The daemon's fetch pool: its bound, what runs and waits now, what it ran since start. */
    public record Fetches(int maxThreads, int running, int waiting, long completed) {}

    /**
     * How the daemon opens image URLs: through {@link Upstreams} by default; an embedder (or a
     * benchmark putting a latency model in front of a store) may wrap what it returns.
     */
    public interface Images {
        /** The store holding {@code url}'s layer header, and the header's key in it. */
        UpstreamProvider.StoreAndKey store(String url) throws IOException;

        /** A raw image. */
        Upstream open(String url) throws IOException;

        Images UPSTREAMS = new Images() {
            @Override
            public UpstreamProvider.StoreAndKey store(String url) throws IOException {
                return Upstreams.store(url);
            }

            @Override
            public Upstream open(String url) throws IOException {
                return Upstreams.open(url);
            }
        };
    }

    private final DaemonConfig config;
    private final Images images;
    private final HostMetrics metrics;
    private final MeterRegistry registry;
    private final BuildRegistry builds;
    private final DiskBudget budget; // null without a disk budget
    private final ScheduledExecutorService timer;
    private final Path sandboxDir;
    /** Every build's fetches run here: the host-wide bound ({@link DaemonConfig#maxFetchThreads}). */
    private final FetchThreads fetchers;
    /** The host's content-addressed chunks by hash, mapped into every build that holds them. */
    private final dev.lazyblock.content.ContentCache contentCache;

    private final ConcurrentHashMap<String, Sandbox> sandboxes = new ConcurrentHashMap<>();
    /**
     * The host series this daemon registered, removed at {@link #close}: a registry outlives a
     * daemon (a restart in one process), and Micrometer would hand the next daemon these meters,
     * still reading this one's state.
     */
    private final List<io.micrometer.core.instrument.Meter> hostMeters = new ArrayList<>();
    // Guarded by this: ids being created (counted against maxSandboxes, refused as duplicates).
    private final Set<String> creating = new HashSet<>();
    // Guarded by this: one open store per store name, shared by every sandbox (and build) from it.
    private final Map<String, ObjectStore> stores = new HashMap<>();
    private boolean closed; // guarded by this
    /**
     * Sandboxes a restart found but could not bring back (their image would not open, say) -> why.
     * Their directories, and the writes in them, are kept; the id is taken until {@link #delete}.
     */
    private final ConcurrentHashMap<String, String> unrestored = new ConcurrentHashMap<>();
    /** How long a stop waits for an overlay's last writes and journal commit. */
    static final java.time.Duration SAVE_TIMEOUT = java.time.Duration.ofSeconds(30);

    /**
     * @param registry where per-sandbox and host series go (a Prometheus registry for
     *                 {@code /metrics}); null for none
     */
    public Daemon(DaemonConfig config, MeterRegistry registry) throws IOException {
        this(config, registry, Images.UPSTREAMS);
    }

    public Daemon(DaemonConfig config, MeterRegistry registry, Images images) throws IOException {
        this.config = config;
        this.images = images;
        this.registry = registry;
        this.metrics = new HostMetrics(registry == null ? null : new MicrometerMetrics(registry));
        this.sandboxDir = Files.createDirectories(config.stateDir().resolve("sandboxes"));
        // What the daemon holds is taken in this order and, if a later step fails, given back in
        // the reverse one: a daemon that did not start holds no lock, thread or meter (a second
        // one on the same state directory may start once the cause is gone).
        // Its NBD requests run on virtual threads, and with many sandboxes the cores are busy: their
        // misses are fetched on the pool's threads (see FetchThreads#tryCallerSlot), and a quarter
        // more threads than the bound are kept for misses, so many templates' streams holding all
        // of it do not hold up a sandbox's fault (read-ahead keeps the whole bound).
        int reserve = config.maxFetchThreads() / 4;
        FetchThreads fetchThreads = new FetchThreads(config.maxFetchThreads() + reserve, reserve,
                "lazyblockd-fetch-", true);
        dev.lazyblock.content.ContentCache content = null;
        DiskBudget diskBudget = null;
        try {
            ChunkerOptions options = ChunkerOptions.DEFAULTS.withMetrics(metrics).withFetchTimeout(config.fetchTimeout())
                    .withFetchThreads(fetchThreads)
                    // One per daemon: templates whose content-addressed builds share chunks fetch them once
                    // and hold them once (files by hash in STATE-DIR/content, kept across restarts).
                    .withContentIndex(new dev.lazyblock.content.ContentIndex());
            content = new dev.lazyblock.content.ContentCache(config.stateDir().resolve("content"),
                    config.diskBudgetBytes() > 0 ? config.diskBudgetBytes() : Long.MAX_VALUE);
            options = options.withContentCache(content);
            if (config.diskBudgetBytes() > 0) {
                Path buildDir = Files.createDirectories(config.stateDir().resolve("builds"));
                diskBudget = new DiskBudget(config.diskBudgetBytes(), config.minFreeBytes(), buildDir);
                diskBudget.governCaches(buildDir); // closed builds' caches go LRU; open ones hold their lock
                diskBudget.governContent(content); // then the shared chunk files, LRU
            }
            this.builds = new BuildRegistry(config.stateDir().resolve("builds"), config.chunker(), options,
                    config.maxBuilds(), config.fetchTimeout());
        } catch (IOException | RuntimeException | Error e) {
            if (diskBudget != null) {
                diskBudget.close();
            }
            if (content != null) {
                content.close();
            }
            fetchThreads.close();
            throw e;
        }
        this.fetchers = fetchThreads;
        this.contentCache = content;
        this.budget = diskBudget;
        // One platform thread for every sandbox's NBD handshake timeouts.
        this.timer = Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().daemon().name("lazyblockd-timer").factory());
        try {
            if (budget != null) {
                // Enforcement walks the caches' files (a stat each): cheap, and off the read path.
                timer.scheduleWithFixedDelay(this::enforceBudget, BUDGET_INTERVAL.toMillis(),
                        BUDGET_INTERVAL.toMillis(), java.util.concurrent.TimeUnit.MILLISECONDS);
            }
            if (registry != null) {
                hostMeters.add(Gauge.builder("lazyblock.daemon.sandboxes", sandboxes, Map::size)
                        .description("open sandboxes").register(registry));
                hostMeters.add(Gauge.builder("lazyblock.daemon.builds", builds, BuildRegistry::open)
                        .description("open builds").register(registry));
                hostMeters.add(Gauge.builder("lazyblock.daemon.fetches.running", fetchers, FetchThreads::running)
                        .description("fetches from the stores running now").register(registry));
                hostMeters.add(Gauge.builder("lazyblock.daemon.fetches.waiting", fetchers, FetchThreads::waiting)
                        .description("fetches waiting for one of the daemon's fetch threads").register(registry));
                hostMeters.add(Gauge.builder("lazyblock.daemon.content.chunks", contentCache, c -> c.chunks())
                        .description("content-addressed chunks held once for every build (files by hash)")
                        .register(registry));
                hostMeters.add(Gauge.builder("lazyblock.daemon.content.bytes", contentCache, c -> c.bytes())
                        .description("bytes of those chunk files").baseUnit("bytes").register(registry));
                hostMeters.add(io.micrometer.core.instrument.FunctionCounter.builder("lazyblock.daemon.content.mapped",
                                contentCache, c -> c.hits())
                        .description("misses served by mapping a chunk file another build fetched").register(registry));
            }
            restore();
        } catch (IOException | RuntimeException | Error e) {
            close(); // the sandboxes restore() brought back stay in the state directory, as at any stop
            throw e;
        }
    }

    /** Brings back the sandboxes an earlier run left in the state directory. */
    private void restore() throws IOException {
        List<Path> dirs;
        try (Stream<Path> st = Files.list(sandboxDir)) {
            dirs = st.sorted().toList();
        }
        int back = 0;
        for (Path dir : dirs) {
            String name = dir.getFileName().toString();
            SandboxRecord kept;
            try {
                kept = Files.isDirectory(dir) && ID.matcher(name).matches() ? SandboxRecord.read(dir) : null;
            } catch (IOException e) {
                log.error("sandbox {}: {}; its directory is kept (delete the sandbox to drop it)", name, e.getMessage());
                unrestored.put(name, e.getMessage());
                continue;
            }
            if (kept == null) {
                log.info("removing {}: a sandbox whose create never returned", dir);
                deleteTree(dir);
                continue;
            }
            if (!kept.request().id().equals(name)) {
                String why = dir.resolve(SandboxRecord.FILE) + " names sandbox '" + printable(kept.request().id())
                        + "', expected '" + name + "'";
                log.error("{}; its directory is kept", why);
                unrestored.put(name, why);
                continue;
            }
            synchronized (this) {
                if (sandboxes.size() + creating.size() >= config.maxSandboxes()) {
                    String why = "the daemon holds its maximum of " + config.maxSandboxes() + " sandboxes";
                    log.error("sandbox {} not brought back: {}", name, why);
                    unrestored.put(name, why);
                    continue;
                }
                creating.add(name);
            }
            try {
                open(kept.request(), kept);
                back++;
            } catch (DaemonException e) {
                log.error("sandbox {} could not be brought back: {}; its directory {} is kept (delete the sandbox "
                        + "to drop it)", name, e.getMessage(), dir);
                unrestored.put(name, e.getMessage());
            }
        }
        if (back > 0 || !unrestored.isEmpty()) {
            log.info("brought back {} sandboxes from {}{}", back, sandboxDir,
                    unrestored.isEmpty() ? "" : "; " + unrestored.size() + " could not be: " + unrestored.keySet());
        }
    }

    public DaemonConfig config() {
        return config;
    }

    /** Creates, opens and starts serving a sandbox; on any failure nothing of it is left. */
    public SandboxInfo create(CreateRequest r) {
        if (r == null || r.image() == null || r.image().isBlank()) {
            throw DaemonException.badRequest("\"image\" is required: the URL or path of a raw image or a layer header");
        }
        String id = r.id() != null ? r.id() : "sb-" + HexFormat.of().toHexDigits(ThreadLocalRandom.current().nextLong());
        if (!ID.matcher(id).matches()) {
            throw DaemonException.badRequest("invalid sandbox id '" + printable(id) + "': expected 1 to 64 of "
                    + "[A-Za-z0-9._-], starting with a letter or digit");
        }
        String exportName = r.export() != null ? r.export() : id;
        try {
            NbdExport.validateName(exportName);
        } catch (IllegalArgumentException e) {
            throw DaemonException.badRequest(e.getMessage());
        }
        boolean writable = r.writable() == null || r.writable();
        boolean layered = r.layered() != null ? r.layered() : r.image().endsWith(".header");
        synchronized (this) {
            if (closed) {
                throw new DaemonException(503, "closing", "the daemon is closing");
            }
            if (unrestored.containsKey(id)) {
                throw DaemonException.conflict("not_restored", "sandbox '" + id + "' of an earlier run could not be "
                        + "brought back (" + unrestored.get(id) + "); delete it first");
            }
            if (sandboxes.containsKey(id) || creating.contains(id)) {
                throw DaemonException.conflict("duplicate_id", "a sandbox with id '" + id + "' exists (or is being "
                        + "created or deleted)");
            }
            if (sandboxes.size() + creating.size() >= config.maxSandboxes()) {
                throw DaemonException.limit("the daemon holds its maximum of " + config.maxSandboxes()
                        + " sandboxes (maxSandboxes); delete one first");
            }
            creating.add(id);
        }
        return open(new CreateRequest(id, r.image(), layered, writable, exportName, r.memory(), r.trackMemoryWrites(),
                r.tenant()), null);
    }

    /**
     * Opens a sandbox and publishes it; its id is in {@link #creating}. {@code kept} is the record
     * of an earlier run's sandbox being brought back, else null. On failure nothing of a new
     * sandbox is left; a kept one's directory stays as it was.
     */
    private SandboxInfo open(CreateRequest r, SandboxRecord kept) {
        String id = r.id();
        String exportName = r.export();
        boolean writable = r.writable();
        boolean layered = r.layered();
        List<AutoCloseable> undo = new ArrayList<>();
        Path dir = sandboxDir.resolve(id);
        try {
            if (kept == null) {
                if (Files.exists(dir, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                    throw DaemonException.conflict("duplicate_id", dir + " exists: a sandbox '" + id
                            + "' is being deleted, or something else put it there");
                }
                Files.createDirectories(dir);
                undo.add(() -> deleteTree(dir));
            }
            LayeredImage.BuildOpener opener = builds;
            if (r.tenant() != null) {
                ContentCipher cipher = config.tenants().get(r.tenant());
                if (cipher == null) { // a create's, or a record of an earlier run whose daemon knew this tenant
                    throw DaemonException.badRequest("unknown tenant '" + printable(r.tenant()) + "': the daemon "
                            + "has no secret for it (lazyblock daemon --tenant-secrets)");
                }
                opener = builds.forTenant(r.tenant(), cipher);
            }
            OpenedImage disk = openImage(r.image(), layered, opener);
            undo.addFirst(disk.device());
            Device image = disk.device();
            ObjectStore store = disk.store();
            String headerKey = disk.headerKey();
            List<String> buildIds = disk.buildIds();
            String buildLabel = disk.label();
            MemoryHandler memory = null;
            if (r.memory() != null) {
                OpenedImage mem = openImage(r.memory(), r.memory().endsWith(".header"), opener);
                undo.addFirst(mem.device());
                if (Boolean.TRUE.equals(r.trackMemoryWrites()) && mem.store() == null) {
                    throw DaemonException.badRequest("trackMemoryWrites exports the guest's writes as a layer over "
                            + "the memory image, which must then be a layered image (a *.header)");
                }
                memory = new MemoryHandler(id, r.memory(), mem.device(), mem.store(), mem.headerKey(),
                        dir.resolve("uffd.sock"), config.memoryAcceptTimeout(),
                        Boolean.TRUE.equals(r.trackMemoryWrites()), config.uffdHolder(), kept != null);
                undo.removeFirst(); // the handler closes the memory image now
                undo.addFirst(memory);
            }
            SandboxMeters meters = new SandboxMeters(registry, id, buildLabel);
            undo.addFirst(meters);
            AttributedDevice attributed = new AttributedDevice(id, image, meters, config.readsPerSandbox(),
                    config.readWait());
            Overlay overlay = null;
            PersistentCache.Opened written = null;
            if (writable) {
                // Kept in the sandbox's directory, journaled: what was flushed survives a crash.
                // Reopened only over the same image at the same version, else a clear error.
                // Its first flush also makes the sandbox's record durable (written unsynced below),
                // so a create costs no fsync and a flushed write never outlives its record.
                written = PersistentCache.openOverlay(dir, "overlay of sandbox '" + id + "' over " + r.image(),
                        disk.version(), image.size(), image.blockSize(), () -> SandboxRecord.sync(dir));
                overlay = new Overlay(attributed, written.cache());
                undo.addFirst(overlay);
                if (budget != null) {
                    budget.count(written.cache()); // counted until it closes; never evicted
                }
            }
            Sandbox s = new Sandbox(id, r, dir, image, store, headerKey, buildIds, meters, attributed, overlay,
                    timer, config.drainTimeout(), memory,
                    kept == null ? java.time.Instant.now() : java.time.Instant.parse(kept.created()), written);
            if (kept != null) {
                kept.layers().forEach(s::addLayer);
            } else {
                // Before the export starts: the overlay's first flush syncs this file.
                new SandboxRecord(SandboxRecord.VERSION, r, s.created.toString(), false, List.of()).write(dir, false);
            }
            if (kept == null || !kept.paused()) { // a sandbox paused before the restart comes back paused
                s.start();
                undo.addFirst(s::pause);
            }
            // Taken before the sandbox is visible: once published, a delete may close it at once.
            SandboxInfo info = s.info();
            synchronized (this) {
                if (closed) {
                    throw new DaemonException(503, "closing", "the daemon is closing");
                }
                creating.remove(id);
                sandboxes.put(id, s);
            }
            if (kept == null) {
                log.info("sandbox {} created from {} ({} builds)", id, printable(r.image()), buildIds.size());
            } else {
                log.info("sandbox {} brought back from {} ({} builds{})", id, dir, buildIds.size(), written == null ? ""
                        : String.format(", overlay of %,d bytes written by earlier runs", written.restoredBytes()));
            }
            enforceBudget();
            return info;
        } catch (Throwable t) {
            synchronized (this) {
                creating.remove(id);
            }
            for (AutoCloseable c : undo) {
                try {
                    c.close();
                } catch (Exception e) {
                    t.addSuppressed(e);
                }
            }
            throw translate(t, r.image());
        }
    }

    private static DaemonException translate(Throwable t, String image) {
        if (t instanceof DaemonException d) {
            return d;
        }
        if (t instanceof IllegalArgumentException) {
            return new DaemonException(400, "bad_image", "image '" + printable(image) + "': " + t.getMessage(), t);
        }
        if (t instanceof NoSuchFileException || t instanceof FileNotFoundException || missing(t)) {
            return new DaemonException(422, "image_not_found", "image '" + printable(image) + "' does not exist: "
                    + t.getMessage(), t);
        }
        if (t instanceof IOException || t instanceof UncheckedIOException) {
            return new DaemonException(502, "store_failed", "opening image '" + printable(image) + "' failed: "
                    + t.getMessage(), t);
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new DaemonException(500, "internal", "creating a sandbox from '" + printable(image) + "' failed: " + t, t);
    }

    /** @param version what names the image's bytes (a layered image's build, a raw image's store version), or null */
    private record OpenedImage(Device device, ObjectStore store, String headerKey, List<String> buildIds,
                               String label, String version) {}

    /** A layered image over the shared builds, or a raw image as one shared build. */
    private OpenedImage openImage(String url, boolean layered, LayeredImage.BuildOpener opener) throws IOException {
        if (layered) {
            UpstreamProvider.StoreAndKey sk = openStore(url);
            LayeredImage li = LayeredImage.open(sk.store(), sk.key(), opener);
            return new OpenedImage(li, sk.store(), sk.key(),
                    li.header().builds().stream().map(b -> b.id().toString()).toList(),
                    li.header().buildId().toString(), "build " + li.header().buildId());
        }
        Upstream raw = images.open(url);
        String version = raw.version();
        Device lease = builds.openRaw(raw, SparseCache.DEFAULT_BLOCK_SIZE);
        return new OpenedImage(lease, null, null, List.of(url), printable(url), version);
    }

    private static boolean missing(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof NoSuchObjectException) {
                return true;
            }
        }
        return false;
    }

    private UpstreamProvider.StoreAndKey openStore(String url) throws IOException {
        UpstreamProvider.StoreAndKey sk = images.store(url);
        ObjectStore fresh = sk.store();
        ObjectStore kept;
        synchronized (this) {
            kept = stores.get(fresh.name());
            if (kept == null && stores.size() < config.maxStores()) {
                stores.put(fresh.name(), fresh);
                return sk;
            }
        }
        fresh.close();
        if (kept == null) {
            throw DaemonException.limit("the daemon keeps at most " + config.maxStores() + " stores open (maxStores)");
        }
        return new UpstreamProvider.StoreAndKey(kept, sk.key());
    }

    public List<SandboxInfo> list() {
        return sandboxes.values().stream().sorted(Comparator.comparing(s -> s.id)).map(Sandbox::info).toList();
    }

    public SandboxInfo get(String id) {
        return sandbox(id).info();
    }

    /** Stops the sandbox's export (in-flight requests drain first); its overlay stays for export or resume. */
    public SandboxInfo pause(String id) {
        Sandbox s = sandbox(id);
        s.pause();
        keep(s);
        return s.info();
    }

    /** Rewrites the sandbox's record after a change a restart must know of (paused, a layer). */
    private void keep(Sandbox s) {
        synchronized (s) {
            if (s.state() == Sandbox.State.DELETED) {
                return;
            }
            try {
                s.record().write(s.dir);
            } catch (IOException e) {
                log.warn("sandbox {}: could not update {} ({}): a restart brings it back as it was before", s.id,
                        SandboxRecord.FILE, e.toString());
            }
        }
    }

    public SandboxInfo resume(String id) {
        Sandbox s = sandbox(id);
        try {
            s.start();
        } catch (IOException e) {
            throw new DaemonException(500, "resume_failed", "sandbox " + id + " could not serve again: " + e.getMessage(), e);
        }
        keep(s);
        return s.info();
    }

    /**
     * Pauses the sandbox and writes what it wrote as a new layer over its image in the store the
     * image came from (diff first, header last). The sandbox stays paused: resume it to go on.
     */
    public Exported export(String id) {
        Sandbox s = sandbox(id);
        synchronized (s) {
            if (!s.layered()) {
                throw DaemonException.conflict("not_layered", "sandbox " + id + " serves a raw image; only a layered "
                        + "image (a *.header) exports as a layer over its parent");
            }
            if (s.overlay == null) {
                throw DaemonException.conflict("read_only", "sandbox " + id + " is read-only: it has nothing to export");
            }
            if (s.state() == Sandbox.State.DELETED) {
                throw DaemonException.notFound("no sandbox '" + id + "'");
            }
            if (s.memory != null && s.memory.tracksWrites() && s.memory.resumed()) {
                throw DaemonException.conflict("memory_writes_unknown", "sandbox " + id + "'s memory handler was "
                        + "taken over after a daemon restart: the pages the guest wrote before it are not known, so "
                        + "its memory cannot be exported as a layer");
            }
            s.pause();
            LayerHeader parent = ((LayeredImage) s.opened).header();
            Layer disk;
            try {
                LayerExporter.Layer l = LayerExporter.export(s.overlay, parent, s.store, LayeredImage.dirOf(s.headerKey),
                        s.dir);
                disk = layer(l, s.store, imageOf(s.image, s.headerKey, l.headerKey()));
                s.addLayer(disk);
                log.info("sandbox {} exported disk layer {}", id, l.headerKey());
                keep(s);
            } catch (IOException e) {
                throw new DaemonException(502, "export_failed", "exporting sandbox " + id + "'s disk to "
                        + s.store.name() + " failed: " + e.getMessage(), e);
            }
            Layer memory = null;
            if (s.memory != null && s.memory.tracksWrites()) {
                try {
                    LayerExporter.Layer l = s.memory.export(s.dir);
                    memory = layer(l, s.memory.store, imageOf(s.memory.image, s.memory.headerKey, l.headerKey()));
                    s.addLayer(memory);
                    log.info("sandbox {} exported memory layer {}", id, l.headerKey());
                    keep(s);
                } catch (IOException e) {
                    throw new DaemonException(502, "export_failed", "exporting sandbox " + id + "'s memory to "
                            + s.memory.store.name() + " failed (its disk layer " + disk.headerKey() + " was written): "
                            + e.getMessage(), e);
                }
            }
            return new Exported(disk, memory);
        }
    }

    private static Layer layer(LayerExporter.Layer l, ObjectStore store, String image) {
        return new Layer(image, store.name(), l.headerKey(), l.header().buildId().toString(), l.storedBlocks(),
                l.zeroBlocks(), l.unchangedBlocks(), l.diffBytes());
    }

    /**
     * The URL a new header written beside the sandbox's own opens with: the sandbox's image URL
     * with its header's key replaced (the store was opened from that URL, so the rest of it names
     * the same store). Null when the URL does not end with the key (a query string, say).
     */
    private static String imageOf(String image, String headerKey, String newHeaderKey) {
        String tail = headerKey.substring(LayeredImage.dirOf(headerKey).length());
        return image.endsWith(tail) ? image.substring(0, image.length() - tail.length())
                + newHeaderKey.substring(LayeredImage.dirOf(newHeaderKey).length()) : null;
    }

    /** Closes the sandbox's export, drops its overlay and releases its builds. */
    public void delete(String id) {
        checkId(id);
        Sandbox s;
        synchronized (this) {
            if (unrestored.remove(id) != null) {
                deleteTree(sandboxDir.resolve(id)); // under the lock: a create of the id waits for it
                log.info("sandbox {} (not brought back by the restart) deleted", id);
                return;
            }
            s = sandboxes.remove(id);
            if (s == null) {
                throw DaemonException.notFound("no sandbox '" + id + "'");
            }
            // The id stays taken until its directory is gone: a create of the same id must not
            // make its directory just before this delete removes it.
            creating.add(id);
        }
        try {
            s.close();
            if (s.memory != null) {
                s.memory.forget();
            }
            deleteTree(s.dir);
        } finally {
            synchronized (this) {
                creating.remove(id);
            }
        }
        log.info("sandbox {} deleted", id);
        enforceBudget();
    }

    public List<BuildRegistry.Info> builds() {
        return builds.list();
    }

    /**
     * Brings the disk under its budget, closed builds' caches first. Run at each create and delete
     * (a create may have closed an idle build to make room) and every {@link #BUDGET_INTERVAL}
     * while open caches grow, not on every chunk written: between two runs the caches of open
     * builds may pass the budget by what they fetch meanwhile (open caches are never removed).
     */
    private void enforceBudget() {
        if (budget != null) {
            try {
                budget.enforce();
            } catch (RuntimeException e) {
                log.warn("enforcing the disk budget failed (tried again in {} s): {}", BUDGET_INTERVAL.toSeconds(),
                        e.toString());
            }
        }
    }

    /** How often the disk budget is enforced while nothing is created or deleted. */
    static final java.time.Duration BUDGET_INTERVAL = java.time.Duration.ofSeconds(5);

    public HostInfo host() {
        int n;
        synchronized (this) {
            n = stores.size();
        }
        return new HostInfo(sandboxes.size(), config.maxSandboxes(), builds.open(), config.maxBuilds(), n,
                budget == null ? -1 : budget.usedBytes(), config.diskBudgetBytes(),
                budget == null ? 0 : budget.evictedCaches(), metrics.host.snapshot(),
                new Fetches(fetchers.bound(), fetchers.running(), fetchers.waiting(), fetchers.completed()));
    }

    private Sandbox sandbox(String id) {
        Sandbox s = sandboxes.get(checkId(id));
        if (s == null && unrestored.containsKey(id)) {
            throw DaemonException.conflict("not_restored", "sandbox '" + id + "' of an earlier run could not be brought "
                    + "back: " + unrestored.get(id) + "; its directory is kept until it is deleted");
        }
        if (s == null) {
            throw DaemonException.notFound("no sandbox '" + printable(id) + "'");
        }
        return s;
    }

    private static String checkId(String id) {
        if (id == null || !ID.matcher(id).matches()) {
            throw DaemonException.notFound("no sandbox '" + printable(String.valueOf(id)) + "' (ids are 1 to 64 of "
                    + "[A-Za-z0-9._-])");
        }
        return id;
    }

    /**
     * Closes every sandbox, keeping it (its record and overlay) for the next daemon on this state
     * directory, then the builds and stores.
     */
    @Override
    public void close() {
        List<ObjectStore> toClose;
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            toClose = new ArrayList<>(stores.values());
            stores.clear();
        }
        List<Sandbox> kept = new ArrayList<>();
        for (String id : List.copyOf(sandboxes.keySet())) {
            Sandbox s = sandboxes.remove(id);
            if (s != null) {
                s.close();
                kept.add(s);
            }
        }
        for (Sandbox s : kept) {
            try {
                if (s.written != null && !s.written.awaitReleased(SAVE_TIMEOUT)) {
                    log.warn("sandbox {}: writes still running after {} s; its overlay keeps what was flushed", s.id,
                            SAVE_TIMEOUT.toSeconds());
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        if (!kept.isEmpty()) {
            log.info("closed {} sandboxes, kept in {} for the next start", kept.size(), sandboxDir);
        }
        builds.close();
        contentCache.close(); // after the builds; their mappings keep whatever files they map
        fetchers.close();
        if (budget != null) {
            budget.close();
        }
        for (ObjectStore s : toClose) {
            try {
                s.close();
            } catch (IOException e) {
                log.warn("closing store {}: {}", s.name(), e.toString());
            }
        }
        timer.shutdownNow();
        for (io.micrometer.core.instrument.Meter m : hostMeters) {
            registry.remove(m);
        }
    }

    static void deleteTree(Path p) {
        if (!Files.exists(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(q);
            }
        } catch (IOException e) {
            log.warn("could not remove {}: {}", p, e.toString());
        }
    }

    /** Control characters and overlong input kept out of messages and logs. */
    static String printable(String s) {
        String t = s.length() > 200 ? s.substring(0, 200) + "..." : s;
        return t.replaceAll("\\p{Cntrl}", "?");
    }
}
