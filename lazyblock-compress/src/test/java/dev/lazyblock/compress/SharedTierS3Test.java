package dev.lazyblock.compress;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.chunker.ChunkTier;
import dev.lazyblock.testing.FaultProxy;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.device.LayerExporter.Compression;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.frame.FrameCodecs;
import dev.lazyblock.s3.S3ObjectStore;
import dev.lazyblock.testing.Seeds;
import dev.lazyblock.s3.TestS3;
import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CyclicBarrier;
import java.util.stream.Stream;
import org.gaul.s3proxy.junit.S3ProxyExtension;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Two "hosts" (two stores, two local caches, two tier instances) share one tier directory in
 * front of S3 (S3Proxy). Bucket requests are counted on the server's side of the S3 client, by
 * a TCP proxy in front of S3Proxy.
 */
class SharedTierS3Test {
    static final int B = 4096;

    @RegisterExtension
    final S3ProxyExtension server = TestS3.server();

    @TempDir
    Path dir;

    /** Between the hosts and the bucket: counts the GETs each host costs it, on the bucket's side. */
    FaultProxy proxy;

    private long gets() {
        return proxy.requests().stream().filter(r -> r.method().equals("GET")).count();
    }

    @BeforeEach
    void bucket() throws Exception {
        TestS3.createBucket(server.getUri());
        proxy = new FaultProxy(server.getUri());
    }

    @org.junit.jupiter.api.AfterEach
    void closeProxy() throws Exception {
        proxy.close();
    }

    /** A host: its own S3 client (through the counting proxy), its own cache directory, the shared tier. */
    private LayeredImage host(S3ObjectStore store, String headerKey, String name, ChunkTier tier) throws Exception {
        Path caches = Files.createDirectories(dir.resolve("host-" + name + "-" + System.nanoTime()));
        return LayeredImage.open(store, headerKey, ChunkerKind.REQUEST_FIRST, ChunkerOptions.DEFAULTS,
                (identity, size, blockSize) -> dev.lazyblock.cache.SparseCache.create(
                        caches.resolve(java.util.UUID.randomUUID() + ".cache"), size, blockSize, blockSize), tier);
    }

    private LayerExporter.Layer publish(String codec, byte[] src) throws Exception {
        Path raw = Files.write(dir.resolve("src-" + codec), src);
        try (S3ObjectStore direct = TestS3.store(server.getUri(), "fleet")) {
            return LayerExporter.publishBase(raw, B, direct, "img-" + codec, n -> { },
                    Compression.of(FrameCodecs.byName(codec), dir));
        }
    }

    private static void readAll(LayeredImage img, byte[] src, long seed) throws Exception {
        CompressedLayerS3Test.readRandomly(img, src, seed, 8, 20);
        byte[] all = new byte[src.length];
        img.readAt(MemorySegment.ofArray(all), 0);
        assertArrayEquals(src, all);
    }

    /** The second host's reads of an image the first host read cost no bucket request. */
    @ParameterizedTest
    @ValueSource(strings = {"zstd", "lz4", "none"})
    void aSecondHostReadsWhatTheFirstFetchedWithoutAskingTheBucket(String codec) throws Exception {
        byte[] src = Images.diskLike(21, (11 << 20) + 3 * B);
        LayerExporter.Layer layer = publish(codec, src);
        Path tierDir = dir.resolve("tier");
        try (S3ObjectStore storeA = TestS3.store(proxy.uri(), "fleet");
             S3ObjectStore storeB = TestS3.store(proxy.uri(), "fleet");
             ChunkTier tierA = new ChunkTier(tierDir);
             ChunkTier tierB = new ChunkTier(tierDir)) {
            long before = gets();
            try (LayeredImage a = host(storeA, layer.headerKey(), "a", tierA)) {
                readAll(a, src, 1);
            }
            long hostA = gets() - before;
            tierA.awaitWrites(30_000);
            int chunks = codec.equals("none") ? 3 : 6; // 4 MiB chunks or 2 MiB frames
            assertEquals(chunks, tierA.written(), tierA.toString());
            assertTrue(hostA >= chunks + 1, "host A fetched " + hostA);

            try (LayeredImage b = host(storeB, layer.headerKey(), "b", tierB)) {
                long opened = gets(); // opening reads the header: one GET
                readAll(b, src, 2);
                assertEquals(0, gets() - opened, "host B asked the bucket for chunks the tier holds");
            }
            assertEquals(chunks, tierB.hits(), tierB.toString());
            assertEquals(0, tierB.bad());
        }
    }

    /**
     * Both hosts fill the same chunks at once, many readers each: afterwards every chunk has one
     * whole, good tier file, and no temporary file is left.
     */
    @Test
    void concurrentFillsOfTheSameChunkLeaveOneGoodFile() throws Exception {
        byte[] src = Images.diskLike(22, 6 << 20);
        LayerExporter.Layer layer = publish("zstd", src);
        String build = layer.header().buildId().toString();
        for (long seed : Seeds.seeds(4).toArray()) {
            Path tierDir = dir.resolve("tier-" + seed);
            try (S3ObjectStore storeA = TestS3.store(proxy.uri(), "fleet");
                 S3ObjectStore storeB = TestS3.store(proxy.uri(), "fleet");
                 ChunkTier tierA = new ChunkTier(tierDir);
                 ChunkTier tierB = new ChunkTier(tierDir);
                 LayeredImage a = host(storeA, layer.headerKey(), "a", tierA);
                 LayeredImage b = host(storeB, layer.headerKey(), "b", tierB)) {
                int threads = 16;
                CyclicBarrier start = new CyclicBarrier(threads);
                List<Thread> ts = new ArrayList<>();
                Throwable[] errors = new Throwable[threads];
                for (int t = 0; t < threads; t++) {
                    int id = t;
                    LayeredImage img = t % 2 == 0 ? a : b;
                    ts.add(Thread.ofPlatform().start(() -> {
                        Random r = new Random(seed + id);
                        try {
                            start.await();
                            for (int i = 0; i < 8; i++) {
                                int off = r.nextInt(src.length - B);
                                byte[] got = new byte[B];
                                img.readAt(MemorySegment.ofArray(got), off);
                                if (!java.util.Arrays.equals(got, 0, B, src, off, off + B)) {
                                    throw new AssertionError("wrong bytes at " + off);
                                }
                            }
                        } catch (Throwable e) {
                            errors[id] = e;
                        }
                    }));
                }
                for (Thread t : ts) {
                    t.join();
                }
                for (Throwable e : errors) {
                    if (e != null) {
                        throw new AssertionError(e.getMessage(), e);
                    }
                }
                tierA.awaitWrites(30_000);
                tierB.awaitWrites(30_000);
            }
            try (Stream<Path> files = Files.list(tierDir.resolve(build))) {
                List<Path> all = files.toList();
                assertTrue(all.stream().noneMatch(p -> p.getFileName().toString().endsWith(".tmp")), all.toString());
                try (ChunkTier check = new ChunkTier(tierDir)) {
                    var t = layer.header().builds().getFirst().frames();
                    for (Path p : all) {
                        int frame = Integer.parseInt(p.getFileName().toString().replace(".chunk", ""));
                        MemorySegment seg = MemorySegment.ofArray(new byte[t.compressedSize(frame)]);
                        assertTrue(check.read(build, frame, seg), p + " is not a whole, good tier file");
                    }
                }
            }
        }
    }

    /** A tier file corrupted or truncated by the test is ignored, refetched from the bucket, and replaced. */
    @ParameterizedTest
    @ValueSource(strings = {"zstd", "none"})
    void aCorruptOrTruncatedTierFileIsRefetchedAndReplaced(String codec) throws Exception {
        byte[] src = Images.diskLike(23, 9 << 20);
        LayerExporter.Layer layer = publish(codec, src);
        String build = layer.header().buildId().toString();
        Path tierDir = dir.resolve("tier");
        try (S3ObjectStore store = TestS3.store(proxy.uri(), "fleet"); ChunkTier tier = new ChunkTier(tierDir)) {
            try (LayeredImage a = host(store, layer.headerKey(), "a", tier)) {
                readAll(a, src, 3);
            }
            tier.awaitWrites(30_000);
            long written = tier.written();
            // Frame/chunk 0: one byte flipped in the middle. Chunk 1: cut short.
            Path f0 = tier.file(build, 0);
            try (RandomAccessFile raf = new RandomAccessFile(f0.toFile(), "rw")) {
                long pos = raf.length() / 2;
                raf.seek(pos);
                int v = raf.read();
                raf.seek(pos);
                raf.write(v ^ 0x40);
            }
            Path f1 = tier.file(build, 1);
            try (RandomAccessFile raf = new RandomAccessFile(f1.toFile(), "rw")) {
                raf.setLength(raf.length() - 100);
            }
            try (LayeredImage b = host(store, layer.headerKey(), "b", tier)) {
                long opened = gets();
                readAll(b, src, 4);
                assertEquals(2, gets() - opened, "exactly the two bad chunks come from the bucket");
            }
            assertEquals(2, tier.bad(), tier.toString());
            tier.awaitWrites(30_000);
            assertEquals(written + 2, tier.written(), "both bad files replaced");
            try (LayeredImage c = host(store, layer.headerKey(), "c", tier)) {
                long opened = gets();
                readAll(c, src, 5);
                assertEquals(0, gets() - opened, "the replaced files are good");
            }
        }
    }
}
