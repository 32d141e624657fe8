package dev.lazyblock.nbd;

import dev.lazyblock.testing.Tools;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.device.Overlay;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A server on a Unix socket, for real clients: the way a host daemon hands a disk to its VMM. */
class UnixSocketTest {
    @TempDir
    Path dir;

    @Test
    void nbdcopyAndQemuIoReadAndWriteThroughAUnixSocket() throws Exception {
        byte[] image = Images.random(21, 3 << 20);
        Path sock = dir.resolve("disk.sock");
        GatedDevice base = new GatedDevice(image, -1);
        try (Overlay overlay = new Overlay(base, SparseCache.create(dir.resolve("overlay.cache"), image.length,
                4096, 4096));
             NbdServer server = NbdServer.builder().export(NbdExport.writable("disk", overlay)).listenUnix(sock).start()) {
            String uri = server.uri("disk");
            assertEquals("nbd+unix:///disk?socket=" + sock, uri);
            assertEquals(sock, server.unixSocket());
            assertThrows(IllegalStateException.class, server::address, "a Unix server has no TCP address");

            Path copy = dir.resolve("copy.img");
            Tools.run("nbdcopy", uri, copy.toString()).ok();
            assertArrayEquals(image, Files.readAllBytes(copy), "what nbdcopy read over the socket");

            Tools.run("qemu-io", "-f", "raw", "-c", "write -P 0x5a 1M 64k", uri).ok();
            String read = Tools.run("qemu-io", "-f", "raw", "-c", "read -P 0x5a 1M 64k", uri).ok().output();
            assertFalse(read.contains("Pattern verification failed"), read);
            Tools.run("nbdcopy", uri, copy.toString()).ok();
            byte[] expected = image.clone();
            Arrays.fill(expected, 1 << 20, (1 << 20) + (64 << 10), (byte) 0x5a);
            assertArrayEquals(expected, Files.readAllBytes(copy), "the write, and nothing else, changed");
        }
        assertFalse(Files.exists(sock), "the socket file is removed at close");
    }

    @Test
    void aStaleSocketFileIsReplacedButAFileOrFifoIsNot() throws Exception {
        byte[] image = Images.random(22, 1 << 20);
        Path sock = dir.resolve("stale.sock");
        ScheduledThreadPoolExecutor timer = new ScheduledThreadPoolExecutor(1);
        try {
            // A server that dies without close leaves its socket file behind; mimic that with a bound channel.
            try (var left = java.nio.channels.ServerSocketChannel.open(java.net.StandardProtocolFamily.UNIX)) {
                left.bind(java.net.UnixDomainSocketAddress.of(sock));
            }
            assertTrue(Files.exists(sock));
            try (NbdServer server = NbdServer.builder().export(NbdExport.readOnly("d", new GatedDevice(image, -1)))
                    .listenUnix(sock).timer(timer).start()) {
                String json = Tools.run("nbdinfo", "--json", server.uri("d")).ok().output();
                assertTrue(json.contains("\"export-size\": " + image.length), json);
            }
            assertFalse(timer.isShutdown(), "a shared timer is not the server's to shut down");

            Path plain = dir.resolve("plain");
            Files.writeString(plain, "not a socket");
            IOException e = assertThrows(IOException.class, () -> NbdServer.builder()
                    .export(NbdExport.readOnly("d", new GatedDevice(image, -1))).listenUnix(plain).start());
            assertTrue(e.getMessage().contains("exists and is not a socket"), e.getMessage());
            assertEquals("not a socket", Files.readString(plain), "the file is left alone");

            Path fifo = dir.resolve("fifo");
            Tools.run("mkfifo", fifo.toString()).ok();
            IOException f = assertThrows(IOException.class, () -> NbdServer.builder()
                    .export(NbdExport.readOnly("d", new GatedDevice(image, -1))).listenUnix(fifo).start());
            assertTrue(f.getMessage().contains("exists and is not a socket"), f.getMessage());
            assertTrue(Files.exists(fifo, java.nio.file.LinkOption.NOFOLLOW_LINKS), "a FIFO is not a stale socket");
        } finally {
            timer.shutdownNow();
        }
    }
}
