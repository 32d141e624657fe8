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
import dev.lazyblock.content.ContentTable;
import dev.lazyblock.frame.FrameTable;
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
            case 2 -> b.putShort(offset, (short) value);
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
        assertRejected(withField(h, 8, 4, 1), "version");
        assertRejected(withField(h, 8, 3, 1), "frame table"); // version 3 without its tables
        assertRejected(withField(h, 8, 2, 1), "frame table"); // version 2 without its frame tables
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

    private static FrameTable table(long size, int frameSize, int codec) {
        int n = (int) ((size + frameSize - 1) / frameSize);
        long[] offs = new long[n];
        int[] sizes = new int[n];
        int[] crcC = new int[n];
        int[] crcU = new int[n];
        for (int i = 0; i < n; i++) {
            offs[i] = i == 0 ? 0 : offs[i - 1] + sizes[i - 1];
            sizes[i] = 100 + i;
            crcC[i] = i * 7;
            crcU[i] = ~i;
        }
        return new FrameTable(codec, frameSize, size, offs, sizes, crcC, crcU);
    }

    /** A compressed build makes a version 2 header that parses back to the same frame table; raw stays version 1. */
    @Test
    void frameTablesRoundTripInVersion2AndRawHeadersStayVersion1() {
        UUID base = UUID.randomUUID();
        UUID top = UUID.randomUUID();
        byte[] sha = new byte[32];
        long size = 5 * (2L << 20) + 3 * B;
        Build raw = new Build(base, size, sha);
        Build framed = new Build(top, 3 * B, sha, table(3 * B, 2 * B, 1));
        LayerHeader v1 = new LayerHeader(size, B, base, null, 0, List.of(raw), List.of(new Mapping(0, size, 0, 0)));
        assertEquals(LayerHeader.VERSION, v1.version());
        assertEquals(1, java.nio.ByteBuffer.wrap(v1.toBytes()).order(java.nio.ByteOrder.LITTLE_ENDIAN).getShort(8));
        LayerHeader v2 = new LayerHeader(size, B, top, base, 1, List.of(raw, framed),
                List.of(new Mapping(0, 3 * B, 1, 0), new Mapping(3 * B, size - 3 * B, 0, 3 * B)));
        assertEquals(LayerHeader.VERSION_FRAMES, v2.version());
        byte[] bytes = v2.toBytes();
        assertEquals(2, java.nio.ByteBuffer.wrap(bytes).order(java.nio.ByteOrder.LITTLE_ENDIAN).getShort(8));
        LayerHeader back = LayerHeader.parse(bytes);
        assertEquals(v2, back);
        assertEquals(table(3 * B, 2 * B, 1), back.builds().get(1).frames());
        assertEquals(null, back.builds().get(0).frames());
        assertEquals(201, back.builds().get(1).storedSize()); // frames of 100 and 101 bytes
    }

    /** Frame tables that do not tile their build, or leave gaps in the object, are named and refused. */
    @Test
    void badFrameTablesAreRefused() {
        UUID id = UUID.randomUUID();
        byte[] sha = new byte[32];
        Build framed = new Build(id, 3 * B, sha, table(3 * B, 2 * B, 1));
        LayerHeader h = new LayerHeader(3 * B, B, id, null, 0, List.of(framed), List.of(new Mapping(0, 3 * B, 0, 0)));
        int tables = 80 + 56 + 32; // after one build and one mapping
        assertRejected(withField(h, tables + 4, 3 * B, 4), "frame size");
        assertRejected(withField(h, tables + 8, 3, 4), "frame count");
        assertRejected(withField(h, tables + 12 + 32, 5, 8), "expected uncompressed [" + 2 * B); // 2nd frame's offset
        assertRejected(withField(h, tables + 12 + 32 + 8, 7, 8), "back to back");              // 2nd frame's stored offset
        assertRejected(withField(h, tables + 12 + 20, 0, 4), "compressed size must be > 0");
        assertRejected(withField(h, tables + 2, 1, 2), "reserved");
        assertThrows(IllegalArgumentException.class, () -> new Build(id, 4 * B, sha, table(3 * B, 2 * B, 1)));
    }

    static ContentTable contentTable(long size, int chunkSize, int codec, long seed) {
        int n = (int) ((size + chunkSize - 1) / chunkSize);
        byte[] hashes = new byte[n * 32];
        int[] stored = new int[n];
        int[] crcs = new int[n];
        java.util.SplittableRandom r = new java.util.SplittableRandom(seed);
        for (int i = 0; i < n; i++) {
            int len = (int) Math.min(chunkSize, size - (long) i * chunkSize);
            if (i % 3 == 1) {
                continue; // a zero chunk: no hash, stored nowhere
            }
            for (int j = 0; j < 32; j++) {
                hashes[i * 32 + j] = (byte) r.nextInt();
            }
            stored[i] = codec == 0 ? len : 1 + r.nextInt(len);
            crcs[i] = r.nextInt();
        }
        return new ContentTable(chunkSize, codec, size, hashes, stored, crcs);
    }

    /** A content-addressed build makes a version 3 header that parses back to the same tables, beside raw and framed builds. */
    @Test
    void contentTablesRoundTripInVersion3BesideFramedAndRawBuilds() {
        UUID base = UUID.randomUUID();
        UUID mid = UUID.randomUUID();
        UUID top = UUID.randomUUID();
        byte[] sha = new byte[32];
        long size = 10L * (64 << 10) + 3 * B;
        Build raw = new Build(base, size, sha);
        Build framed = new Build(mid, 3 * B, sha, table(3 * B, 2 * B, 1));
        Build content = Build.contentAddressed(top, size, sha, contentTable(size, 64 << 10, 1, 3));
        LayerHeader v3 = new LayerHeader(size, B, top, mid, 2, List.of(raw, framed, content),
                List.of(new Mapping(0, 3 * B, 1, 0), new Mapping(3 * B, 5 * B, 0, 3 * B),
                        new Mapping(8 * B, size - 8 * B, 2, 8 * B)));
        assertEquals(LayerHeader.VERSION_CONTENT, v3.version());
        byte[] bytes = v3.toBytes();
        assertEquals(3, java.nio.ByteBuffer.wrap(bytes).order(java.nio.ByteOrder.LITTLE_ENDIAN).getShort(8));
        LayerHeader back = LayerHeader.parse(bytes);
        assertEquals(v3, back);
        assertEquals(content.content(), back.builds().get(2).content());
        assertTrue(back.builds().get(2).content().isZero(1));
        assertEquals(null, back.builds().get(0).content());
        assertEquals(table(3 * B, 2 * B, 1), back.builds().get(1).frames());
        // Raw content chunks: stored sizes are the chunk sizes.
        Build rawContent = Build.contentAddressed(top, size, sha, contentTable(size, 64 << 10, 0, 4));
        LayerHeader h = new LayerHeader(size, B, top, null, 0, List.of(rawContent), List.of(new Mapping(0, size, 0, 0)));
        assertEquals(h, LayerHeader.parse(h.toBytes()));
    }

    /** Content tables that do not tile their build, or break the zero-chunk rule, are named and refused. */
    @Test
    void badContentTablesAreRefused() {
        UUID id = UUID.randomUUID();
        byte[] sha = new byte[32];
        long size = 4L * (64 << 10);
        Build content = Build.contentAddressed(id, size, sha, contentTable(size, 64 << 10, 1, 5));
        LayerHeader h = new LayerHeader(size, B, id, null, 0, List.of(content), List.of(new Mapping(0, size, 0, 0)));
        int tables = 80 + 56 + 32 + 12; // after one build, one mapping and its (empty) frame table entry
        assertRejected(withField(h, tables, 100_000, 4), "chunk size");
        assertRejected(withField(h, tables, 32 << 10, 4), "chunk size");
        assertRejected(withField(h, tables + 8, 5, 4), "chunk count");
        assertRejected(withField(h, tables + 6, 2, 2), "flags");
        assertRejected(withField(h, tables + 12 + 40 + 32, 77, 4), "all-zero hash"); // chunk 1, a zero chunk, stored
        assertRejected(withField(h, tables + 12 + 32, 0, 4), "only zero chunks"); // chunk 0: a hash but stored in none
        assertThrows(IllegalArgumentException.class, () -> Build.contentAddressed(id, size + B, sha,
                contentTable(size, 64 << 10, 1, 5)));
        assertThrows(IllegalArgumentException.class, () -> new Build(id, 3 * B, sha, table(3 * B, 2 * B, 1),
                contentTable(3 * B, 64 << 10, 1, 5)));
    }
}
