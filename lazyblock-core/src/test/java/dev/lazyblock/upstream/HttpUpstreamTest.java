package dev.lazyblock.upstream;

import dev.lazyblock.testing.UpstreamReads;

import dev.lazyblock.testing.JettyFileServer;
import dev.lazyblock.testing.Await;
import dev.lazyblock.testing.Seeds;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** HttpUpstream against Jetty's ResourceHandler: a server that implements Range on its own. */
@Timeout(120)
class HttpUpstreamTest {
    private static final int SIZE = 1024 * 1024 + 321;
    private static final int BIG = 16 * 1024 * 1024;

    @TempDir
    static Path dir;
    static JettyFileServer server;
    static byte[] data;

    @BeforeAll
    static void serve() throws Exception {
        data = Files.readAllBytes(UpstreamReads.writeRandomFile(dir, "image.raw", 42, SIZE));
        UpstreamReads.writeRandomFile(dir, "big.raw", 43, BIG);
        Files.write(dir.resolve("empty.raw"), new byte[0]);
        server = new JettyFileServer(dir);
    }

    @AfterAll
    static void stop() throws Exception {
        server.close();
    }

    @BeforeEach
    void answerHead() {
        server.refuseHead(false);
    }

    private static HttpUpstream upstream(String path) {
        return new HttpUpstream(server.uri(path));
    }

    @Test
    void randomReadFullyMatchesTheFile() throws Exception {
        try (HttpUpstream up = upstream("/image.raw")) {
            for (long seed : Seeds.seeds(3).toArray()) {
                Seeds.replayable(seed, () -> UpstreamReads.assertReadFullyMatches(up, data, seed, 150));
            }
        }
    }

    @Test
    void randomStreamsMatchTheFile() throws Exception {
        try (HttpUpstream up = upstream("/image.raw")) {
            for (long seed : Seeds.seeds(3).toArray()) {
                Seeds.replayable(seed, () -> UpstreamReads.assertStreamsMatch(up, data, seed, 80));
            }
        }
    }

    @Test
    void sizeComesFromHeadAndIsAskedOnce() throws IOException {
        try (HttpUpstream up = upstream("/image.raw")) {
            int heads = server.heads();
            assertEquals(SIZE, up.size());
            assertEquals(SIZE, up.size());
            assertEquals(heads + 1, server.heads());
        }
    }

    @Test
    void sizeComesFromARangedGetWhenHeadIsRefused() throws IOException {
        server.refuseHead(true);
        try (HttpUpstream up = upstream("/image.raw")) {
            int gets = server.gets();
            assertEquals(SIZE, up.size());
            assertEquals(gets + 1, server.gets());
        }
    }

    @Test
    void sizeOfAnEmptyObjectIsZeroEvenWithoutHead() throws IOException {
        try (HttpUpstream up = upstream("/empty.raw")) {
            assertEquals(0, up.size());
        }
        server.refuseHead(true);
        try (HttpUpstream up = upstream("/empty.raw")) {
            assertEquals(0, up.size()); // from a 416 "bytes */0"
        }
    }

    @Test
    void sizeIsLearnedFromTheFirstRead() throws IOException {
        try (HttpUpstream up = upstream("/image.raw")) {
            up.readFully(10, ByteBuffer.allocate(10));
            int heads = server.heads();
            int gets = server.gets();
            assertEquals(SIZE, up.size());
            assertEquals(heads, server.heads());
            assertEquals(gets, server.gets());
        }
    }

    @Test
    void redirectsAreFollowed() throws IOException {
        try (HttpUpstream up = upstream("/moved/image.raw")) {
            ByteBuffer dst = ByteBuffer.allocate(1000);
            up.readFully(5000, dst);
            assertArrayEquals(Arrays.copyOfRange(data, 5000, 6000), dst.array());
            assertEquals(SIZE, up.size());
        }
    }

    @Test
    void rangeEndingPastTheEndIsRefused() throws IOException {
        try (HttpUpstream up = upstream("/image.raw")) {
            // The server clips the range to the object (RFC 9110): a Content-Range we did not ask for.
            UpstreamException e = assertThrows(UpstreamException.class,
                    () -> up.readFully(SIZE - 10, ByteBuffer.allocate(20)));
            assertTrue(e.getMessage().contains("does not match the request for bytes=" + (SIZE - 10)
                    + "-" + (SIZE + 9)), e.getMessage());
            assertTrue(e.getMessage().contains("/" + SIZE), e.getMessage());
            assertThrows(UpstreamException.class, () -> up.openRange(SIZE - 10, 20));
        }
    }

    @Test
    void rangeStartingPastTheEndIsNotSatisfiable() throws IOException {
        try (HttpUpstream up = upstream("/image.raw")) {
            UpstreamException e = assertThrows(UpstreamException.class,
                    () -> up.readFully(SIZE, ByteBuffer.allocate(1)));
            assertTrue(e.getMessage().contains("range not satisfiable (status 416): the object is "
                    + SIZE + " bytes"), e.getMessage());
            assertTrue(e.getMessage().contains(up.name()), e.getMessage());
        }
    }

    @Test
    void negativeOffsetOrLengthIsRefused() {
        try (HttpUpstream up = upstream("/image.raw")) {
            assertThrows(IllegalArgumentException.class, () -> up.readFully(-1, ByteBuffer.allocate(1)));
            assertThrows(IllegalArgumentException.class, () -> up.openRange(0, -1));
        }
    }

    @Test
    void missingObjectIs404NamingTheUrlWithoutItsQuery() {
        URI signed = URI.create(server.uri("/absent.raw") + "?X-Amz-Signature=secret");
        try (HttpUpstream up = new HttpUpstream(signed)) {
            UpstreamException e = assertThrows(UpstreamException.class,
                    () -> up.readFully(0, ByteBuffer.allocate(10)));
            assertTrue(e.getMessage().contains("status 404"), e.getMessage());
            assertTrue(e.getMessage().contains(server.uri("/absent.raw").toString()), e.getMessage());
            assertTrue(!e.getMessage().contains("secret") && !e.getMessage().contains("?"), e.getMessage());
            UpstreamException s = assertThrows(UpstreamException.class, up::size);
            assertTrue(s.getMessage().contains("status 404"), s.getMessage());
        }
    }

    @Test
    void nameHasNoUserInfoQueryOrFragment() {
        URI uri = URI.create("https://user:pw@example.com:8443/bucket/a%20b.raw?X-Amz-Signature=secret#frag");
        try (HttpUpstream up = new HttpUpstream(uri)) {
            assertEquals("https://example.com:8443/bucket/a%20b.raw", up.name());
        }
    }

    @Test
    void streamsClosedEarlyReleaseTheirConnections() throws Exception {
        try (HttpUpstream up = upstream("/big.raw")) {
            List<Upstream.RangeStream> streams = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                Upstream.RangeStream s = up.openRange(i * 1024L, BIG - i * 1024L);
                ByteBuffer dst = ByteBuffer.allocate(100);
                assertEquals(100, s.read(dst));
                streams.add(s);
            }
            Await.until(() -> server.openConnections() >= 8, Duration.ofSeconds(10),
                    () -> "8 streams open, server sees " + server.openConnections() + " connections");
            for (Upstream.RangeStream s : streams) {
                s.close();
            }
            // A stream that was not closed would hold its connection until the server's idle timeout.
            Await.until(() -> server.openConnections() == 0, Duration.ofSeconds(10),
                    () -> server.openConnections() + " connections still open after closing every stream");
        }
    }

    @Test
    void streamsReadToTheEndReuseConnections() throws IOException {
        try (HttpUpstream up = upstream("/image.raw")) {
            long before = server.acceptedConnections();
            for (int i = 0; i < 30; i++) {
                try (Upstream.RangeStream s = up.openRange(i * 1000L, 4096)) {
                    ByteBuffer dst = ByteBuffer.allocate(8192);
                    while (s.read(dst) >= 0) {
                        // drain
                    }
                }
            }
            // Loose on purpose: a returning connection may race the next request once or twice,
            // but a stream that did not finish its body would cost a connection every time.
            long accepted = server.acceptedConnections() - before;
            assertTrue(accepted <= 20, accepted + " connections for 30 sequential streams");
        }
    }

    @Test
    void readFullyOfALargeRangeInOneRequest() throws IOException {
        byte[] big = Files.readAllBytes(dir.resolve("big.raw"));
        try (HttpUpstream up = upstream("/big.raw")) {
            ByteBuffer dst = ByteBuffer.allocateDirect(BIG - 7);
            up.readFully(7, dst);
            dst.flip();
            assertArrayEquals(Arrays.copyOfRange(big, 7, BIG), UpstreamReads.bytes(dst));
        }
    }

    @Test
    void requestTimeoutIsConfigurable() throws IOException {
        try (HttpUpstream up = new HttpUpstream(server.uri("/image.raw"), Duration.ofSeconds(1),
                Duration.ofSeconds(5))) {
            assertEquals(SIZE, up.size());
        }
        assertThrows(IllegalArgumentException.class,
                () -> new HttpUpstream(server.uri("/image.raw"), Duration.ofSeconds(1), Duration.ZERO));
    }
}
