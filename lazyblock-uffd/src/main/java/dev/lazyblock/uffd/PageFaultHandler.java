package dev.lazyblock.uffd;

import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.device.Device;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.device.WorkingSet;
import dev.lazyblock.os.Libc.ErrnoException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.LockSupport;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

/**
 * Serves a VM's guest memory page by page from a lazily fetched memory image, speaking
 * Firecracker's page-fault-handler protocol: listen on a Unix socket, accept the VMM, receive
 * the userfaultfd (SCM_RIGHTS) and the JSON list of regions, then answer each fault with
 * {@code UFFDIO_COPY} of the whole page.
 *
 * <p>Faults are served concurrently, one virtual thread each, so a fault waits only for its own
 * page's bytes (use a streaming or request-first chunker underneath). Duplicate faults for a
 * page in flight are dropped: the copy wakes every thread waiting on the page. {@code EEXIST}
 * (already mapped) wakes the faulting thread; {@code EAGAIN} (a remove event is pending) is
 * retried while the event loop drains events; {@code ESRCH} (the VMM is gone) ends quietly.
 * {@code UFFD_EVENT_REMOVE} (balloon) marks its range, and a later fault there gets a zero page,
 * not stale image bytes. A page whose bytes cannot be read after bounded retries is a clear
 * error: logged with the page and the cause, and the faulting thread (or, without a thread id,
 * the VMM) gets SIGBUS, never a silent hang. The handler returns when the VMM closes the socket
 * or the userfaultfd.
 *
 * <p>Restarts: a VMM keeps its own copy of the userfaultfd, so when its handler dies its faults
 * wait forever. With {@link #keepIn} the handler gives a duplicate to a {@link UffdHolder} as soon
 * as the VMM connects; a new handler process then {@link #resume}s it: it wakes every thread whose
 * fault the dead handler had read but not answered (they fault again) and serves on.
 */
public final class PageFaultHandler {
    private static final Logger log = LoggerFactory.getLogger(PageFaultHandler.class);
    private static final int MAX_MESSAGES = 64;
    static final int READ_ATTEMPTS = 4;
    private static final int EAGAIN_RETRIES = 10_000;

    private final Device memory;
    private final Path socketPath;
    /**
     * Whether the VMM registered its memory in write-protect mode too: then read faults are
     * answered write-protected, and the first write to a page raises a WP fault that marks it dirty.
     */
    private final boolean trackDirty;
    /** Guest addresses of pages written since resume, with the region each is in. */
    private final ConcurrentHashMap<Long, GuestRegion> dirty = new ConcurrentHashMap<>();
    private volatile int vmmPid = -1;

    /**
     * Pages whose fault is being served -> whether another fault on the page arrived meanwhile.
     * A duplicate is not served twice; instead the worker wakes the page's waiters when it is done,
     * because a fault that arrives after the copy (say, after a remove event) would otherwise wait
     * for a copy that already happened. A woken thread whose page is still missing faults again.
     */
    private final ConcurrentHashMap<Long, Boolean> inFlight = new ConcurrentHashMap<>();
    /** Removed ranges, start -> end: faults there get zero pages. Written by the event loop. */
    private final ConcurrentSkipListMap<Long, Long> removed = new ConcurrentSkipListMap<>();
    /** Image offsets in the order their faults arrived: the working set, for prefetch. */
    private final ConcurrentLinkedQueue<Long> faultOrder = new ConcurrentLinkedQueue<>();

    private final LongAdder faults = new LongAdder();
    private final LongAdder copies = new LongAdder();
    private final LongAdder zeroPages = new LongAdder();
    private final LongAdder alreadyMapped = new LongAdder();
    private final LongAdder retries = new LongAdder();
    private final LongAdder failures = new LongAdder();
    private final LongAdder removes = new LongAdder();
    private final LongAdder fromCache = new LongAdder();

    private volatile boolean stopping;
    /** Set when an ioctl says the VMM's process is gone (ESRCH); the loop then ends. */
    private volatile boolean vmmGone;
    /**
     * The holder that keeps a duplicate of the userfaultfd, and the name it is kept under; null
     * when not kept. Written before serve or resume, read by the event loop thread only.
     */
    private Path holder;
    private String holderName;
    /** The region list as the VMM sent it, for the holder's state. Event loop thread only. */
    private String regionsJson;
    /** Served a userfaultfd taken from a holder: writes before the restart were not seen. */
    private volatile boolean resumed;
    /** The thread running the event loop; it must never wait on a retry (it drains the events). */
    private volatile Thread loopThread;
    /** The loop's workers, for hand-offs from the loop thread. */
    private volatile ExecutorService workers;

    /** What a session served. */
    public record Stats(long faults, long copies, long zeroPages, long alreadyMapped, long retries, long failures,
                        long removes, long fromCache) {}

    public PageFaultHandler(Device memory, Path socketPath) {
        this(memory, socketPath, false);
    }

    /**
     * @param trackDirty the VMM registers its memory with {@code UFFDIO_REGISTER_MODE_WP} as well
     *                   as missing mode; pages are then installed write-protected on read faults
     *                   and {@link #dirtyPages()} says which pages the guest wrote
     */
    public PageFaultHandler(Device memory, Path socketPath, boolean trackDirty) {
        this.memory = Objects.requireNonNull(memory, "memory");
        this.socketPath = Objects.requireNonNull(socketPath, "socketPath");
        this.trackDirty = trackDirty;
    }

    /**
     * Keeps a duplicate of the VMM's userfaultfd in the {@link UffdHolder} listening on
     * {@code holderSocket}, as {@code name}, so that a handler started after this one dies can
     * {@link #resume} it. Call before {@link #serve}. The holder lets go when the VMM goes away;
     * a handler stopped with {@link #stop()} leaves it held (a restart on purpose, say an upgrade,
     * hands over the same way as a crash): {@link UffdHolder#drop} ends it.
     */
    public PageFaultHandler keepIn(Path holderSocket, String name) {
        this.holder = Objects.requireNonNull(holderSocket, "holderSocket");
        this.holderName = Objects.requireNonNull(name, "name");
        return this;
    }

    /** Whether this handler took its userfaultfd from a holder ({@link #resume}) rather than from the VMM. */
    public boolean resumed() {
        return resumed;
    }

    /** The connected VMM's pid (from SO_PEERCRED), or -1 before one connects. */
    public int vmmPid() {
        return vmmPid;
    }

    /**
     * The pages the guest has written since resume, in image-offset order, as ranges of the
     * VMM's memory: fill a cache from them with {@link ProcessMemory#fill} while the VM is paused,
     * and the cache exports as the memory's next layer.
     */
    public List<ProcessMemory.Range> dirtyPages() {
        if (!trackDirty) {
            throw new IllegalStateException("dirty tracking is off: construct the handler with trackDirty");
        }
        if (resumed) {
            throw new IllegalStateException("this handler resumed a userfaultfd from a handler that died: "
                    + "the pages written before the restart are not known, so there is no dirty set to export");
        }
        return dirty.entrySet().stream()
                .map(e -> new ProcessMemory.Range(e.getKey(), e.getValue().pageSize(),
                        e.getValue().offset() + (e.getKey() - e.getValue().base())))
                .sorted(java.util.Comparator.comparingLong(ProcessMemory.Range::cacheOffset))
                .toList();
    }

    public Stats stats() {
        return new Stats(faults.sum(), copies.sum(), zeroPages.sum(), alreadyMapped.sum(), retries.sum(),
                failures.sum(), removes.sum(), fromCache.sum());
    }

    /** The pages faulted so far (image offsets), in arrival order: save it for the next resume. */
    public WorkingSet workingSet(long pageSize) {
        return new WorkingSet(pageSize, List.copyOf(faultOrder));
    }

    /** Asks a running {@link #serve} to return at its next poll (within ~100 ms). */
    public void stop() {
        stopping = true;
    }

    /**
     * Listens, accepts one VMM (waiting at most {@code acceptTimeout}), and serves its faults
     * until it disconnects or {@link #stop()} is called.
     */
    public Stats serve(Duration acceptTimeout) throws IOException {
        Files.deleteIfExists(socketPath);
        int listen = Sys.listenUnix(socketPath.toString(), 1);
        if (listen < 0) {
            throw Sys.error("listen on " + socketPath, listen);
        }
        int sock = -1;
        int uffd = -1;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment pfd = arena.allocate(16, 4);
            pfd.set(JAVA_INT, 0, listen);
            pfd.set(JAVA_SHORT, 4, Sys.POLLIN);
            long deadline = System.nanoTime() + acceptTimeout.toNanos();
            while (true) {
                int left = (int) Math.max(0, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime()));
                int ready = Sys.poll(pfd, 1, Math.min(left, 100));
                if (ready > 0) {
                    break;
                }
                if (ready < 0 && ready != -Sys.EINTR) {
                    throw Sys.error("poll(" + socketPath + ")", ready);
                }
                if (stopping || System.nanoTime() - deadline >= 0) {
                    throw new IOException("no VMM connected to " + socketPath + " within " + acceptTimeout.toMillis() + " ms");
                }
            }
            sock = Sys.accept(listen);
            if (sock < 0) {
                throw Sys.error("accept on " + socketPath, sock);
            }
            int pid = Sys.peerPid(sock);
            vmmPid = pid;
            Sys.Received hello = Sys.receive(sock, 64 << 10);
            if (hello == null) {
                throw new IOException("the VMM closed " + socketPath + " before sending its memory regions");
            }
            uffd = hello.fd();
            if (uffd < 0) {
                throw new IOException("the VMM's first message on " + socketPath + " carried no userfaultfd (SCM_RIGHTS)");
            }
            regionsJson = new String(hello.bytes(), StandardCharsets.UTF_8);
            List<GuestRegion> regions = GuestRegion.parseAll(regionsJson);
            log.info("VMM pid {} connected on {}: {} regions, uffd {}", pid, socketPath, regions.size(), uffd);
            deposit(uffd, pid);
            if (loop(arena, sock, uffd, pid, regions)) {
                release();
            }
            return stats();
        } finally {
            if (uffd >= 0) {
                Sys.close(uffd);
            }
            if (sock >= 0) {
                Sys.close(sock);
            }
            Sys.close(listen);
            Files.deleteIfExists(socketPath);
        }
    }

    /**
     * Takes back the userfaultfd a dead handler kept in the holder at {@code holderSocket} as
     * {@code name} (see {@link #keepIn}), and serves its faults until the VMM goes away or
     * {@link #stop()}. The faults the dead handler had read and not answered are woken and come
     * again; the ones it never read are still queued. Keeps the descriptor held, for the next
     * restart.
     *
     * @throws UffdHolder.NotHeldException when nothing is held as {@code name}
     * @throws IOException when its VMM is gone (then the holder lets go of it too), or the holder
     *                     cannot be reached
     */
    public Stats resume(Path holderSocket, String name) throws IOException {
        keepIn(holderSocket, name);
        UffdHolder.Taken taken = UffdHolder.take(holderSocket, name);
        int uffd = taken.uffd();
        try (Arena arena = Arena.ofConfined()) {
            Kept kept = Kept.parse(taken.state());
            int pid = kept.pid();
            if (Sys.kill(pid, 0) == -Sys.ESRCH) {
                UffdHolder.drop(holderSocket, name);
                throw new IOException("the VMM (pid " + pid + ") whose userfaultfd was held as '" + name
                        + "' is gone: nothing to resume");
            }
            resumed = true;
            vmmPid = pid;
            regionsJson = kept.regionsJson();
            removed.putAll(kept.removed());
            List<GuestRegion> regions = GuestRegion.parseAll(regionsJson);
            for (GuestRegion r : regions) {
                MemorySegment range = arena.allocate(16, 8);
                range.set(JAVA_LONG, 0, r.base());
                range.set(JAVA_LONG, 8, r.size());
                int rc = Sys.ioctl(uffd, Sys.UFFDIO_WAKE, range);
                if (rc < 0 && rc != -Sys.ESRCH) {
                    throw Sys.error("UFFDIO_WAKE of region 0x" + Long.toHexString(r.base()), rc);
                }
            }
            log.info("resumed the userfaultfd of VMM pid {} held as '{}': {} regions, {} removed ranges", pid, name,
                    regions.size(), kept.removed().size());
            if (loop(arena, -1, uffd, pid, regions)) {
                release();
            }
            return stats();
        } finally {
            Sys.close(uffd);
        }
    }

    /**
     * What the holder keeps beside the descriptor, as text: {@code pid N}, {@code removed} and
     * start:end pairs, then the region JSON as the VMM sent it.
     */
    record Kept(int pid, Map<Long, Long> removed, String regionsJson) {
        String format() {
            StringBuilder b = new StringBuilder("pid ").append(pid).append("\nremoved");
            removed.forEach((s, e) -> b.append(' ').append(s).append(':').append(e));
            return b.append('\n').append(regionsJson).toString();
        }

        static Kept parse(String text) throws IOException {
            String[] lines = text.split("\n", 3);
            if (lines.length != 3 || !lines[0].startsWith("pid ") || !lines[1].startsWith("removed")) {
                throw new IOException("held state: expected 'pid N', 'removed [start:end ...]' and the regions, got "
                        + text.length() + " bytes starting '" + text.substring(0, Math.min(40, text.length())) + "'");
            }
            try {
                Map<Long, Long> removed = new java.util.TreeMap<>();
                for (String pair : lines[1].substring("removed".length()).trim().split(" ")) {
                    if (!pair.isEmpty()) {
                        int colon = pair.indexOf(':');
                        removed.put(Long.parseLong(pair.substring(0, colon)), Long.parseLong(pair.substring(colon + 1)));
                    }
                }
                return new Kept(Integer.parseInt(lines[0].substring(4).trim()), removed, lines[2]);
            } catch (RuntimeException e) {
                throw new IOException("held state: malformed pid or removed range: " + e.getMessage(), e);
            }
        }
    }

    /**
     * Gives the holder (if any) the userfaultfd and what a successor needs. Failing to is logged,
     * not fatal: the VM runs on, only a restart of this handler would not be survived.
     */
    private void deposit(int uffd, int pid) {
        if (holder == null) {
            return;
        }
        try {
            UffdHolder.put(holder, holderName, uffd, new Kept(pid, Map.copyOf(removed), regionsJson).format());
        } catch (IOException | RuntimeException e) {
            log.warn("could not keep the userfaultfd of VMM pid {} in the holder at {}: a restart of this handler "
                    + "would leave the VM's faults waiting: {}", pid, holder, e.toString());
        }
    }

    /** The VMM is gone: the holder need not keep its userfaultfd any more. */
    private void release() {
        if (holder == null) {
            return;
        }
        try {
            UffdHolder.drop(holder, holderName);
        } catch (IOException | RuntimeException e) {
            log.warn("could not tell the uffd holder at {} that '{}' is gone: {}", holder, holderName, e.toString());
        }
    }

    /**
     * Serves events until the VMM goes away (returns true) or {@link #stop()} (false). Without a
     * VMM socket ({@code sock} < 0, after a resume) the VMM's exit is seen by probing its pid.
     */
    private boolean loop(Arena arena, int sock, int uffd, int pid, List<GuestRegion> regions) throws IOException {
        MemorySegment pfds = arena.allocate(16, 4);
        pfds.set(JAVA_INT, 0, uffd);
        pfds.set(JAVA_SHORT, 4, Sys.POLLIN);
        pfds.set(JAVA_INT, 8, sock);
        pfds.set(JAVA_SHORT, 12, Sys.POLLIN);
        int nfds = sock >= 0 ? 2 : 1;
        MemorySegment msgs = arena.allocate((long) Sys.UFFD_MSG_SIZE * MAX_MESSAGES, 8);
        MemorySegment zero = arena.allocate(regions.stream().mapToLong(GuestRegion::pageSize).max().orElse(4096), 4096);
        loopThread = Thread.currentThread();
        try (ExecutorService workers = Executors.newVirtualThreadPerTaskExecutor()) {
            this.workers = workers;
            while (!stopping) {
                if (vmmGone) {
                    return true;
                }
                int ready = Sys.poll(pfds, nfds, 100);
                if (ready == 0 && sock < 0 && Sys.kill(pid, 0) == -Sys.ESRCH) {
                    log.info("VMM pid {} has exited", pid);
                    return true;
                }
                if (ready == -Sys.EINTR || ready == 0) {
                    continue;
                }
                if (ready < 0) {
                    throw Sys.error("poll(uffd)", ready);
                }
                short uffdEvents = pfds.get(JAVA_SHORT, 6);
                short sockEvents = pfds.get(JAVA_SHORT, 14);
                if ((uffdEvents & Sys.POLLIN) != 0) {
                    long n = Sys.read(uffd, msgs);
                    if (n == 0) {
                        log.info("userfaultfd closed: the VMM is gone");
                        return true;
                    }
                    if (n > 0) {
                        boolean removedSome = false;
                        for (long at = 0; at + Sys.UFFD_MSG_SIZE <= n; at += Sys.UFFD_MSG_SIZE) {
                            MemorySegment msg = msgs.asSlice(at, Sys.UFFD_MSG_SIZE);
                            removedSome |= msg.get(java.lang.foreign.ValueLayout.JAVA_BYTE, 0) == Sys.UFFD_EVENT_REMOVE;
                            event(msg, workers, uffd, pid, regions, zero);
                        }
                        if (removedSome) {
                            // A successor must zero-fill these ranges too. The kept copy may list
                            // pages served since (a superset): harmless, as a page served after
                            // its remove can fault again only after another remove.
                            deposit(uffd, pid);
                        }
                    } else if (n != -Sys.EAGAIN && n != -Sys.EINTR) {
                        throw Sys.error("read(uffd)", n);
                    }
                } else if ((uffdEvents & (Sys.POLLERR | Sys.POLLHUP)) != 0) {
                    log.info("userfaultfd hung up: the VMM is gone");
                    return true;
                }
                if (sock >= 0 && ((sockEvents & (Sys.POLLHUP | Sys.POLLERR)) != 0 || (sockEvents & Sys.POLLIN) != 0
                        && Sys.receive(sock, 4096) == null)) {
                    log.info("the VMM closed {}", socketPath);
                    return true;
                }
            }
            return false;
        }
    }

    private void event(MemorySegment msg, ExecutorService workers, int uffd, int pid, List<GuestRegion> regions,
                       MemorySegment zero) {
        int type = Byte.toUnsignedInt(msg.get(java.lang.foreign.ValueLayout.JAVA_BYTE, 0));
        switch (type) {
            case Sys.UFFD_EVENT_PAGEFAULT -> {
                long flags = msg.get(JAVA_LONG, 8);
                long address = msg.get(JAVA_LONG, 16);
                int tid = msg.get(JAVA_INT, 24);
                GuestRegion region = regionOf(regions, address);
                if (region == null) {
                    log.error("fault at 0x{} is in no registered region", Long.toHexString(address));
                    signal(pid, tid);
                    return;
                }
                long page = address & -region.pageSize();
                faults.increment();
                if ((flags & Sys.UFFD_PAGEFAULT_FLAG_WP) != 0) {
                    // A write to a page installed write-protected: it is dirty now; lift the
                    // protection, which wakes the writer. No bytes move, so no worker.
                    dirty.put(page, region);
                    unprotect(uffd, page, region.pageSize());
                    return;
                }
                boolean write = (flags & Sys.UFFD_PAGEFAULT_FLAG_WRITE) != 0;
                if (inFlight.putIfAbsent(page, Boolean.FALSE) != null) {
                    // Being served: remember it. If the worker removed the entry between these two
                    // calls, replace() fails and nobody is left to wake this fault, so serve it.
                    if (inFlight.replace(page, Boolean.TRUE) != null || inFlight.putIfAbsent(page, Boolean.FALSE) != null) {
                        return;
                    }
                }
                Runnable serve = () -> {
                    try {
                        serveFault(uffd, pid, tid, region, page, zero, write);
                    } finally {
                        if (Boolean.TRUE.equals(inFlight.remove(page))) {
                            try (Arena a = Arena.ofConfined()) {
                                wake(uffd, page, region.pageSize(), a);
                            }
                        }
                    }
                };
                if (cachedAlready(region, page)) {
                    serve.run(); // no fetch to wait for: one ioctl here beats a hand-off to a worker
                } else {
                    workers.execute(serve);
                }
            }
            case Sys.UFFD_EVENT_REMOVE -> {
                long start = msg.get(JAVA_LONG, 8);
                long end = msg.get(JAVA_LONG, 16);
                removed.put(start, end);
                removes.increment();
            }
            default -> log.debug("userfaultfd event 0x{} ignored", Integer.toHexString(type));
        }
    }

    /** Whether the page's bytes are in the chunker's cache already (so serving it cannot block). */
    private boolean cachedAlready(GuestRegion region, long page) {
        return memory instanceof Chunker c && removed.isEmpty()
                && c.cache().isCached(region.offset() + (page - region.base()), region.pageSize());
    }

    private static GuestRegion regionOf(List<GuestRegion> regions, long address) {
        for (GuestRegion r : regions) {
            if (r.contains(address)) {
                return r;
            }
        }
        return null;
    }

    /** Whether {@code page} lies in a removed range; clears that page's mark if so. */
    private boolean takeRemoved(long page, long pageSize) {
        Map.Entry<Long, Long> e = removed.floorEntry(page);
        if (e == null || e.getValue() <= page) {
            return false;
        }
        // Split the range around the page: only this page is served now.
        removed.remove(e.getKey(), e.getValue());
        if (e.getKey() < page) {
            removed.put(e.getKey(), page);
        }
        if (page + pageSize < e.getValue()) {
            removed.put(page + pageSize, e.getValue());
        }
        return true;
    }

    private void serveFault(int uffd, int pid, int tid, GuestRegion region, long page, MemorySegment zero,
                            boolean write) {
        long size = region.pageSize();
        if (write && trackDirty) {
            dirty.put(page, region); // installed writable below: no WP fault will tell us
        }
        boolean protect = trackDirty && !write;
        if (takeRemoved(page, size)) {
            install(uffd, pid, page, size, zero, true, protect);
            return;
        }
        long offset = region.offset() + (page - region.base());
        faultOrder.add(offset);
        if (memory instanceof LayeredImage layered && layered.isZero(offset, size)) {
            install(uffd, pid, page, size, zero, true, protect); // the header says zeros: nothing to fetch
            return;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment src = pageBytes(offset, size, arena);
            install(uffd, pid, page, size, src, false, protect);
        } catch (IOException | RuntimeException e) {
            failures.increment();
            log.error("page 0x{} (offset {} of the memory image {}) could not be read after {} attempts; "
                    + "signalling SIGBUS to the VMM: {}", Long.toHexString(page), offset, memory, READ_ATTEMPTS, e.toString());
            signal(pid, tid);
        }
    }

    /** The page's bytes: a view of the chunker's cache where possible, else a copy. Retries with back-off. */
    private MemorySegment pageBytes(long offset, long size, Arena arena) throws IOException {
        IOException last = null;
        for (int attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
            if (attempt > 0) {
                retries.increment();
                LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(10L << (2 * (attempt - 1)))); // 10, 40, 160 ms
            }
            try {
                if (memory instanceof Chunker c) {
                    if (attempt == 0 && c.cache().isCached(offset, size)) {
                        fromCache.increment(); // served without waiting on a fetch
                    }
                    MemorySegment s = c.slice(offset, size);
                    if (s.byteSize() == size && s.address() % 4096 == 0) {
                        return s; // the cache's own page: UFFDIO_COPY straight from it
                    }
                }
                MemorySegment buf = arena.allocate(size, 4096);
                long got = memory.readAt(buf, offset);
                if (got != size) {
                    throw new IOException("short read of the memory image at " + offset + ": " + got + " of " + size);
                }
                return buf;
            } catch (IOException e) {
                last = e;
            }
        }
        throw last;
    }

    private void install(int uffd, int pid, long page, long size, MemorySegment src, boolean zeroPage,
                         boolean protect) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment arg = arena.allocate(40, 8);
            for (int attempt = 0; ; attempt++) {
                int rc;
                if (zeroPage && size == 4096 && !protect) {
                    arg.set(JAVA_LONG, 0, page);
                    arg.set(JAVA_LONG, 8, size);
                    arg.set(JAVA_LONG, 16, 0); // mode
                    rc = Sys.ioctl(uffd, Sys.UFFDIO_ZEROPAGE, arg);
                } else {
                    arg.set(JAVA_LONG, 0, page);
                    arg.set(JAVA_LONG, 8, src.address());
                    arg.set(JAVA_LONG, 16, size);
                    arg.set(JAVA_LONG, 24, protect ? Sys.UFFDIO_COPY_MODE_WP : 0); // mode
                    rc = Sys.ioctl(uffd, Sys.UFFDIO_COPY, arg);
                }
                if (rc == 0) {
                    (zeroPage ? zeroPages : copies).increment();
                    return;
                }
                if (rc == -Sys.EEXIST) {
                    alreadyMapped.increment();
                    wake(uffd, page, size, arena);
                    return;
                }
                if (rc == -Sys.EAGAIN && Thread.currentThread() == loopThread) {
                    // A remove event is queued and only this thread can drain it: retry elsewhere.
                    retries.increment();
                    workers.execute(() -> install(uffd, pid, page, size, src, zeroPage, protect));
                    return;
                }
                if (rc == -Sys.EAGAIN && attempt < EAGAIN_RETRIES) {
                    // A remove event is queued: the event loop drains it; try again shortly.
                    retries.increment();
                    LockSupport.parkNanos(100_000);
                    continue;
                }
                if (rc == -Sys.ESRCH) {
                    vmmGone = true;
                    return;
                }
                failures.increment();
                log.error("{} of page 0x{} failed: {}", zeroPage ? "UFFDIO_ZEROPAGE" : "UFFDIO_COPY",
                        Long.toHexString(page), new ErrnoException("ioctl", -rc).getMessage());
                return;
            }
        }
    }

    /** Lifts write protection from a page, which wakes its writer. */
    private void unprotect(int uffd, long page, long size) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment arg = arena.allocate(24, 8);
            arg.set(JAVA_LONG, 0, page);
            arg.set(JAVA_LONG, 8, size);
            arg.set(JAVA_LONG, 16, 0); // mode: clear WP, wake
            int rc = Sys.ioctl(uffd, Sys.UFFDIO_WRITEPROTECT, arg);
            if (rc < 0 && rc != -Sys.ESRCH) {
                failures.increment();
                log.error("UFFDIO_WRITEPROTECT (clear) of page 0x{} failed: {}", Long.toHexString(page),
                        new ErrnoException("ioctl", -rc).getMessage());
            }
        }
    }

    private static void wake(int uffd, long page, long size, Arena arena) {
        MemorySegment range = arena.allocate(16, 8);
        range.set(JAVA_LONG, 0, page);
        range.set(JAVA_LONG, 8, size);
        Sys.ioctl(uffd, Sys.UFFDIO_WAKE, range);
    }

    private static void signal(int pid, int tid) {
        int rc = tid > 0 ? Sys.tgkill(pid, tid, Sys.SIGBUS) : Sys.kill(pid, Sys.SIGBUS);
        if (rc < 0 && rc != -Sys.ESRCH) {
            log.error("could not signal SIGBUS to pid {} tid {}: errno {}", pid, tid, -rc);
        }
    }
}
