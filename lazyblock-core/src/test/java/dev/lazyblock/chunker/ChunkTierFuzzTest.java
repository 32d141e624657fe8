package dev.lazyblock.chunker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Comparator;
import java.util.stream.Stream;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * Fuzzing of reading a shared tier's chunk files (Jazzer; see {@code bin/fuzz}): the tier is a
 * directory other hosts write (NFS), so a file may hold anything. The input's first two bytes
 * are the chunk size the reader expects, the rest the file. Each input is also tried
 * <em>sealed</em>: its body given the trailer a writer would give it.
 *
 * <p>The contract: {@link ChunkTier#read} never throws; it answers true only for a file that
 * is the expected size plus the trailer, whose magic and CRC-32C match, and then the buffer
 * holds exactly the file's body; a sealed file is always accepted.
 */
class ChunkTierFuzzTest {
    private static final String BUILD = "4b1d0c5e-0000-4000-8000-000000000001";
    private static final int MAGIC = 0x54_42_5A_4C;

    private static Path dir;
    private static ChunkTier tier;

    @BeforeAll
    static void open() throws IOException {
        dir = Files.createTempDirectory("tier-fuzz");
        tier = new ChunkTier(dir);
        Files.createDirectories(tier.buildDir(BUILD));
    }

    @AfterAll
    static void close() throws IOException {
        tier.close();
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
    }

    @FuzzTest(maxDuration = "10s")
    void anyFileIsReadOnlyWhenWholeAndChecksummedOrIgnored(byte[] input) throws IOException {
        if (input.length < 2) {
            return;
        }
        int expected = ((input[0] & 0xff) << 8 | (input[1] & 0xff)) % 8192;
        byte[] file = Arrays.copyOfRange(input, 2, input.length);
        boolean valid = file.length == expected + 8 && trailerMatches(file);
        assertEquals(valid, read(file, expected, 0), "a tier file of " + file.length + " bytes, " + expected
                + " expected, read as valid");
        byte[] body = Arrays.copyOf(file, Math.min(file.length, expected));
        assertTrue(read(sealed(body), body.length, 1), "a body with the writer's trailer is read back");
    }

    /** Writes {@code file} as chunk {@code chunk} and reads it into a buffer of {@code size} bytes. */
    private static boolean read(byte[] file, int size, long chunk) throws IOException {
        Files.write(tier.file(BUILD, chunk), file);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment dst = arena.allocate(Math.max(size, 1)).asSlice(0, size);
            boolean ok = tier.read(BUILD, chunk, dst);
            if (ok) {
                assertArrayEquals(Arrays.copyOf(file, size), dst.toArray(ValueLayout.JAVA_BYTE),
                        "what a valid file's read gives");
            }
            return ok;
        }
    }

    private static boolean trailerMatches(byte[] file) {
        ByteBuffer t = ByteBuffer.wrap(file, file.length - 8, 8).order(ByteOrder.LITTLE_ENDIAN);
        int crc = t.getInt();
        int magic = t.getInt();
        return magic == MAGIC && crc == crc(file, file.length - 8);
    }

    private static byte[] sealed(byte[] body) {
        byte[] out = Arrays.copyOf(body, body.length + 8);
        ByteBuffer.wrap(out, body.length, 8).order(ByteOrder.LITTLE_ENDIAN).putInt(crc(body, body.length))
                .putInt(MAGIC);
        return out;
    }

    private static int crc(byte[] b, int len) {
        CRC32C c = new CRC32C();
        c.update(b, 0, len);
        return (int) c.getValue();
    }
}
