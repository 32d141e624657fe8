package dev.lazyblock.compress;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.content.ContentCollector;
import dev.lazyblock.content.ContentIndex;
import dev.lazyblock.content.ContentLocks;
import dev.lazyblock.content.ContentKey;
import dev.lazyblock.content.ContentTable;
import dev.lazyblock.content.CorruptChunkException;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.device.LayerExporter.Compression;
import dev.lazyblock.device.LayerExporter.ContentAddressing;
import dev.lazyblock.device.LayerHeader;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.frame.FrameCodecs;
import dev.lazyblock.s3.S3ObjectStore;
import dev.lazyblock.s3.TestS3;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import org.gaul.s3proxy.junit.S3ProxyExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import software.amazon.awssdk.services.s3.S3Client;

/**
 * Content-addressed layers of real file systems on a real S3 server (S3Proxy). Image A is
 * {@code mkfs.ext4 -d} of a set of real files (this JDK's shared libraries and configuration);
 * image B is A with more real files written into it ({@code debugfs write}: a template with
 * packages installed on top), built and exported as a base of its own, not as a layer of A.
 * B's export uploads exactly the chunks A's did not (counted by listing the bucket), both read
 * back byte for byte, B's shared chunks come from A's open cache, a chunk object replaced in the
 * bucket is caught by its hash, and once B's header is deleted the collector takes exactly the
 * chunks only B used.
 */
class ContentAddressedS3Test {
    static final int B = 4096;
    static final int CHUNK = 512 << 10;

    @RegisterExtension
    final S3ProxyExtension server = TestS3.server();

    @TempDir
    Path dir;

    private static void run(List<String> cmd, Path log) throws Exception {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        if (!p.waitFor(120, java.util.concurrent.TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError(cmd + " did not end in 120 s");
        }
        if (p.exitValue() != 0) {
            throw new AssertionError(cmd + " failed (" + p.exitValue() + "): " + Files.readString(log));
        }
    }

    /** Image A from real files, B = A plus more real files. */
    private Path[] images() throws Exception {
        Path jdk = Path.of(System.getProperty("java.home"));
        Path set = Files.createDirectories(dir.resolve("set-a"));
        try (var libs = Files.list(jdk.resolve("lib"))) {
            for (Path so : libs.filter(p -> p.toString().endsWith(".so")).toList()) {
                Files.copy(so, set.resolve(so.getFileName()));
            }
        }
        for (Path conf : Files.walk(jdk.resolve("conf")).filter(Files::isRegularFile).toList()) {
            Files.copy(conf, set.resolve("conf-" + conf.getFileName()), StandardCopyOption.REPLACE_EXISTING);
        }
        Path a = dir.resolve("a.img");
        String uuid = "11111111-2222-3333-4444-555555555555";
        run(List.of("mkfs.ext4", "-q", "-F", "-b", "4096", "-U", uuid, "-E", "hash_seed=" + uuid + ",root_owner=0:0",
                "-d", set.toString(), a.toString(), "64M"), dir.resolve("mkfs.log"));
        Path b = Files.copy(a, dir.resolve("b.img"));
        List<String> writes = new ArrayList<>();
        writes.add("mkdir extra");
        for (Path f : List.of(jdk.resolve("lib/server/libjvm.so"), jdk.resolve("lib/modules"))) {
            if (Files.size(f) < (40 << 20)) {
                writes.add("write " + f + " extra/" + f.getFileName());
            }
        }
        Path cmds = Files.write(dir.resolve("debugfs.cmds"), writes);
        run(List.of("debugfs", "-w", "-f", cmds.toString(), b.toString()), dir.resolve("debugfs.log"));
        assertFalse(java.util.Arrays.equals(Files.readAllBytes(a), Files.readAllBytes(b)), "B has more files than A");
        return new Path[] {a, b};
    }

    private static int chunkObjects(S3Client s3, String prefix) {
        return s3.listObjectsV2Paginator(r -> r.bucket(TestS3.BUCKET).prefix(prefix)).contents().stream()
                .mapToInt(o -> 1).sum();
    }

    private static Set<ContentKey> keys(LayerHeader h) {
        return new HashSet<>(h.builds().getFirst().content().keys());
    }

    private LayeredImage open(S3ObjectStore store, String header, ChunkerOptions options) throws IOException {
        Path caches = Files.createDirectories(dir.resolve("caches"));
        return LayeredImage.open(store, header, ChunkerKind.REQUEST_FIRST, options, (id, size, bs) ->
                SparseCache.create(caches.resolve(UUID.randomUUID() + ".cache"), size, bs, bs), null);
    }

    @Test
    void aDerivedFileSystemUploadsOnlyTheChunksThatDifferAndBothReadBack() throws Exception {
        Path[] img = images();
        TestS3.createBucket(server.getUri());
        Compression zstd = Compression.of(FrameCodecs.byName("zstd"), dir);
        try (S3ObjectStore store = TestS3.store(server.getUri(), "fleet");
             S3Client s3 = TestS3.config(server.getUri()).build().newClient()) {
            String chunks = "fleet/templates/" + ContentKey.CHUNKS + "/";
            LayerExporter.Layer a = LayerExporter.publishBase(img[0], B, store, "templates", n -> { }, zstd,
                    ContentAddressing.of(CHUNK));
            assertEquals(a.content().uploadedChunks(), chunkObjects(s3, chunks), "A's chunks, each once, in the bucket");
            LayerExporter.Layer b = LayerExporter.publishBase(img[1], B, store, "templates", n -> { }, zstd,
                    ContentAddressing.of(CHUNK));
            Set<ContentKey> onlyB = keys(b.header());
            onlyB.removeAll(keys(a.header()));
            long after = chunkObjects(s3, chunks);
            System.out.printf("content-addressed ext4 on S3, %d KiB chunks, zstd: A %s; B %s; bucket %d objects%n",
                    CHUNK >> 10, a.content(), b.content(), after);
            assertEquals(onlyB.size(), b.content().uploadedChunks(), "B uploads exactly the chunks A has not");
            assertEquals(a.content().uploadedChunks() + onlyB.size(), after, "counted at the server");
            assertTrue(b.content().presentChunks() > b.content().uploadedChunks() / 4,
                    "a derived image shares a good part of its chunks: " + b.content());

            ContentIndex index = new ContentIndex();
            ChunkerOptions options = ChunkerOptions.DEFAULTS.withContentIndex(index);
            try (LayeredImage ia = open(store, a.headerKey(), options);
                 LayeredImage ib = open(store, b.headerKey(), options)) {
                assertArrayEquals(Files.readAllBytes(img[0]), readAll(ia), "A reads back byte for byte");
                assertArrayEquals(Files.readAllBytes(img[1]), readAll(ib), "B reads back byte for byte");
                assertEquals(b.content().presentChunks(), index.hits(),
                        "every chunk B shares with A came from A's open cache, not the bucket: " + index);
            }

            // A chunk object replaced in the bucket (same name, other bytes) is caught by its hash.
            ContentTable t = b.header().builds().getFirst().content();
            int victim = -1;
            for (int i = 0; i < t.chunks() && victim < 0; i++) {
                if (onlyB.contains(t.key(i))) {
                    victim = i;
                }
            }
            byte[] wrong = new byte[t.storedSize(victim)];
            new java.util.Random(1).nextBytes(wrong);
            store.put(t.key(victim).objectKey("templates"), wrong);
            long off = t.uncompressedOffset(victim);
            try (LayeredImage ib = open(store, b.headerKey(), ChunkerOptions.DEFAULTS)) {
                byte[] block = new byte[B];
                IOException e = assertThrows(IOException.class, () -> ib.readAt(block, 0, B, off));
                assertTrue(e instanceof CorruptChunkException && e.getMessage().contains("not to their name"),
                        e.toString());
                assertFalse(ib.chunkers().getFirst().cache().isCached(off, B), "nothing of it is marked present");
            }

            // B is deleted: the collector takes exactly the chunks only B used, A still reads back.
            store.delete(b.headerKey());
            ContentCollector.Result gc = ContentCollector.collect(store, "templates", Duration.ZERO,
                    ContentLocks.DEFAULT_TTL, false);
            System.out.println("gc on S3: " + gc);
            assertEquals(onlyB.size(), gc.deleted(), gc.toString());
            assertEquals(a.content().uploadedChunks(), chunkObjects(s3, chunks));
            assertEquals(0, chunkObjects(s3, "fleet/templates/locks/"), "no lock left in the bucket");
            try (LayeredImage ia = open(store, a.headerKey(), ChunkerOptions.DEFAULTS)) {
                assertArrayEquals(Files.readAllBytes(img[0]), readAll(ia), "A reads back after the collection");
            }
        }
    }

    private static byte[] readAll(LayeredImage img) throws IOException {
        byte[] all = new byte[(int) img.size()];
        assertEquals(all.length, img.readAt(all, 0, all.length, 0));
        return all;
    }
}
