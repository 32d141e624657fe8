package dev.lazyblock.nbd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.testing.Await;
import dev.lazyblock.nbd.RawClient.Chunk;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/**
 * Input no real client sends, over raw sockets. Each case gets the protocol's answer (an error
 * reply, or the end of that connection where the protocol allows no other), and after each one
 * the server still serves the next client, and a connection opened before it keeps working.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class MalformedInputTest {
    private static final long SIXTY_FOUR_MIB = 64L << 20;

    private Fixture fx;
    /** A connection that lives through every case. */
    private RawClient bystander;

    @BeforeAll
    void start(@TempDir Path dir) throws IOException {
        fx = Fixture.start(dir, NbdServer.builder().handshakeTimeout(Duration.ofSeconds(3)));
        bystander = RawClient.connect(fx.port()).hello();
        bystander.go("raw", true, false);
    }

    @AfterAll
    void stop() throws IOException {
        if (bystander != null) {
            bystander.close();
        }
        if (fx != null) {
            fx.close();
        }
    }

    @AfterEach
    void serverStillServes() throws IOException {
        try (RawClient next = RawClient.connect(fx.port()).hello()) {
            next.go("raw", true, false);
            next.request(0, Nbd.CMD_READ, 1, 8192, 4096);
            assertArrayEquals(Arrays.copyOfRange(fx.raw, 8192, 12288), next.structuredRead(1, 8192, 4096,
                    new ArrayList<>()), "the next client");
        }
        bystander.request(0, Nbd.CMD_READ, 2, 100, 100);
        assertArrayEquals(Arrays.copyOfRange(fx.raw, 100, 200), bystander.structuredRead(2, 100, 100,
                new ArrayList<>()), "a connection opened before");
    }

    private RawClient client() throws IOException {
        return RawClient.connect(fx.port()).hello();
    }

    // ------------------------------------------------------------------ handshake

    @Test
    void badOptionMagicEndsTheConnection() throws IOException {
        try (RawClient c = client()) {
            c.out.writeLong(0x1122334455667788L);
            c.out.writeInt(Nbd.OPT_GO);
            c.out.writeInt(0);
            c.out.flush();
            assertTrue(c.closedByServer());
        }
    }

    @Test
    void unknownClientFlagsEndTheConnection() throws IOException {
        try (RawClient c = RawClient.connect(fx.port())) {
            c.greeting();
            c.out.writeInt(0x80);
            c.out.flush();
            assertTrue(c.closedByServer());
        }
    }

    @Test
    void truncatedOptionEndsTheConnection() throws IOException {
        try (RawClient c = client()) {
            c.out.writeLong(Nbd.IHAVEOPT);
            c.out.writeInt(Nbd.OPT_GO);
            c.out.writeInt(100);
            c.out.write(new byte[10]);
            c.out.flush();
            c.socket.shutdownOutput();
            assertTrue(c.closedByServer());
        }
    }

    @Test
    void truncatedGreetingReplyEndsTheConnection() throws IOException {
        try (RawClient c = RawClient.connect(fx.port())) {
            c.greeting();
            c.out.write(new byte[] {0, 0});
            c.out.flush();
            c.socket.shutdownOutput();
            assertTrue(c.closedByServer());
        }
    }

    @Test
    void hugeOptionIsRefusedAsTooBig() throws IOException {
        try (RawClient c = client()) {
            c.out.writeLong(Nbd.IHAVEOPT);
            c.out.writeInt(Nbd.OPT_GO);
            c.out.writeInt(1 << 30);
            c.out.flush();
            RawClient.OptionReply r = c.optionReply();
            assertEquals(Nbd.REP_ERR_TOO_BIG, r.type());
            assertTrue(c.closedByServer());
        }
    }

    @Test
    void silentClientIsDroppedAfterTheHandshakeTimeout() throws IOException {
        try (RawClient c = RawClient.connect(fx.port())) {
            c.greeting();
            assertTrue(c.closedByServer(), "the server waited past its 3 s handshake timeout");
        }
    }

    @Test
    void abortIsAcknowledged() throws IOException {
        try (RawClient c = client()) {
            c.option(Nbd.OPT_ABORT, new byte[0]);
            assertEquals(Nbd.REP_ACK, c.optionReply().type());
            assertTrue(c.closedByServer());
        }
    }

    // ------------------------------------------------------------------ transmission

    @Test
    void badRequestMagicEndsTheConnection() throws IOException {
        try (RawClient c = client()) {
            c.go("raw", true, false);
            c.out.writeInt(0x12345678);
            c.out.write(new byte[24]);
            c.out.flush();
            assertTrue(c.closedByServer());
        }
    }

    @Test
    void requestsPastTheEndAreInvalid() throws IOException {
        for (boolean structured : new boolean[] {true, false}) {
            try (RawClient c = client()) {
                c.go("raw", structured, structured);
                long size = Fixture.RAW_SIZE;
                long[][] cases = {{size - 10, 4096}, {size, 1}, {size + 4096, 4096}, {-4096, 8192}, {Long.MIN_VALUE, 1}};
                long cookie = 1;
                for (long[] r : cases) {
                    c.request(0, Nbd.CMD_READ, cookie, r[0], r[1]);
                    Chunk reply = c.chunk();
                    assertEquals(cookie, reply.cookie());
                    assertEquals(Nbd.EINVAL, reply.errorCode(), "READ " + Long.toUnsignedString(r[0]) + "+" + r[1]);
                    if (structured) {
                        assertTrue(reply.message().contains("outside the export"), reply.message());
                        c.request(0, Nbd.CMD_BLOCK_STATUS, cookie, r[0], r[1]);
                        assertEquals(Nbd.EINVAL, c.chunk().errorCode(), "BLOCK_STATUS past the end");
                    }
                    cookie++;
                }
                // The last byte is fine.
                c.request(0, Nbd.CMD_READ, 99, size - 1, 1);
                if (structured) {
                    assertArrayEquals(new byte[] {fx.raw[(int) size - 1]},
                            c.structuredRead(99, size - 1, 1, new ArrayList<>()));
                } else {
                    assertEquals(0, c.simpleReply().error());
                    assertEquals(fx.raw[(int) size - 1], c.data(1)[0]);
                }
            }
        }
        try (RawClient c = client()) {
            c.go("rw", true, false);
            c.write(1, Images.LAYERED_SIZE - 100, new byte[4096]);
            assertEquals(Nbd.ENOSPC, c.chunk().errorCode(), "WRITE past the end");
            c.request(0, Nbd.CMD_WRITE_ZEROES, 2, Images.LAYERED_SIZE, 1);
            assertEquals(Nbd.ENOSPC, c.chunk().errorCode(), "WRITE_ZEROES past the end");
        }
    }

    @Test
    void zeroLengthRequestsAreInvalid() throws IOException {
        try (RawClient c = client()) {
            c.go("rw", true, true);
            int[] commands = {Nbd.CMD_READ, Nbd.CMD_WRITE, Nbd.CMD_WRITE_ZEROES, Nbd.CMD_TRIM, Nbd.CMD_CACHE,
                Nbd.CMD_BLOCK_STATUS};
            for (int cmd : commands) {
                c.request(0, cmd, cmd + 1, 4096, 0);
                Chunk r = c.chunk();
                assertEquals(cmd + 1, r.cookie());
                assertEquals(Nbd.EINVAL, r.errorCode(), Nbd.commandName(cmd) + " of length 0");
                assertTrue(r.message().contains("length 0"), r.message());
            }
        }
        try (RawClient c = client()) {
            c.go("raw", false, false);
            c.request(0, Nbd.CMD_READ, 5, 0, 0);
            RawClient.Simple s = c.simpleReply();
            assertEquals(5, s.cookie());
            assertEquals(Nbd.EINVAL, s.error());
        }
    }

    @Test
    void sixtyFourMibReadIsRefusedAndTheConnectionGoesOn() throws IOException {
        try (RawClient c = client()) {
            c.go("raw", true, false);
            c.request(0, Nbd.CMD_READ, 1, 0, SIXTY_FOUR_MIB);
            Chunk r = c.chunk();
            assertTrue(r.done());
            assertEquals(Nbd.EOVERFLOW, r.errorCode());
            assertTrue(r.message().contains("maximum payload"), r.message());
            c.request(0, Nbd.CMD_READ, 2, 0, (32 << 20) + 1);
            assertEquals(Nbd.EOVERFLOW, c.chunk().errorCode(), "one byte over the maximum");
            c.request(0, Nbd.CMD_READ, 3, 0, Fixture.RAW_SIZE);
            assertArrayEquals(fx.raw, c.structuredRead(3, 0, Fixture.RAW_SIZE, new ArrayList<>()));
        }
        try (RawClient c = client()) {
            c.go("raw", false, false);
            c.request(0, Nbd.CMD_READ, 3, 0, SIXTY_FOUR_MIB);
            assertEquals(Nbd.EOVERFLOW, c.simpleReply().error(), "simple replies: an error and no data");
            c.request(0, Nbd.CMD_READ, 4, 0, 16);
            assertEquals(0, c.simpleReply().error());
            assertArrayEquals(Arrays.copyOf(fx.raw, 16), c.data(16));
        }
    }

    @Test
    void sixtyFourMibWriteIsRefusedThenTheConnectionEnds() throws IOException {
        try (RawClient c = client()) {
            c.go("rw", true, false);
            c.request(0, Nbd.CMD_WRITE, 1, 0, SIXTY_FOUR_MIB);
            c.out.write(new byte[1 << 20]); // the start of a payload the server will not read
            c.out.flush();
            Chunk r = c.chunk();
            assertEquals(1, r.cookie());
            assertEquals(Nbd.EOVERFLOW, r.errorCode());
            assertTrue(c.closedByServer());
        }
    }

    @Test
    void disconnectMidRequestLeavesTheServerRunning() throws IOException {
        long before = fx.server.stats().connections();
        try (RawClient c = client()) {
            c.go("rw", true, false);
            c.request(0, Nbd.CMD_WRITE, 1, 0, 1 << 20);
            c.out.write(new byte[100_000]);
            c.out.flush();
        } // closed with 948,576 bytes of the payload missing
        try (RawClient c = client()) {
            c.go("raw", true, false);
            c.out.writeInt(Nbd.REQUEST_MAGIC);
            c.out.writeShort(0);
            c.out.flush(); // half a request header
        }
        try (RawClient c = client()) {
            c.go("raw", false, false);
            for (int i = 0; i < 16; i++) {
                c.request(0, Nbd.CMD_READ, i, (long) i << 20, 1 << 20); // replies nobody reads
            }
        }
        Await.until(() -> fx.server.stats().open() <= 1, Duration.ofSeconds(30),
                () -> "connections still open: " + fx.server.stats());
        assertTrue(fx.server.stats().connections() >= before + 3);
        assertFalse(fx.overlay.cache().isCached(0, 4096), "half a WRITE reached the overlay");
    }
}
