package dev.lazyblock.chunker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.testing.Await;
import dev.lazyblock.upstream.SimulatedUpstream;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import jdk.jfr.Recording;
import jdk.jfr.consumer.RecordedEvent;
import jdk.jfr.consumer.RecordingFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * How a request-first miss is scheduled: a read across chunks fetches them at once, a stream
 * that defers to the demand requests in flight at its first byte goes on when one of them
 * stalls, and a JFR recording sees the miss and the request that served it, stage by stage.
 */
class RequestFirstSchedulingTest {
    private static final int CHUNK = 1 << 20;
    private static final int BLOCK = 4096;

    @TempDir
    Path dir;

    private static byte[] image(int chunks) {
        byte[] image = new byte[chunks * CHUNK];
        new Random(17).nextBytes(image);
        return image;
    }

    private Chunker chunker(SimulatedUpstream up, ChunkerOptions options, String name) throws Exception {
        return ChunkerKind.REQUEST_FIRST.create(up, SparseCache.create(dir.resolve(name), up.size()),
                options.withChunkSize(CHUNK));
    }

    private static byte[] read(Chunker c, long off, int len) throws Exception {
        byte[] got = new byte[len];
        c.readAt(got, 0, len, off);
        return got;
    }

    private static byte[] slice(byte[] image, long off, int len) {
        return java.util.Arrays.copyOfRange(image, (int) off, (int) off + len);
    }

    @Test
    void aReadAcrossChunksStillFetchesEveryChunkAtOnce() throws Exception {
        byte[] image = image(2);
        TestUpstream store = new TestUpstream(image);
        long off = CHUNK - BLOCK;
        // Both chunks' demand requests must be in flight together to pass the barrier: a reader
        // that fetched its first chunk on its own thread before joining the second would not.
        CyclicBarrier both = new CyclicBarrier(2);
        store.onRequest = (o, len) -> {
            if (len == BLOCK && (o == off || o == CHUNK)) {
                try {
                    both.await(10, TimeUnit.SECONDS);
                } catch (Exception e) {
                    throw new UncheckedIOException(new java.io.IOException("the two chunks were not fetched at once", e));
                }
            }
        };
        try (SimulatedUpstream up = new SimulatedUpstream(store, SimulatedUpstream.LatencyModel.NONE, CHUNK);
             Chunker c = chunker(up, ChunkerOptions.DEFAULTS, "across")) {
            assertArrayEquals(slice(image, off, 2 * BLOCK), read(c, off, 2 * BLOCK));
        }
    }

    @Test
    void aStreamDeferringToAStalledDemandRequestGoesOnWithoutIt() throws Exception {
        byte[] image = image(1);
        TestUpstream store = new TestUpstream(image);
        long off = 200L * BLOCK;
        CountDownLatch release = new CountDownLatch(1);
        // The reader's own request stalls after its first byte (in the first piece's read); the
        // streams' pieces (which never start at that block) come at once.
        store.onRequest = (o, len) -> {
            if (o == off) {
                try {
                    release.await(30, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        };
        try (SimulatedUpstream up = new SimulatedUpstream(store, SimulatedUpstream.LatencyModel.NONE, BLOCK);
             Chunker c = chunker(up, ChunkerOptions.DEFAULTS.withFetchTimeout(Duration.ofSeconds(30)), "defer")) {
            CompletableFuture<Void> unblock = CompletableFuture.runAsync(() -> {
                // Everything but the reader's block comes in while its request is stalled.
                Await.until(() -> up.bytesServed() >= CHUNK - BLOCK, Duration.ofSeconds(10),
                        () -> "the streams go on past the stalled request, " + up.bytesServed() + " bytes served");
                release.countDown();
            });
            assertArrayEquals(slice(image, off, BLOCK), read(c, off, BLOCK));
            unblock.get(20, TimeUnit.SECONDS);
            Await.until(() -> c.cache().isCached(0, CHUNK), Duration.ofSeconds(10), () -> "the chunk completes");
        } finally {
            release.countDown();
        }
    }

    @Test
    void aRecordingSeesEachMissAndTheRequestThatServedItStageByStage() throws Exception {
        byte[] image = image(1);
        long off = 100L * BLOCK;
        Path file = dir.resolve("misses.jfr");
        try (Recording rec = new Recording()) {
            rec.enable(MissEvent.NAME).withThreshold(Duration.ZERO);
            rec.enable(FetchEvent.NAME).withThreshold(Duration.ZERO);
            rec.start();
            try (SimulatedUpstream up = new SimulatedUpstream(image, SimulatedUpstream.LatencyModel.NFS);
                 Chunker c = chunker(up, ChunkerOptions.DEFAULTS, "jfr")) {
                assertArrayEquals(slice(image, off, BLOCK), read(c, off, BLOCK));
                Await.until(() -> c.cache().isCached(0, CHUNK), Duration.ofSeconds(10), () -> "the chunk completes");
                assertArrayEquals(image, read(c, 0, CHUNK)); // hits: no more miss events
            }
            rec.stop();
            rec.dump(file);
        }
        List<RecordedEvent> events = RecordingFile.readAllEvents(file);
        List<RecordedEvent> misses = events.stream().filter(e -> e.getEventType().getName().equals(MissEvent.NAME)).toList();
        List<RecordedEvent> fetches = events.stream().filter(e -> e.getEventType().getName().equals(FetchEvent.NAME)).toList();
        assertEquals(1, misses.size(), "one miss, then hits: " + misses);
        RecordedEvent miss = misses.getFirst();
        assertEquals(off, miss.getLong("offset"));
        long ttfb = SimulatedUpstream.LatencyModel.NFS.ttfbNanos();
        assertTrue(miss.getDuration("wait").toNanos() >= ttfb, "a miss waits at least the store's first byte: " + miss);
        RecordedEvent own = fetches.stream().filter(e -> e.getString("kind").equals("priority")).findFirst().orElseThrow();
        assertEquals(off, own.getLong("offset"));
        assertEquals(BLOCK, own.getLong("length"));
        assertTrue(own.getBoolean("demand"));
        assertTrue(own.getDuration("firstByte").toNanos() >= ttfb, "first byte after the model's: " + own);
        assertTrue(own.getDuration("firstByte").toNanos() <= miss.getDuration("wait").toNanos(),
                "the store's part is within the reader's wait");
        long streams = fetches.stream().filter(e -> e.getString("kind").equals("stream")).count();
        assertEquals(2, streams, "the rest of the chunk in two streams: " + fetches);
    }
}
