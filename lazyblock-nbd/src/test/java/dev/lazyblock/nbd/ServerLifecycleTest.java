package dev.lazyblock.nbd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.testing.Await;
import dev.lazyblock.nbd.RawClient.Chunk;
import java.io.IOException;
import java.net.ConnectException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** Shutdown: requests in flight finish, idle and negotiating clients are let go, nothing new gets in. */
class ServerLifecycleTest {
    @Test
    void closeFinishesRequestsInFlightThenDisconnectsEveryone() throws Exception {
        GatedDevice gated = new GatedDevice(Images.random(9, 1 << 20), 8192);
        NbdServer server = NbdServer.builder().export(NbdExport.readOnly("g", gated))
                .listen(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0)).start();
        int port = server.port();
        try (RawClient idle = RawClient.connect(port).hello();
             RawClient negotiating = RawClient.connect(port).hello();
             RawClient busy = RawClient.connect(port).hello()) {
            idle.go("g", true, false);
            busy.go("g", true, false);
            busy.request(0, Nbd.CMD_READ, 42, gated.gate, 4096);
            assertTrue(gated.reached.await(10, TimeUnit.SECONDS));

            Thread closer = Thread.ofPlatform().start(server::close);
            Await.until(() -> {
                try {
                    new java.net.Socket(InetAddress.getLoopbackAddress(), port).close();
                    return false;
                } catch (IOException refused) {
                    return true;
                }
            }, Duration.ofSeconds(10), () -> "the server still accepts connections while closing");
            assertTrue(idle.closedByServer(), "an idle client is let go");
            assertTrue(negotiating.closedByServer(), "a negotiating client is let go");

            gated.open();
            Chunk r = busy.chunk();
            assertEquals(42, r.cookie());
            assertArrayEquals(Arrays.copyOfRange(gated.bytes, 8192, 8192 + 4096),
                    Arrays.copyOfRange(r.payload(), 8, r.payload().length), "the read in flight finished");
            assertTrue(busy.closedByServer());
            assertTrue(closer.join(Duration.ofSeconds(30)), "close() did not return");
            assertEquals(0, server.stats().open());
        }
        assertThrows(ConnectException.class, () -> RawClient.connect(port));
        server.close(); // idempotent
    }

    @Test
    void platformReadersServeEachConnectionOnAThreadThatEndsWithIt() throws Exception {
        byte[] image = Images.random(10, 1 << 20);
        GatedDevice device = new GatedDevice(image, image.length); // never gated: every read goes through
        device.open();
        try (NbdServer server = NbdServer.builder().export(NbdExport.readOnly("p", device)).platformReaders(true)
                .listen(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0)).start()) {
            for (int round = 0; round < 3; round++) {
                try (RawClient a = RawClient.connect(server.port()).hello();
                     RawClient b = RawClient.connect(server.port()).hello()) {
                    a.go("p", true, false);
                    b.go("p", false, false);
                    Await.until(() -> platformReaders() == 2, Duration.ofSeconds(10),
                            () -> platformReaders() + " platform reader threads for 2 connections");
                    a.request(0, Nbd.CMD_READ, 1, 4096 * round, 4096);
                    Chunk r = a.chunk();
                    assertArrayEquals(Arrays.copyOfRange(image, 4096 * round, 4096 * round + 4096),
                            Arrays.copyOfRange(r.payload(), 8, r.payload().length), "a structured read");
                    b.request(0, Nbd.CMD_READ, 2, 100, 100);
                    Chunk h = b.chunk();
                    assertEquals(2, h.cookie());
                    assertEquals(0, h.error());
                    assertArrayEquals(Arrays.copyOfRange(image, 100, 200), b.in.readNBytes(100), "a simple read");
                }
                Await.until(() -> platformReaders() == 0 && server.stats().open() == 0, Duration.ofSeconds(10),
                        () -> platformReaders() + " platform reader threads left after their clients went");
            }
        }
    }

    /** Live platform threads that read a connection. */
    private static long platformReaders() {
        return Thread.getAllStackTraces().keySet().stream()
                .filter(t -> !t.isVirtual() && t.isAlive() && t.getName().equals("nbd-conn")).count();
    }
}
