package dev.lazyblock.uffd;

import dev.lazyblock.device.Device;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A page-fault handler in a process of its own, for the restart test: it can be killed with
 * SIGKILL at its Nth page read, from inside a fault (the fault read from the userfaultfd, its page
 * not yet copied), which is the worst moment for a handler to die.
 *
 * <pre>HandlerProcess serve|resume SOCKET HOLDER NAME IMAGE KILL_AT_READ(-1: never)</pre>
 * Prints {@code served faults=F copies=C} and exits 0 when its VMM is gone.
 */
final class HandlerProcess {
    public static void main(String[] args) throws Exception {
        String mode = args[0];
        Path socket = Path.of(args[1]);
        Path holder = Path.of(args[2]);
        String name = args[3];
        Path image = Path.of(args[4]);
        int killAt = Integer.parseInt(args[5]);
        try (FileChannel ch = FileChannel.open(image, StandardOpenOption.READ)) {
            AtomicInteger reads = new AtomicInteger();
            Device memory = new Device() {
                @Override public long size() {
                    try {
                        return ch.size();
                    } catch (IOException e) {
                        throw new java.io.UncheckedIOException(e);
                    }
                }
                @Override public int blockSize() { return 4096; }
                @Override public long readAt(MemorySegment dst, long off) throws IOException {
                    if (reads.incrementAndGet() == killAt) {
                        System.out.println("killing myself at read " + killAt);
                        System.out.flush();
                        Sys.kill((int) ProcessHandle.current().pid(), 9);
                    }
                    return ch.read(dst.asByteBuffer(), off);
                }
                @Override public void close() { }
            };
            PageFaultHandler handler = new PageFaultHandler(memory, socket);
            PageFaultHandler.Stats s = mode.equals("serve")
                    ? handler.keepIn(holder, name).serve(Duration.ofSeconds(60))
                    : handler.resume(holder, name);
            System.out.println("served faults=" + s.faults() + " copies=" + s.copies() + " zeroPages=" + s.zeroPages());
        }
    }
}
