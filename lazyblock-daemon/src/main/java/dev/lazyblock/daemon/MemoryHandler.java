package dev.lazyblock.daemon;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.device.Device;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.device.Overlay;
import dev.lazyblock.uffd.ProcessMemory;
import dev.lazyblock.upstream.ObjectStore;
import dev.lazyblock.uffd.PageFaultHandler;
import dev.lazyblock.uffd.UffdHolder;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A sandbox's guest memory: a Firecracker page-fault handler on the sandbox's {@code uffd.sock},
 * serving faults from the memory image (its builds shared like the disk's). The handler's event
 * loop polls through FFM, which would pin a virtual thread's carrier, so it gets one platform
 * thread of its own; it ends when the VMM goes, the accept wait runs out, or the sandbox closes.
 * A constructor that throws has stopped the handler and leaves the memory image open.
 *
 * <p>With a uffd holder ({@link DaemonConfig#uffdHolder()}) the handler keeps a duplicate of the
 * VM's userfaultfd there under the sandbox's id; a sandbox brought back by a restarted daemon
 * takes it back and serves the VM's faults on (or, if no VMM had connected, listens again).
 */
final class MemoryHandler implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(MemoryHandler.class);

    enum State { WAITING, SERVING, DONE, FAILED }

    final String image;
    final Device memory;
    final ObjectStore store;      // where a layered memory image's header is (owned by the daemon); else null
    final String headerKey;
    final Path socket;
    private final boolean trackWrites;
    private final String sandbox;
    private final Path holder; // null: none
    private final PageFaultHandler handler;
    private final Thread thread;
    // Written by the handler's thread, read by info(): volatile, each a whole value.
    private volatile State state = State.WAITING;
    private volatile String failure;

    /**
     * @param holder  where to keep the VM's userfaultfd across restarts, or null
     * @param restore the sandbox is being brought back: take the userfaultfd back from the holder
     *                if it holds one, else listen for the VMM as a new sandbox does
     */
    MemoryHandler(String sandbox, String image, Device memory, ObjectStore store, String headerKey, Path socket,
                  Duration acceptTimeout, boolean trackWrites, Path holder, boolean restore) throws IOException {
        this.sandbox = sandbox;
        this.holder = holder;
        this.image = image;
        this.memory = memory;
        this.store = store;
        this.headerKey = headerKey;
        this.socket = socket;
        this.trackWrites = trackWrites;
        this.handler = new PageFaultHandler(memory, socket, trackWrites);
        if (holder != null) {
            handler.keepIn(holder, sandbox);
        }
        this.thread = Thread.ofPlatform().daemon().name("lazyblockd-uffd-" + sandbox).unstarted(() -> {
            try {
                if (restore && holder != null) {
                    try {
                        handler.resume(holder, sandbox);
                        state = State.DONE;
                        return;
                    } catch (UffdHolder.NotHeldException e) {
                        log.info("sandbox {}: no userfaultfd held for it (no VMM had connected): listening on {}",
                                sandbox, socket);
                    }
                } else if (restore) {
                    log.warn("sandbox {}: brought back without a uffd holder: a VM that was running when the daemon "
                            + "stopped waits on its faults forever; listening on {} for a new VMM", sandbox, socket);
                }
                handler.serve(acceptTimeout);
                state = State.DONE;
            } catch (IOException | RuntimeException e) {
                failure = e.getMessage();
                state = State.FAILED;
                log.warn("sandbox {}: memory handler on {} ended: {}", sandbox, socket, e.getMessage());
            }
        });
        thread.start();
        if (restore && holder != null) {
            return; // resuming needs no socket; if nothing was held, the handler listens shortly
        }
        // The orchestrator starts the VMM once create returns: the socket must exist by then.
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        while (!Files.exists(socket) && thread.isAlive()) {
            if (System.nanoTime() - deadline > 0) {
                stopHandler();
                throw new IOException("the memory handler did not listen on " + socket + " within 10 s");
            }
            try {
                Thread.sleep(1);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                stopHandler();
                throw new java.io.InterruptedIOException("interrupted starting the memory handler");
            }
        }
        if (!thread.isAlive() && state == State.FAILED) {
            throw new IOException("the memory handler could not start on " + socket + ": " + failure);
        }
    }

    boolean tracksWrites() {
        return trackWrites;
    }

    /** Whether the handler took the VM's userfaultfd back after a restart (its writes before are unknown). */
    boolean resumed() {
        return handler.resumed();
    }

    /**
     * Copies the pages the guest wrote out of the VMM ({@code process_vm_readv}) into a scratch
     * overlay over the memory image and exports it as the memory's next layer, beside its header.
     * The VM must be paused: pages written while this runs may be caught half-way.
     */
    LayerExporter.Layer export(Path scratchDir) throws IOException {
        if (!(memory instanceof LayeredImage li)) {
            throw new IOException("the memory image " + image + " is not layered");
        }
        int pid = handler.vmmPid();
        if (handler.resumed()) {
            throw new IOException("the daemon restarted while the VM ran: the pages it wrote before are not known, "
                    + "so its memory cannot be exported as a layer (pause and snapshot it with the VMM instead)");
        }
        if (pid <= 0) {
            throw new IOException("no VMM has connected to " + socket + ": there are no guest writes to export");
        }
        Path file = scratchDir.resolve("memory-dirty.cache");
        SparseCache dirty = SparseCache.create(file, memory.size(), memory.blockSize(), memory.blockSize());
        try (Overlay ov = new Overlay(memory, dirty)) {
            ProcessMemory.fill(dirty, pid, handler.dirtyPages());
            return LayerExporter.export(ov, li.header(), store, LayeredImage.dirOf(headerKey), scratchDir);
        } finally {
            Files.deleteIfExists(file);
        }
    }

    /** What the API shows. */
    record Info(String image, String socket, String state, boolean trackWrites, int vmmPid, long faults, long copies,
                long zeroPages, long failures, long dirtyPages, String error) {}

    Info info() {
        State s = state;
        if (s == State.WAITING && handler.vmmPid() > 0) {
            s = State.SERVING;
        }
        PageFaultHandler.Stats st = handler.stats();
        return new Info(image, socket.toString(), s.name().toLowerCase(java.util.Locale.ROOT), trackWrites,
                handler.vmmPid(), st.faults(), st.copies(), st.zeroPages(), st.failures(),
                !trackWrites ? 0 : handler.resumed() ? -1 : handler.dirtyPages().size(), failure);
    }

    /** The sandbox is deleted: the holder need not keep its VM's userfaultfd any more. */
    void forget() {
        if (holder == null) {
            return;
        }
        try {
            UffdHolder.drop(holder, sandbox);
        } catch (IOException e) {
            log.warn("sandbox {}: could not tell the uffd holder at {} to let go: {}", sandbox, holder, e.toString());
        }
    }

    /**
     * Stops the handler (its loop returns within ~100 ms) and closes the memory image. A userfaultfd
     * in the holder stays there, for the next daemon: {@link #forget()} drops it.
     */
    @Override
    public void close() {
        stopHandler();
        memory.close();
    }

    /** On a failed start the memory image stays the caller's to close. */
    private void stopHandler() {
        handler.stop();
        try {
            if (!thread.join(Duration.ofSeconds(10))) {
                log.warn("the memory handler on {} did not stop within 10 s", socket);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        try {
            Files.deleteIfExists(socket);
        } catch (IOException ignored) {
            // the sandbox's directory goes next
        }
    }
}
