package dev.lazyblock.upstream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ObjectStoreTest {
    @TempDir
    Path dir;

    @Test
    void keysThatCouldEscapeOrConfuseAStoreAreRefused() {
        for (String bad : List.of("", "/abs", "a//b", "a/", "../x", "a/../b", "./a", "a/.", "a\\b", "a\nb",
                "x".repeat(1025))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ObjectKeys.validate(bad),
                    "key '" + bad + "'");
            assertTrue(e.getMessage().startsWith("object key"), e.getMessage());
        }
        for (String good : List.of("a", "layers/abc.diff", "a.b/c-d_e/f", "x".repeat(1024), "ünïcode/ok")) {
            assertEquals(good, ObjectKeys.validate(good));
        }
    }

    @Test
    void aDirectoryStoreRoundTripsObjectsAndRefusesBadKeys() throws Exception {
        Path src = dir.resolve("src.bin");
        byte[] bytes = new byte[100_000];
        new java.util.Random(1).nextBytes(bytes);
        Files.write(src, bytes);
        try (DirectoryStore store = new DirectoryStore(dir.resolve("store"))) {
            assertFalse(store.exists("layers/a.diff"));
            store.put("layers/a.diff", src);
            store.put("layers/a.header", new byte[] {1, 2, 3});
            assertTrue(store.exists("layers/a.diff"));
            try (Upstream up = store.open("layers/a.diff")) {
                assertEquals(bytes.length, up.size());
                ByteBuffer b = ByteBuffer.allocate(1000);
                up.readFully(5000, b);
                assertArrayEquals(java.util.Arrays.copyOfRange(bytes, 5000, 6000), b.array());
            }
            store.delete("layers/a.diff");
            store.delete("layers/a.diff"); // missing: not an error
            assertFalse(store.exists("layers/a.diff"));
            assertThrows(UpstreamException.class, () -> store.open("layers/a.diff"));
            assertThrows(IllegalArgumentException.class, () -> store.put("../escape", new byte[1]));
            assertTrue(Files.notExists(dir.resolve("escape")));
            try (var files = Files.list(dir.resolve("store/layers"))) {
                assertEquals(List.of("a.header"), files.map(p -> p.getFileName().toString()).toList(),
                        "no temporary files left behind");
            }
        }
    }
}
