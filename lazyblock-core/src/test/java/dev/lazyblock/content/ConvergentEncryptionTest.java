package dev.lazyblock.content;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.device.LayerExporter.ContentAddressing;
import dev.lazyblock.device.LayerHeader;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.upstream.DirectoryStore;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.UUID;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Convergently encrypted chunks: the bucket holds no plaintext and no checksum of it, a
 * tenant's images still share their common chunks, another tenant's secret makes other objects
 * (no sharing, no confirming a guess), and reading needs the tenant's secret.
 */
class ConvergentEncryptionTest {
    static final int CHUNK = 64 << 10;
    static final ContentCipher TENANT_A = ContentCipher.fromSecret("tenant-a secret, 32 bytes long!!".getBytes(
            StandardCharsets.US_ASCII));
    static final ContentCipher TENANT_B = ContentCipher.fromSecret("tenant-b secret, 32 bytes long!!".getBytes(
            StandardCharsets.US_ASCII));

    @TempDir
    Path dir;

    /** Text (so a plaintext run is recognizable), with chunk 3 all zeros. */
    static byte[] image(int chunks) {
        byte[] b = new byte[chunks * CHUNK];
        byte[] line = "the quick brown fox jumps over the lazy dog, line ".getBytes(StandardCharsets.US_ASCII);
        SplittableRandom r = new SplittableRandom(4);
        for (int i = 0; i < b.length; i++) {
            b[i] = line[i % line.length];
            if (i % 997 == 0) {
                b[i] = (byte) ('0' + r.nextInt(10));
            }
        }
        Arrays.fill(b, 3 * CHUNK, 4 * CHUNK, (byte) 0);
        return b;
    }

    private LayerExporter.Layer publish(DirectoryStore store, String name, byte[] bytes, ContentCipher cipher)
            throws IOException {
        Path raw = Files.write(dir.resolve(name), bytes);
        return LayerExporter.publishBase(raw, 4096, store, "t", n -> { }, LayerExporter.Compression.NONE,
                ContentAddressing.of(CHUNK).encrypted(cipher));
    }

    private byte[] read(DirectoryStore store, String header, ChunkerOptions options) throws IOException {
        Path caches = Files.createDirectories(dir.resolve("caches"));
        try (LayeredImage img = LayeredImage.open(store, header, ChunkerKind.FULL_FETCH, options, (id, size, bs) ->
                SparseCache.create(caches.resolve(UUID.randomUUID() + ".cache"), size, bs, bs), null)) {
            byte[] all = new byte[(int) img.size()];
            img.readAt(all, 0, all.length, 0);
            return all;
        }
    }

    @Test
    void theBucketHoldsNoPlaintextAndTheTenantReadsItBack() throws Exception {
        byte[] model = image(6);
        DirectoryStore store = new DirectoryStore(dir.resolve("store"));
        LayerExporter.Layer l = publish(store, "a", model, TENANT_A);
        ContentTable t = l.header().builds().getFirst().content();
        assertTrue(t.encrypted());
        assertEquals(LayerHeader.parse(l.header().toBytes()), l.header(), "wrapped keys round-trip in the header");
        byte[] needle = "the quick brown fox".getBytes(StandardCharsets.US_ASCII);
        try (var objects = Files.walk(dir.resolve("store"))) {
            for (Path p : objects.filter(Files::isRegularFile).toList()) {
                assertFalse(contains(Files.readAllBytes(p), needle), p + " holds plaintext");
            }
        }
        for (int i = 0; i < t.chunks(); i++) {
            assertEquals(0, t.uncompressedCrc(i), "no checksum of the plaintext is published");
            assertFalse(contains(t.wrappedKey(i), TENANT_A.chunkKey(new byte[32])), "keys are wrapped");
        }
        assertArrayEquals(model, read(store, l.headerKey(), ChunkerOptions.DEFAULTS.withContentCipher(TENANT_A)));
        assertEquals("ContentCipher[secret hidden]", TENANT_A.toString());
        assertFalse(ContentAddressing.of(CHUNK).encrypted(TENANT_A).toString().contains("tenant-a"));
    }

    @Test
    void aTenantsImagesShareTheirChunksAndAnotherTenantsDoNot() throws Exception {
        byte[] a = image(8);
        byte[] b = a.clone();
        b[5 * CHUNK + 1] ^= 1;
        DirectoryStore store = new DirectoryStore(dir.resolve("store"));
        LayerExporter.Layer la = publish(store, "a", a, TENANT_A);
        LayerExporter.Layer lb = publish(store, "b", b, TENANT_A);
        assertEquals(1, lb.content().uploadedChunks(), "dedup works on encrypted chunks: " + lb.content());
        assertEquals(6, lb.content().presentChunks());
        LayerExporter.Layer other = publish(store, "c", a, TENANT_B);
        assertEquals(0, other.content().presentChunks(), "another tenant's chunks are other objects");
        assertEquals(7, other.content().uploadedChunks());
        assertNotEquals(la.header().builds().getFirst().content().key(0), other.header().builds().getFirst().content()
                .key(0));
        assertArrayEquals(b, read(store, lb.headerKey(), ChunkerOptions.DEFAULTS.withContentCipher(TENANT_A)));
        assertArrayEquals(a, read(store, other.headerKey(), ChunkerOptions.DEFAULTS.withContentCipher(TENANT_B)));
    }

    @Test
    void readingNeedsTheTenantsSecret() throws Exception {
        DirectoryStore store = new DirectoryStore(dir.resolve("store"));
        LayerExporter.Layer l = publish(store, "a", image(4), TENANT_A);
        IllegalArgumentException none = assertThrows(IllegalArgumentException.class,
                () -> read(store, l.headerKey(), ChunkerOptions.DEFAULTS));
        assertTrue(none.getMessage().contains("is encrypted"), none.getMessage());
        // Another tenant's secret fails the open, not each read: the chunk keys do not unwrap with it.
        IllegalArgumentException wrong = assertThrows(IllegalArgumentException.class,
                () -> read(store, l.headerKey(), ChunkerOptions.DEFAULTS.withContentCipher(TENANT_B)));
        assertTrue(wrong.getMessage().contains("was not encrypted with this tenant's secret"), wrong.toString());
        assertThrows(IllegalArgumentException.class, () -> ContentCipher.fromSecret(new byte[8]));
    }

    @Test
    void anotherTenantGetsNothingFromTheHostWhileTheOwnerHasTheImageOpen() throws Exception {
        DirectoryStore store = new DirectoryStore(dir.resolve("store"));
        byte[] model = image(6);
        LayerExporter.Layer l = publish(store, "a", model, TENANT_A);
        ContentIndex index = new ContentIndex();
        Path caches = Files.createDirectories(dir.resolve("caches"));
        try (ContentCache files = new ContentCache(dir.resolve("content"), 1L << 30)) {
            ChunkerOptions host = ChunkerOptions.DEFAULTS.withContentIndex(index).withContentCache(files);
            try (LayeredImage owner = LayeredImage.open(store, l.headerKey(), ChunkerKind.FULL_FETCH,
                    host.withContentCipher(TENANT_A), (id, size, bs) ->
                            SparseCache.create(caches.resolve(UUID.randomUUID() + ".cache"), size, bs, bs), null)) {
                byte[] all = new byte[model.length];
                owner.readAt(all, 0, all.length, 0);
                assertArrayEquals(model, all);
                // Tenant B names the same chunks (it has the header) on the same host, with its own secret.
                IllegalArgumentException denied = assertThrows(IllegalArgumentException.class,
                        () -> read(store, l.headerKey(), host.withContentCipher(TENANT_B)));
                assertTrue(denied.getMessage().contains("was not encrypted with this tenant's secret"),
                        denied.toString());
            }
            assertEquals(0, index.hits(), "no plain bytes of an encrypted chunk handed from one build to another");
            assertEquals(0, files.chunks(), "nor kept as a host file by hash");
        }
    }

    private static boolean contains(byte[] hay, byte[] needle) {
        // ISO-8859-1 maps each byte to one char: a byte search as a string search.
        return new String(hay, StandardCharsets.ISO_8859_1).contains(new String(needle, StandardCharsets.ISO_8859_1));
    }
}
