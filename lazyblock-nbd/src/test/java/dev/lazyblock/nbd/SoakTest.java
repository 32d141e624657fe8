package dev.lazyblock.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.device.Overlay;
import dev.lazyblock.upstream.SimulatedUpstream;
import dev.lazyblock.upstream.SimulatedUpstream.LatencyModel;
import dev.lazyblock.upstream.SyntheticUpstream;
import java.lang.management.ManagementFactory;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A bounded soak: a writable export of a 4 GiB image behind the NFS model, 8 clients doing
 * random reads and writes for 2 minutes (-Dlazyblock.soak.seconds=N to change). Each client
 * owns the blocks b with b % 8 == its index and keeps an exact model of them, so every byte
 * read is checked; afterwards no error happened and the thread count is flat.
 */
class SoakTest {
    static final long SIZE = 4L << 30;
    static final int B = 4096;
    static final int CLIENTS = 8;

    @TempDir
    Path dir;

    static byte expected(long block, int version, int i) {
        return version == 0 ? SyntheticUpstream.byteAt(block * B + i) : (byte) (block * 31 + version * 17 + i);
    }

    @Test
    void eightClientsReadAndWriteForMinutesWithoutAWrongByteOrALeak() throws Exception {
        long seconds = Long.getLong("lazyblock.soak.seconds", 120);
        try (SimulatedUpstream up = new SimulatedUpstream(new SyntheticUpstream(SIZE), LatencyModel.NFS);
             Chunker base = ChunkerKind.REQUEST_FIRST.create(up, SparseCache.create(dir.resolve("base"), SIZE),
                     ChunkerOptions.DEFAULTS);
             Overlay overlay = new Overlay(base, SparseCache.create(dir.resolve("overlay"), SIZE));
             NbdServer server = NbdServer.builder().export(NbdExport.writable("soak", overlay))
                     .listen(new InetSocketAddress("127.0.0.1", 0)).start()) {
            int threadsAtStart = ManagementFactory.getThreadMXBean().getThreadCount();
            long heapAtStart = usedHeapAfterGc();
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
            List<Future<long[]>> fs = new ArrayList<>();
            try (ExecutorService pool = Executors.newFixedThreadPool(CLIENTS)) {
                for (int c = 0; c < CLIENTS; c++) {
                    int id = c;
                    fs.add(pool.submit(() -> client(server.port(), id, end)));
                }
                // Pools (connections, fetch threads) grow to the load first: compare the end with a
                // point a quarter in, when they have, so what the check sees is growth over time.
                Thread.sleep(TimeUnit.SECONDS.toMillis(seconds) / 4); // a point in the run, not a settle
                int threadsWarm = ManagementFactory.getThreadMXBean().getThreadCount();
                long reads = 0;
                long writes = 0;
                for (Future<long[]> f : fs) {
                    long[] n = f.get(seconds + 120, TimeUnit.SECONDS);
                    reads += n[0];
                    writes += n[1];
                }
                int threadsAtEnd = ManagementFactory.getThreadMXBean().getThreadCount();
                long heapAtEnd = usedHeapAfterGc();
                System.out.printf("soak %d s: %,d reads and %,d writes checked from %d clients; threads %d at start, "
                                + "%d a quarter in, %d at the end; heap after GC %,d -> %,d bytes; %,d remote requests, "
                                + "%,d bytes fetched%n", seconds, reads, writes, CLIENTS, threadsAtStart, threadsWarm,
                        threadsAtEnd, heapAtStart, heapAtEnd, up.requestCount(), up.bytesServed());
                assertTrue(reads > 0 && writes > 0);
                assertTrue(threadsAtEnd <= threadsWarm + 64, "threads grew from " + threadsWarm + " a quarter in to "
                        + threadsAtEnd + " at the end");
                assertTrue(heapAtEnd < heapAtStart + (256L << 20), "heap " + heapAtStart + " -> " + heapAtEnd);
            }
        }
    }

    private static long usedHeapAfterGc() {
        System.gc();
        return ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
    }

    /** One client's loop; returns {reads, writes}. */
    private static long[] client(int port, int id, long end) throws Exception {
        SplittableRandom rnd = new SplittableRandom(1000 + id);
        Map<Long, Integer> versions = new HashMap<>();
        long blocks = SIZE / B;
        long reads = 0;
        long writes = 0;
        long cookie = 0;
        try (RawClient c = RawClient.connect(port)) {
            c.hello();
            assertEquals(SIZE, c.go("soak", false, false).size());
            byte[] buf = new byte[B];
            while (System.nanoTime() < end) {
                // Mostly a hot set, sometimes anywhere: both cache hits and fresh fetches.
                long n = rnd.nextInt(4) == 0 ? rnd.nextLong(blocks / CLIENTS) : rnd.nextLong(4096);
                long block = n * CLIENTS + id;
                if (rnd.nextInt(5) < 2) {
                    int v = versions.getOrDefault(block, 0) + 1;
                    for (int i = 0; i < B; i++) {
                        buf[i] = expected(block, v, i);
                    }
                    c.write(++cookie, block * B, buf);
                    RawClient.Simple r = c.simpleReply();
                    assertEquals(0, r.error(), "write of block " + block);
                    assertEquals(cookie, r.cookie());
                    versions.put(block, v);
                    writes++;
                } else {
                    c.request(0, Nbd.CMD_READ, ++cookie, block * B, B);
                    RawClient.Simple r = c.simpleReply();
                    assertEquals(0, r.error(), "read of block " + block);
                    byte[] got = c.data(B);
                    int v = versions.getOrDefault(block, 0);
                    for (int i = 0; i < B; i++) {
                        if (got[i] != expected(block, v, i)) {
                            throw new AssertionError("client " + id + ": block " + block + " byte " + i + " differs (version "
                                    + v + ")");
                        }
                    }
                    reads++;
                }
            }
        }
        return new long[] {reads, writes};
    }
}
