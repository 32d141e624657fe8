package dev.lazyblock.daemon;

import dev.lazyblock.device.Device;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.device.Overlay;
import dev.lazyblock.nbd.NbdExport;
import dev.lazyblock.nbd.NbdServer;
import dev.lazyblock.upstream.ObjectStore;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ScheduledExecutorService;

/**
 * One sandbox: its image (a reference to each shared build), its own copy-on-write overlay, its
 * NBD export on its own Unix socket and its meters. Every state change runs under the sandbox's
 * monitor (the daemon's API threads are the only callers); reads run on the NBD server's threads
 * and touch only the devices, which are thread-safe.
 */
final class Sandbox {
    enum State { RUNNING, PAUSED, DELETED }

    final String id;
    final Daemon.CreateRequest request; // as created: what a restart opens again
    final String image;
    final Instant created;
    final Path dir;
    final Device opened;          // the LayeredImage or the raw build's lease; closing releases the builds
    final ObjectStore store;      // layered only: where exports go (owned by the daemon)
    final String headerKey;       // layered only
    final List<String> builds;
    final SandboxMeters meters;
    final AttributedDevice attributed;
    final Overlay overlay;        // null when read-only
    final dev.lazyblock.cache.PersistentCache.Opened written; // the overlay's kept cache; null when read-only
    final String exportName;
    final MemoryHandler memory;   // null when the sandbox has no memory image
    private final ScheduledExecutorService timer;
    private final java.time.Duration drain;

    // Guarded by this.
    private State state = State.PAUSED;
    private NbdServer server;
    private NbdServer.Stats served = new NbdServer.Stats(0, 0, 0, 0, 0, 0); // of servers already closed
    private final List<Daemon.Layer> layers = new ArrayList<>();

    Sandbox(String id, Daemon.CreateRequest request, Path dir, Device opened, ObjectStore store, String headerKey,
            List<String> builds, SandboxMeters meters, AttributedDevice attributed, Overlay overlay,
            ScheduledExecutorService timer, java.time.Duration drain, MemoryHandler memory, Instant created,
            dev.lazyblock.cache.PersistentCache.Opened written) {
        this.memory = memory;
        this.id = id;
        this.request = request;
        this.image = request.image();
        this.created = created;
        this.written = written;
        this.dir = dir;
        this.opened = opened;
        this.store = store;
        this.headerKey = headerKey;
        this.builds = builds;
        this.meters = meters;
        this.attributed = attributed;
        this.overlay = overlay;
        this.exportName = request.export();
        this.timer = timer;
        this.drain = drain;
    }

    Path nbdSocket() {
        return dir.resolve("nbd.sock");
    }

    synchronized State state() {
        return state;
    }

    /** Starts serving (again) on the sandbox's socket. */
    synchronized void start() throws IOException {
        if (state == State.RUNNING) {
            return;
        }
        if (state == State.DELETED) {
            throw DaemonException.notFound("no sandbox '" + id + "': it was deleted");
        }
        NbdExport e = overlay != null ? NbdExport.writable(exportName, overlay) : NbdExport.readOnly(exportName, attributed);
        server = NbdServer.builder().export(e.withDescription("lazyblock sandbox " + id + ": " + image))
                .listenUnix(nbdSocket()).timer(timer).drainTimeout(drain).start();
        state = State.RUNNING;
    }

    /** Stops serving: in-flight requests drain (bounded), clients are disconnected, writes stop. */
    synchronized void pause() {
        if (state != State.RUNNING) {
            return;
        }
        NbdServer s = server;
        server = null;
        s.close();
        served = add(served, s.stats());
        state = State.PAUSED;
    }

    synchronized void addLayer(Daemon.Layer l) {
        layers.add(l);
    }

    /** What a restarted daemon needs to bring this sandbox back as it is now. */
    synchronized SandboxRecord record() {
        return new SandboxRecord(SandboxRecord.VERSION, request, created.toString(), state == State.PAUSED,
                List.copyOf(layers));
    }

    /** Closes everything the sandbox holds; idempotent. */
    synchronized void close() {
        if (state == State.DELETED) {
            return;
        }
        pause();
        state = State.DELETED;
        if (memory != null) {
            memory.close();
        }
        if (overlay != null) {
            overlay.close();
        }
        opened.close();
        meters.close();
    }

    synchronized Daemon.SandboxInfo info() {
        NbdServer.Stats now = server == null ? served : add(served, server.stats());
        String uri = state == State.RUNNING ? server.uri(exportName) : null;
        return new Daemon.SandboxInfo(id, state.name().toLowerCase(java.util.Locale.ROOT), image, created.toString(),
                opened.size(), overlay != null, exportName, uri, state == State.RUNNING ? nbdSocket().toString() : null,
                builds, meters.snapshot(),
                new Daemon.Served(now.connections(), now.open(), now.requests(), now.bytesRead(), now.bytesWritten(),
                        now.errors()),
                overlay == null || state == State.DELETED ? 0 : dev.lazyblock.device.LayerExporter.writtenBytes(overlay),
                List.copyOf(layers), memory == null ? null : memory.info(), request.tenant());
    }

    boolean layered() {
        return opened instanceof LayeredImage;
    }

    private static NbdServer.Stats add(NbdServer.Stats a, NbdServer.Stats b) {
        return new NbdServer.Stats(a.connections() + b.connections(), b.open(), a.requests() + b.requests(),
                a.bytesRead() + b.bytesRead(), a.bytesWritten() + b.bytesWritten(), a.errors() + b.errors());
    }
}
