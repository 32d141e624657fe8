package dev.lazyblock.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.testing.Await;
import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.device.Overlay;
import dev.lazyblock.upstream.DirectoryStore;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** base:allocation of layered images, overlays and plain devices. */
class ExtentsTest {
    private static final int MIB = Images.MIB;
    private static final int HZ = Nbd.STATE_HOLE | Nbd.STATE_ZERO;

    @TempDir
    Path dir;
    private LayeredImage image;
    private Overlay overlay;

    @BeforeEach
    void open() throws IOException {
        DirectoryStore store = new DirectoryStore(dir.resolve("store"));
        Images.Layered l = Images.layered(store, "x", 1);
        Path caches = Files.createDirectories(dir.resolve("caches"));
        image = LayeredImage.open(store, l.headerKey(), caches, ChunkerKind.FULL_FETCH, ChunkerOptions.DEFAULTS);
        overlay = new Overlay(image, SparseCache.create(caches.resolve("ov"), image.size(), 4096, 4096));
    }

    @AfterEach
    void close() {
        overlay.close();
        image.close();
    }

    private static List<String> describe(dev.lazyblock.device.Device d, long off, long len, int max) {
        List<String> out = new ArrayList<>();
        int n = Extents.describe(d, off, len, max, (o, l, f) -> out.add(o + "+" + l + ":" + f));
        assertEquals(out.size(), n);
        return out;
    }

    @Test
    void zeroMappingsAreHolesThatReadAsZeros() {
        long size = image.size();
        long tail = size - (12L * MIB + 65536);
        assertEquals(List.of("0+" + 4 * MIB + ":0", 4 * MIB + "+" + 2 * MIB + ":" + HZ, 6 * MIB + "+" + 6 * MIB + ":0",
                12 * MIB + "+65536:" + HZ, (12 * MIB + 65536) + "+" + tail + ":0"), describe(image, 0, size, 100));
        // Clipped to the request, and to the limit.
        assertEquals(List.of("4190208+4096:0", 4 * MIB + "+100:" + HZ), describe(image, 4 * MIB - 4096, 4196, 100));
        assertEquals(List.of("0+" + 4 * MIB + ":0"), describe(image, 0, size, 1));
        assertTrue(Extents.mayHaveHoles(image));
    }

    @Test
    void writtenOverlayBlocksAreDataOverTheBasesHoles() throws IOException {
        overlay.writeAt(new byte[] {1}, 0, 1, 5L * MIB + 10);      // one block in the hole
        overlay.writeAt(new byte[8192], 0, 8192, 5L * MIB + 4096); // the next two blocks, zeros but written
        assertEquals(List.of("0+" + 4 * MIB + ":0", 4 * MIB + "+" + MIB + ":" + HZ, 5 * MIB + "+12288:0",
                (5 * MIB + 12288) + "+" + (MIB - 12288) + ":" + HZ, 6 * MIB + "+" + MIB + ":0"),
                describe(overlay, 0, 7L * MIB, 100));
        assertTrue(Extents.mayHaveHoles(overlay));
    }

    @Test
    void aPlainDeviceIsAllData() {
        GatedDevice d = new GatedDevice(new byte[10_000], -1);
        assertEquals(List.of("5+9995:0"), describe(d, 5, 9995, 10));
        assertFalse(Extents.mayHaveHoles(d));
    }

    @Test
    void prefetchSkipsZeroMappings() throws IOException {
        Extents.prefetch(image, 3L * MIB, 4L * MIB); // data, a hole, data
        var cache = image.chunkers().getFirst().cache();
        // Prefetch returns once the bytes are readable; a chunk is marked present a moment later.
        Await.until(() -> cache.isCached(3L * MIB, MIB), java.time.Duration.ofSeconds(10),
                () -> "the data before the hole");
        Await.until(() -> cache.isCached(4L * MIB, 3L * MIB), java.time.Duration.ofSeconds(10),
                () -> "build bytes [4M, 7M): image [6M, 9M)");
        assertFalse(cache.isCached(8L * MIB, 4096), "nothing past the range's chunks");
    }
}
