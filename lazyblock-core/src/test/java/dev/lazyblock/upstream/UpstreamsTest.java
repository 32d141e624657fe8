package dev.lazyblock.upstream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class UpstreamsTest {
    @TempDir
    Path dir;

    @Test
    void plainPathOpensAFile() throws IOException {
        Path f = Files.write(dir.resolve("a.raw"), new byte[10]);
        try (Upstream up = Upstreams.open(f.toString())) {
            assertInstanceOf(FileUpstream.class, up);
            assertEquals(10, up.size());
        }
    }

    @Test
    void fileUrlOpensAFile() throws IOException {
        Path f = Files.write(dir.resolve("b.raw"), new byte[20]);
        try (Upstream up = Upstreams.open(f.toUri().toString())) {
            assertInstanceOf(FileUpstream.class, up);
            assertEquals(f.toString(), up.name());
            assertEquals(20, up.size());
        }
    }

    @Test
    void httpAndHttpsOpenAnHttpUpstream() throws IOException {
        try (Upstream up = Upstreams.open("http://example.com/x.raw")) {
            assertInstanceOf(HttpUpstream.class, up);
        }
        try (Upstream up = Upstreams.open("HTTPS://example.com/y.raw?X-Amz-Signature=secret")) {
            assertInstanceOf(HttpUpstream.class, up);
            assertEquals("HTTPS://example.com/y.raw", up.name());
        }
    }

    @Test
    void otherSchemesAreRefusedNamingTheSupportedOnes() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Upstreams.open("gs://bucket/key?token=secret"));
        assertTrue(e.getMessage().contains("'gs'"), e.getMessage());
        assertTrue(e.getMessage().contains("file://, http://, https://"), e.getMessage());
        assertFalse(e.getMessage().contains("secret"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Upstreams.open("ftp://host/key"));
    }

    @Test
    void malformedUrlIsRefusedWithoutEchoingIt() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Upstreams.open("https://example.com/x?sig=a secret"));
        assertTrue(e.getMessage().contains("malformed https URL"), e.getMessage());
        assertFalse(e.getMessage().contains("secret"), e.getMessage());
    }
}
