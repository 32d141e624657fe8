package dev.lazyblock.device;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The pages a run faulted, in the order it faulted them: recorded by {@link PageFaultHandler},
 * saved to a small file, and on the next resume read ahead in that order so most faults find
 * their page already in the cache (record-and-prefetch, as REAP does).
 *
 * <p>File format: {@code "LZBLKWS1"}, page size (u64), count (u64), then the image offsets (u64
 * each), little-endian.
 */
public record WorkingSet(long pageSize, List<Long> offsets) {
    private static final Logger log = LoggerFactory.getLogger(WorkingSet.class);
    private static final byte[] MAGIC = {'L', 'Z', 'B', 'L', 'K', 'W', 'S', '1'};

    public WorkingSet {
        offsets = List.copyOf(new LinkedHashSet<>(offsets)); // first fault of each page only
    }

    public void save(Path file) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(24 + 8 * offsets.size()).order(ByteOrder.LITTLE_ENDIAN);
        b.put(MAGIC).putLong(pageSize).putLong(offsets.size());
        for (long off : offsets) {
            b.putLong(off);
        }
        Files.write(file, b.array());
    }

    public static WorkingSet load(Path file) throws IOException {
        byte[] bytes = Files.readAllBytes(file);
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        byte[] magic = new byte[8];
        if (bytes.length < 24) {
            throw new IOException("working set " + file + " is " + bytes.length + " bytes, shorter than its header");
        }
        b.get(magic);
        if (!java.util.Arrays.equals(magic, MAGIC)) {
            throw new IOException("working set " + file + " does not start with LZBLKWS1");
        }
        long pageSize = b.getLong();
        long count = b.getLong();
        if (count != (bytes.length - 24) / 8 || (bytes.length - 24) % 8 != 0) {
            throw new IOException("working set " + file + " says " + count + " pages, holds " + (bytes.length - 24) / 8);
        }
        List<Long> offsets = new ArrayList<>((int) count);
        for (long i = 0; i < count; i++) {
            offsets.add(b.getLong());
        }
        return new WorkingSet(pageSize, offsets);
    }

    /**
     * Reads every page of the working set from {@code memory}, in order, with at most
     * {@code parallelism} reads in flight, so the chunks behind them land in the cache. Errors are
     * logged and skipped: a prefetch only warms, the faults still fetch what it missed.
     *
     * @return completes with the number of pages read once all are done
     */
    public CompletableFuture<Long> prefetch(Device memory, int parallelism) {
        Semaphore slots = new Semaphore(parallelism);
        AtomicLong done = new AtomicLong();
        CompletableFuture<Long> result = new CompletableFuture<>();
        Thread.ofVirtual().name("lazyblock-prefetch").start(() -> {
            try (ExecutorService exec = Executors.newVirtualThreadPerTaskExecutor()) {
                for (long off : offsets) {
                    slots.acquireUninterruptibly();
                    exec.execute(() -> {
                        try (Arena page = Arena.ofConfined()) {
                            memory.readAt(page.allocate(pageSize), off);
                            done.incrementAndGet();
                        } catch (IOException | RuntimeException e) {
                            log.debug("prefetch of offset {} failed: {}", off, e.toString());
                        } finally {
                            slots.release();
                        }
                    });
                }
            } catch (RuntimeException e) {
                result.completeExceptionally(e);
                return;
            }
            result.complete(done.get());
        });
        return result;
    }
}
