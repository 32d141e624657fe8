package dev.lazyblock.device;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.device.LayerHeader.Build;
import dev.lazyblock.device.LayerHeader.HeaderFormatException;
import dev.lazyblock.device.LayerHeader.Mapping;
import dev.lazyblock.testing.Seeds;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.UUID;
import java.util.stream.LongStream;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

class LayerHeaderTest {
    static final int B = 4096;

    static LongStream seeds() {
        return Seeds.seeds(25);
    }

    /** A valid header with random builds and a random tiling of the image by build and zero mappings. */
    static LayerHeader random(SplittableRandom rnd) {
        long blocks = rnd.nextLong(1, 5000);
        long size = blocks * B - (rnd.nextBoolean() ? rnd.nextInt(B) : 0); // sometimes an unaligned end
        List<Build> builds = new ArrayList<>();
        int nb = rnd.nextInt(1, 6);
        for (int i = 0; i < nb; i++) {
            byte[] sha = new byte[32];
            rnd.nextBytes(sha);
            builds.add(new Build(new UUID(rnd.nextLong(), rnd.nextLong()), (blocks + rnd.nextInt(100)) * B, sha));
        }
        List<Mapping> mappings = new ArrayList<>();
        long pos = 0;
        while (pos < size) {
            long len = Math.min(size - pos, rnd.nextLong(1, 300) * B);
            if (rnd.nextInt(4) == 0) {
                mappings.add(Mapping.zero(pos, len));
            } else {
                int b = rnd.nextInt(nb);
                long room = builds.get(b).size() - len;
                mappings.add(new Mapping(pos, len, b, rnd.nextLong(room / B + 1) * B));
            }
            pos += len;
        }
        return new LayerHeader(size, B, new UUID(rnd.nextLong(), rnd.nextLong()),
                rnd.nextBoolean() ? LayerHeader.NO_PARENT : new UUID(rnd.nextLong(), rnd.nextLong()),
                rnd.nextLong(0, 1000), builds, mappings);
    }

    @ParameterizedTest
    @MethodSource("seeds")
    void randomHeadersSurviveTheRoundTrip(long seed) throws Exception {
        Seeds.replayable(seed, () -> {
            LayerHeader h = random(new SplittableRandom(seed));
            byte[] bytes = h.toBytes();
            LayerHeader back = LayerHeader.parse(bytes);
            assertEquals(h, back);
            assertArrayEquals(bytes, back.toBytes());
        });
    }

    @ParameterizedTest
    @MethodSource("seeds")
    void everyFlippedByteAndEveryTruncationIsRejected(long seed) throws Exception {
        Seeds.replayable(seed, () -> {
            SplittableRandom rnd = new SplittableRandom(seed);
            byte[] bytes = random(rnd).toBytes();
            for (int i = 0; i < bytes.length; i++) {
                byte[] bad = bytes.clone();
                bad[i] ^= (byte) rnd.nextInt(1, 256);
                int at = i;
                assertThrows(HeaderFormatException.class, () -> LayerHeader.parse(bad), "flipped byte " + at);
            }
            for (int len = 0; len < bytes.length; len++) {
                byte[] cut = java.util.Arrays.copyOf(bytes, len);
                int at = len;
                assertThrows(HeaderFormatException.class, () -> LayerHeader.parse(cut), "truncated at " + at);
            }
        });
    }

    /** Rewrites one field of a valid header and fixes the checksum, so only the field's check can catch it. */
    private static byte[] withField(LayerHeader h, int offset, long value, int width) {
        byte[] bytes = h.toBytes();
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        switch (width) {
            case 1 -> b.put(offset, (byte) value);
            case 4 -> b.putInt(offset, (int) value);
            default -> b.putLong(offset, value);
        }
        CRC32C crc = new CRC32C();
        crc.update(bytes, 0, bytes.length - 4);
        b.putInt(bytes.length - 4, (int) crc.getValue());
        return bytes;
    }

    private static void assertRejected(byte[] bytes, String field) {
        HeaderFormatException e = assertThrows(HeaderFormatException.class, () -> LayerHeader.parse(bytes));
        assertTrue(e.getMessage().contains(field), "expected the error to name '" + field + "': " + e.getMessage());
    }

    @Test
    void semanticErrorsNameTheFieldAndSayWhy() {
        UUID id = UUID.randomUUID();
        byte[] sha = new byte[32];
        LayerHeader h = new LayerHeader(10 * B, B, id, null, 1, List.of(new Build(id, 10 * B, sha)),
                List.of(new Mapping(0, 4 * B, 0, 0), Mapping.zero(4 * B, 2 * B), new Mapping(6 * B, 4 * B, 0, 6 * B)));
        int maps = 80 + 56; // first mapping's offset
        assertRejected(withField(h, 0, 'X', 1), "magic");
        assertRejected(withField(h, 8, 2, 1), "version");
        assertRejected(withField(h, 24, 3000, 4), "block size");
        assertRejected(withField(h, maps + 32, 3 * B, 8), "overlaps or is out of order");      // 2nd starts inside the 1st
        assertRejected(withField(h, maps + 32, 5 * B, 8), "leaves a gap");
        assertRejected(withField(h, maps + 64 + 8, 5 * B, 8), "runs past the image end");     // 3rd too long
        assertRejected(withField(h, maps + 8, 4 * B + 1, 8), "multiple of the block size");
        assertRejected(withField(h, maps + 20, 7, 4), "is not one of the 1 builds");
        assertRejected(withField(h, maps + 24, 8 * B, 8), "runs past the end of build 0");
        assertRejected(withField(h, maps + 24, 100, 8), "build offset");
        assertRejected(withField(h, maps + 16, 9, 1), "kind");
        assertRejected(withField(h, 16, 11 * B, 8), "cover [0, 40960) of an image of 45056 bytes");
        assertRejected(withField(h, 76, 2, 4), "counts");
    }
}
