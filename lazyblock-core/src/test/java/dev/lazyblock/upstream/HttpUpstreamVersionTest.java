package dev.lazyblock.upstream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.testing.JettyFileServer;
import dev.lazyblock.testing.UpstreamReads;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * An object replaced under its URL while it is read (the same size, other bytes) fails the next
 * read instead of mixing two versions, whether the server sends ETags (Jetty's are weak, so they
 * are compared, not sent as If-Match) or only Last-Modified; and {@link HttpUpstream#version()}
 * tells the two versions apart. If-Match with a strong ETag: {@code HttpUpstreamErrorsTest}.
 */
@Timeout(60)
class HttpUpstreamVersionTest {
    private static final int SIZE = 256 * 1024;

    @TempDir
    Path dir;

    private Path object(long seed) throws IOException {
        return UpstreamReads.writeRandomFile(dir, "image.raw", seed, SIZE);
    }

    /** Other bytes, same size, a modification time surely different at HTTP's one-second precision. */
    private static void replace(Path file, long seed) throws IOException {
        Files.write(file, UpstreamReads.randomBytes(seed, SIZE));
        Files.setLastModifiedTime(file, FileTime.from(Files.getLastModifiedTime(file).toInstant().plusSeconds(10)));
    }

    private static byte[] read(Upstream up, long off, int len) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(len);
        up.readFully(off, b);
        return b.array();
    }

    @Test
    void withETagsTheFirstIsPinnedAndAReplacedObjectIsRefused() throws Exception {
        Path file = object(1);
        byte[] first = Files.readAllBytes(file);
        try (JettyFileServer server = new JettyFileServer(dir, true);
             HttpUpstream up = new HttpUpstream(server.uri("/image.raw"))) {
            String version = up.version();
            assertNotNull(version);
            assertTrue(version.startsWith("\"") || version.startsWith("W/\""), "an ETag: " + version);
            assertArrayEquals(Arrays.copyOfRange(first, 100, 4196), read(up, 100, 4096));

            replace(file, 2);
            UpstreamException e = assertThrows(UpstreamException.class, () -> read(up, 0, 4096));
            assertTrue(e.getMessage().contains("the object changed since it was first read"), e.getMessage());
            UpstreamException stream = assertThrows(UpstreamException.class, () -> up.openRange(0, 4096).close());
            assertTrue(stream.getMessage().contains("the object changed since it was first read"), stream.getMessage());

            try (HttpUpstream fresh = new HttpUpstream(server.uri("/image.raw"))) {
                assertTrue(!version.equals(fresh.version()), "a new version: " + fresh.version());
                assertArrayEquals(Arrays.copyOfRange(Files.readAllBytes(file), 0, 4096), read(fresh, 0, 4096));
            }
        }
    }

    @Test
    void withOnlyLastModifiedAReplacedObjectIsRefusedToo() throws Exception {
        Path file = object(3);
        try (JettyFileServer server = new JettyFileServer(dir, false);
             HttpUpstream up = new HttpUpstream(server.uri("/image.raw"))) {
            String version = up.version();
            assertNotNull(version);
            assertTrue(version.startsWith("last-modified "), version);
            read(up, 0, 4096);

            replace(file, 4);
            UpstreamException e = assertThrows(UpstreamException.class, () -> read(up, 8192, 4096));
            assertTrue(e.getMessage().contains("the object changed since it was first read: Last-Modified "),
                    e.getMessage());
            try (HttpUpstream fresh = new HttpUpstream(server.uri("/image.raw"))) {
                assertTrue(!version.equals(fresh.version()), "a new version: " + fresh.version());
            }
        }
    }

    @Test
    void anUnchangedObjectKeepsItsVersionAcrossUpstreams() throws Exception {
        object(5);
        try (JettyFileServer server = new JettyFileServer(dir, true);
             HttpUpstream a = new HttpUpstream(server.uri("/image.raw"));
             HttpUpstream b = new HttpUpstream(server.uri("/image.raw"))) {
            assertEquals(a.version(), b.version());
            UpstreamReads.assertRandomRangesMatch(a, Files.readAllBytes(dir.resolve("image.raw")), 5, 30);
        }
    }
}
