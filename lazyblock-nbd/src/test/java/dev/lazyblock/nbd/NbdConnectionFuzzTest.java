package dev.lazyblock.nbd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import com.code_intelligence.jazzer.api.BugDetectors;
import com.code_intelligence.jazzer.api.SilentCloseable;
import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * Coverage-guided fuzzing of the NBD server (Jazzer): any bytes a client sends, through a real
 * socket into a real {@link NbdServer} over the {@link Fixture}'s exports (a request-first chunker,
 * a layered image, a writable overlay over it). In a plain test run each input of the checked-in
 * corpus ({@code src/test/resources/dev/lazyblock/nbd/NbdConnectionFuzzTestInputs}) runs once;
 * {@code bin/fuzz} runs it with coverage guidance.
 *
 * <p>Each input is sent twice: as the whole client side of the handshake (after the greeting),
 * and as the transmission phase behind a valid handshake whose choices (export, structured
 * replies, base:allocation) its first byte picks, so mutations reach the request parsing instead
 * of dying at the first option magic.
 *
 * <p>The contract: whatever the bytes, the server answers or closes that connection within the
 * bound, no exception but I/O escapes a request or the connection (counted by the server's
 * {@code unexpected}), the read-only exports keep their bytes, and the next client is served.
 */
class NbdConnectionFuzzTest {
    /** Reply bytes read per connection before the client hangs up (a READ of 32 MiB per 28 input bytes). */
    private static final int MAX_REPLY = 8 << 20;
    /** Every so many inputs, the full check: read-only exports intact, a new client served. */
    private static final int CHECK_EVERY = 500;
    private static final String[] EXPORTS = {"raw", "layered", "rw", "ro"};

    private static Path dir;
    private static Fixture fx;
    private static int inputs;

    @BeforeAll
    static void start() throws IOException {
        dir = Files.createTempDirectory("nbd-fuzz");
        fx = Fixture.start(dir);
    }

    @AfterAll
    static void stop() throws IOException {
        try {
            if (fx != null) {
                serverIntact();
                fx.close();
            }
        } finally {
            if (dir != null) {
                try (Stream<Path> s = Files.walk(dir)) {
                    s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
                }
            }
        }
    }

    @FuzzTest(maxDuration = "10s")
    void anyClientBytesGetAnswersOrAClosedConnectionAndTheServerServesOn(byte[] input) throws IOException {
        int port = fx.port();
        // Jazzer's SSRF detector refuses every connection while fuzzing; this target's own are fine.
        try (SilentCloseable ours = BugDetectors.allowNetworkConnections((host, p) -> p == port)) {
            exchange(input);
            if (input.length > 0) {
                exchange(concat(handshake(input[0]), Arrays.copyOfRange(input, 1, input.length)));
            }
            assertEquals(0, fx.server.stats.unexpected.sum(), "exceptions past validation (see the ERROR log)");
            if (++inputs % CHECK_EVERY == 0) {
                serverIntact();
            }
        }
    }

    /** Sends {@code bytes} after the greeting, half-closes, and reads what comes back until the server closes. */
    private static void exchange(byte[] bytes) throws IOException {
        try (Socket s = new Socket(InetAddress.getLoopbackAddress(), fx.port())) {
            s.setSoTimeout(RawClient.TIMEOUT_MS);
            s.setTcpNoDelay(true);
            InputStream in = s.getInputStream();
            OutputStream out = s.getOutputStream();
            in.readNBytes(18); // the greeting: NBDMAGIC, IHAVEOPT, handshake flags
            try {
                out.write(bytes);
                out.flush();
                s.shutdownOutput();
            } catch (IOException closedEarly) {
                // The server may refuse the stream before it is all sent: what it replied is still readable.
            }
            byte[] buf = new byte[64 << 10];
            long total = 0;
            try {
                for (int n; (n = in.read(buf)) >= 0; ) {
                    total += n;
                    if (total > MAX_REPLY) {
                        return; // hang up mid-reply: the server must cope with that too
                    }
                }
            } catch (SocketTimeoutException e) {
                fail("the server neither answered nor closed within " + RawClient.TIMEOUT_MS + " ms; input "
                        + Arrays.toString(Arrays.copyOf(bytes, Math.min(bytes.length, 64))));
            } catch (IOException reset) {
                // A connection reset after the server closed on unread input: an ending like any other.
            }
        }
    }

    /**
     * A client's valid handshake: fixed newstyle, no zeroes; then by {@code choice}'s bits, structured
     * replies (bit 0), base:allocation (bit 1, with structured replies), and the export (bits 2-3).
     */
    static byte[] handshake(byte choice) {
        String export = EXPORTS[(choice >> 2) & 3];
        boolean structured = (choice & 1) != 0;
        boolean allocation = structured && (choice & 2) != 0;
        ByteBuffer b = ByteBuffer.allocate(1024);
        b.putInt(Nbd.FLAG_C_FIXED_NEWSTYLE | Nbd.FLAG_C_NO_ZEROES);
        if (structured) {
            option(b, Nbd.OPT_STRUCTURED_REPLY, new byte[0]);
        }
        if (allocation) {
            option(b, Nbd.OPT_SET_META_CONTEXT, RawClient.metaData(export, "base:allocation"));
        }
        byte[] name = export.getBytes(StandardCharsets.UTF_8);
        option(b, Nbd.OPT_GO, ByteBuffer.allocate(4 + name.length + 2).putInt(name.length).put(name).putShort((short) 0)
                .array());
        return Arrays.copyOf(b.array(), b.position());
    }

    private static void option(ByteBuffer b, int option, byte[] data) {
        b.putLong(Nbd.IHAVEOPT).putInt(option).putInt(data.length).put(data);
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    /** The read-only exports hold their bytes, and a new client reads them over the network. */
    private static void serverIntact() throws IOException {
        byte[] layered = fx.layered.image();
        byte[] got = new byte[layered.length];
        for (int off = 0; off < got.length; ) {
            off += fx.layeredImage.readAt(got, off, got.length - off, off);
        }
        assertArrayEquals(layered, got, "the read-only layered image");
        try (RawClient next = RawClient.connect(fx.port()).hello()) {
            next.go("raw", true, false);
            int off = 3 * Images.CHUNK - 100;
            next.request(0, Nbd.CMD_READ, 1, off, 4096);
            assertArrayEquals(Arrays.copyOfRange(fx.raw, off, off + 4096),
                    next.structuredRead(1, off, 4096, new ArrayList<>()), "the next client reads the raw export");
        }
    }

    /** Writes the seed corpus; run by hand when the framing changes ({@code main DIR}). */
    public static void main(String[] args) throws IOException {
        Path out = Files.createDirectories(Path.of(args[0]));
        // Handshake seeds (sent as they are): LIST then ABORT; INFO on "layered"; old-style EXPORT_NAME.
        ByteBuffer b = ByteBuffer.allocate(256).putInt(Nbd.FLAG_C_FIXED_NEWSTYLE);
        option(b, Nbd.OPT_LIST, new byte[0]);
        option(b, Nbd.OPT_LIST_META_CONTEXT, RawClient.metaData("raw", "base:"));
        option(b, Nbd.OPT_ABORT, new byte[0]);
        Files.write(out.resolve("list-abort"), Arrays.copyOf(b.array(), b.position()));
        b = ByteBuffer.allocate(256).putInt(Nbd.FLAG_C_FIXED_NEWSTYLE | Nbd.FLAG_C_NO_ZEROES);
        option(b, Nbd.OPT_INFO, ByteBuffer.allocate(15).putInt(7).put("layered".getBytes(StandardCharsets.UTF_8))
                .putShort((short) 1).putShort((short) 3).array()); // one info request: block sizes
        option(b, Nbd.OPT_EXPORT_NAME, "ro".getBytes(StandardCharsets.UTF_8));
        Files.write(out.resolve("info-export-name"), Arrays.copyOf(b.array(), b.position()));
        // Transmission seeds: a choice byte (structured + base:allocation + "rw" = 0b1011), then requests.
        b = ByteBuffer.allocate(8192).put((byte) 0b1011);
        request(b, 0, Nbd.CMD_READ, 1, 8192, 4096);
        request(b, Nbd.CMD_FLAG_FUA, Nbd.CMD_WRITE, 2, 4000, 100);
        b.put(new byte[100]);
        request(b, 0, Nbd.CMD_BLOCK_STATUS, 3, 0, 1 << 20);
        request(b, Nbd.CMD_FLAG_NO_HOLE, Nbd.CMD_WRITE_ZEROES, 4, 1 << 20, 8192);
        request(b, 0, Nbd.CMD_TRIM, 5, 0, 4096);
        request(b, 0, Nbd.CMD_CACHE, 6, 0, 4 << 20);
        request(b, 0, Nbd.CMD_FLUSH, 7, 0, 0);
        request(b, Nbd.CMD_FLAG_DF, Nbd.CMD_READ, 8, 4 << 20, 65536);
        request(b, 0, Nbd.CMD_DISC, 9, 0, 0);
        Files.write(out.resolve("rw-requests"), Arrays.copyOf(b.array(), b.position()));
        // Simple replies on "raw" (0b0000): a read, an out-of-range read, a refused write.
        b = ByteBuffer.allocate(256).put((byte) 0);
        request(b, 0, Nbd.CMD_READ, 1, 100, 1000);
        request(b, 0, Nbd.CMD_READ, 2, Fixture.RAW_SIZE - 10, 20);
        request(b, 0, Nbd.CMD_WRITE, 3, 0, 8);
        b.put(new byte[8]);
        Files.write(out.resolve("raw-simple"), Arrays.copyOf(b.array(), b.position()));
    }

    private static void request(ByteBuffer b, int flags, int type, long cookie, long offset, int length) {
        b.putInt(Nbd.REQUEST_MAGIC).putShort((short) flags).putShort((short) type).putLong(cookie).putLong(offset)
                .putInt(length);
    }
}
