package dev.lazyblock.nbd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.testing.Await;
import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.nbd.RawClient.Chunk;
import dev.lazyblock.upstream.FileUpstream;
import dev.lazyblock.nbd.RawClient.OptionReply;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/** The protocol byte by byte, through {@link RawClient}: negotiation, commands, replies. */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ProtocolTest {
    private static final int MIB = Images.MIB;

    private Fixture fx;
    private GatedDevice gated;
    /** Read by nothing but the CACHE test. */
    private Chunker cold;
    private FileUpstream coldUpstream;

    @BeforeAll
    void start(@TempDir Path dir) throws IOException {
        byte[] bytes = Images.random(3, 1 << 20);
        gated = new GatedDevice(bytes, 4096);
        Path coldFile = dir.resolve("cold.img");
        Files.write(coldFile, Images.random(4, 3 * Images.CHUNK));
        coldUpstream = new FileUpstream(coldFile);
        cold = ChunkerKind.STREAMING.create(coldUpstream, SparseCache.create(dir.resolve("cold.cache"),
                3 * Images.CHUNK), ChunkerOptions.DEFAULTS);
        fx = Fixture.start(dir, NbdServer.builder().export(NbdExport.readOnly("gated", gated))
                .export(NbdExport.readOnly("cold", cold)));
    }

    @AfterAll
    void stop() throws IOException {
        gated.open();
        if (fx != null) {
            fx.close();
        }
        cold.close();
        coldUpstream.close();
    }

    private RawClient client() throws IOException {
        return RawClient.connect(fx.port()).hello();
    }

    // ------------------------------------------------------------------ negotiation

    @Test
    void greetingAdvertisesFixedNewstyleAndNoZeroes() throws IOException {
        try (RawClient c = RawClient.connect(fx.port())) {
            assertEquals(Nbd.FLAG_FIXED_NEWSTYLE | Nbd.FLAG_NO_ZEROES, c.greeting());
        }
    }

    @Test
    void listNamesEveryExportThenAcks() throws IOException {
        try (RawClient c = client()) {
            c.option(Nbd.OPT_LIST, new byte[0]);
            List<OptionReply> replies = c.optionReplies();
            List<String> names = new ArrayList<>();
            for (OptionReply r : replies.subList(0, replies.size() - 1)) {
                assertEquals(Nbd.REP_SERVER, r.type());
                ByteBuffer b = ByteBuffer.wrap(r.data());
                int n = b.getInt();
                names.add(new String(r.data(), 4, n, StandardCharsets.UTF_8));
            }
            assertEquals(List.of("gated", "cold", "raw", "layered", "rw", "ro"), names);
            assertEquals(Nbd.REP_ACK, replies.getLast().type());

            c.option(Nbd.OPT_LIST, new byte[] {1});
            assertEquals(Nbd.REP_ERR_INVALID, c.optionReply().type(), "LIST with data");
        }
    }

    @Test
    void infoGivesSizeFlagsBlockSizesNameAndDescription() throws IOException {
        try (RawClient c = client()) {
            c.option(Nbd.OPT_INFO, RawClient.goData("raw", Nbd.INFO_NAME, Nbd.INFO_DESCRIPTION, Nbd.INFO_BLOCK_SIZE));
            Map<Integer, ByteBuffer> infos = new HashMap<>();
            List<OptionReply> replies = c.optionReplies();
            for (OptionReply r : replies.subList(0, replies.size() - 1)) {
                assertEquals(Nbd.REP_INFO, r.type());
                ByteBuffer b = ByteBuffer.wrap(r.data());
                infos.put((int) b.getShort(), b.slice());
            }
            assertEquals(Nbd.REP_ACK, replies.getLast().type());
            ByteBuffer export = infos.get(Nbd.INFO_EXPORT);
            assertEquals(Fixture.RAW_SIZE, export.getLong());
            int flags = Short.toUnsignedInt(export.getShort());
            assertTrue((flags & Nbd.FLAG_HAS_FLAGS) != 0);
            assertTrue((flags & Nbd.FLAG_READ_ONLY) != 0);
            assertTrue((flags & Nbd.FLAG_CAN_MULTI_CONN) != 0);
            assertTrue((flags & Nbd.FLAG_SEND_CACHE) != 0);
            assertEquals(0, flags & Nbd.FLAG_SEND_DF, "DF only with structured replies");
            ByteBuffer sizes = infos.get(Nbd.INFO_BLOCK_SIZE);
            assertEquals(1, sizes.getInt());
            assertEquals(4096, sizes.getInt());
            assertEquals(32 << 20, sizes.getInt());
            assertEquals("raw", StandardCharsets.UTF_8.decode(infos.get(Nbd.INFO_NAME)).toString());
            assertEquals("raw test image", StandardCharsets.UTF_8.decode(infos.get(Nbd.INFO_DESCRIPTION)).toString());

            // INFO does not enter transmission: GO still can, with the same answer.
            RawClient.Export e = c.go("raw", true, true);
            assertEquals(Fixture.RAW_SIZE, e.size());
            assertTrue((e.flags() & Nbd.FLAG_SEND_DF) != 0);
        }
    }

    @Test
    void unknownOptionsGetUnsupAndTheConnectionGoesOn() throws IOException {
        try (RawClient c = client()) {
            for (int option : new int[] {Nbd.OPT_EXTENDED_HEADERS, Nbd.OPT_STARTTLS, 4, 12, 99, 0x7fffffff, -1}) {
                c.option(option, option == 99 ? new byte[100] : new byte[0]);
                OptionReply r = c.optionReply();
                assertEquals(option, r.option());
                assertEquals(Nbd.REP_ERR_UNSUP, r.type(), Nbd.optionName(option));
            }
            c.go("raw", true, false);
            c.request(0, Nbd.CMD_READ, 1, 0, 512);
            byte[] got = c.structuredRead(1, 0, 512, new ArrayList<>());
            assertArrayEquals(Arrays.copyOf(fx.raw, 512), got);
        }
    }

    @Test
    void goRefusesUnknownAndInvalidNamesWithErrorsNotDisconnects() throws IOException {
        try (RawClient c = client()) {
            String tooLong = "x".repeat(4097);
            List<String> invalid = List.of("a/../b", "/..", "..", "bad\u0001name", "tab\tname", tooLong);
            for (String name : invalid) {
                c.option(Nbd.OPT_GO, RawClient.goData(name));
                OptionReply r = c.optionReply();
                assertEquals(Nbd.REP_ERR_INVALID, r.type(), name.length() > 40 ? "4097-byte name" : name);
                assertTrue(r.text().contains("export name"), r.text());
            }
            c.option(Nbd.OPT_GO, RawClient.goData("nope"));
            assertEquals(Nbd.REP_ERR_UNKNOWN, c.optionReply().type());
            c.option(Nbd.OPT_GO, new byte[] {0, 0, 0, 9, 'a', 0, 0});
            assertEquals(Nbd.REP_ERR_INVALID, c.optionReply().type(), "name length past the data");
            // Invalid UTF-8.
            c.option(Nbd.OPT_GO, new byte[] {0, 0, 0, 2, (byte) 0xc3, (byte) 0x28, 0, 0});
            assertEquals(Nbd.REP_ERR_INVALID, c.optionReply().type(), "invalid UTF-8");
            assertEquals(Fixture.RAW_SIZE, c.go("raw", false, false).size());
        }
    }

    @Test
    void emptyNameIsTheDefaultExport() throws IOException {
        try (RawClient c = client()) {
            assertEquals(gated.size(), c.go("", false, false).size());
        }
    }

    @Test
    void exportNameEntersTransmissionWithOrWithoutZeroes() throws IOException {
        for (boolean noZeroes : new boolean[] {true, false}) {
            try (RawClient c = RawClient.connect(fx.port())) {
                c.greeting();
                c.out.writeInt(Nbd.FLAG_C_FIXED_NEWSTYLE | (noZeroes ? Nbd.FLAG_C_NO_ZEROES : 0));
                c.option(Nbd.OPT_EXPORT_NAME, "raw".getBytes(StandardCharsets.UTF_8));
                assertEquals(Fixture.RAW_SIZE, c.in.readLong());
                int flags = c.in.readUnsignedShort();
                assertTrue((flags & Nbd.FLAG_READ_ONLY) != 0);
                if (!noZeroes) {
                    assertArrayEquals(new byte[124], c.data(124));
                }
                c.request(0, Nbd.CMD_READ, 7, 4096, 100);
                RawClient.Simple s = c.simpleReply();
                assertEquals(0, s.error());
                assertEquals(7, s.cookie());
                assertArrayEquals(Arrays.copyOfRange(fx.raw, 4096, 4196), c.data(100));
            }
        }
        // EXPORT_NAME cannot answer with an error: an unknown name ends the session.
        try (RawClient c = client()) {
            c.option(Nbd.OPT_EXPORT_NAME, "nope".getBytes(StandardCharsets.UTF_8));
            assertTrue(c.closedByServer());
        }
    }

    @Test
    void metaContextsNeedStructuredRepliesAndOfferBaseAllocation() throws IOException {
        try (RawClient c = client()) {
            c.option(Nbd.OPT_SET_META_CONTEXT, RawClient.metaData("raw", Nbd.BASE_ALLOCATION));
            assertEquals(Nbd.REP_ERR_INVALID, c.optionReply().type(), "before STRUCTURED_REPLY");
            c.option(Nbd.OPT_STRUCTURED_REPLY, new byte[0]);
            assertEquals(Nbd.REP_ACK, c.optionReply().type());

            c.option(Nbd.OPT_LIST_META_CONTEXT, RawClient.metaData("raw"));
            List<OptionReply> all = c.optionReplies();
            assertEquals(2, all.size());
            assertEquals(Nbd.REP_META_CONTEXT, all.getFirst().type());
            assertEquals(Nbd.BASE_ALLOCATION, new String(all.getFirst().data(), 4, all.getFirst().data().length - 4,
                    StandardCharsets.UTF_8));

            c.option(Nbd.OPT_LIST_META_CONTEXT, RawClient.metaData("raw", "qemu:dirty-bitmap:x", "x-foo:bar"));
            assertEquals(Nbd.REP_ACK, c.optionReply().type(), "unknown namespaces select nothing");

            c.option(Nbd.OPT_SET_META_CONTEXT, RawClient.metaData("raw", "nocolon"));
            assertEquals(Nbd.REP_ERR_INVALID, c.optionReply().type());
            c.option(Nbd.OPT_SET_META_CONTEXT, RawClient.metaData("nope", Nbd.BASE_ALLOCATION));
            assertEquals(Nbd.REP_ERR_UNKNOWN, c.optionReply().type());

            c.option(Nbd.OPT_SET_META_CONTEXT, RawClient.metaData("layered", "base:", Nbd.BASE_ALLOCATION));
            List<OptionReply> set = c.optionReplies();
            assertEquals(2, set.size());
            int id = ByteBuffer.wrap(set.getFirst().data()).getInt();
            c.option(Nbd.OPT_GO, RawClient.goData("layered"));
            assertEquals(Nbd.REP_ACK, c.optionReplies().getLast().type());

            c.request(0, Nbd.CMD_BLOCK_STATUS, 5, 4L * MIB - 4096, 2 * MIB + 8192);
            Chunk bs = c.chunk();
            assertTrue(bs.done());
            assertEquals(Nbd.REPLY_TYPE_BLOCK_STATUS, bs.type());
            ByteBuffer p = ByteBuffer.wrap(bs.payload());
            assertEquals(id, p.getInt());
            assertEquals(4096, p.getInt());
            assertEquals(0, p.getInt());
            assertEquals(2 * MIB, p.getInt());
            assertEquals(Nbd.STATE_HOLE | Nbd.STATE_ZERO, p.getInt());
            assertEquals(4096, p.getInt());
            assertEquals(0, p.getInt());
            assertFalse(p.hasRemaining());

            c.request(Nbd.CMD_FLAG_REQ_ONE, Nbd.CMD_BLOCK_STATUS, 6, 0, 8 * MIB);
            Chunk one = c.chunk();
            assertEquals(4 + 8, one.payload().length, "REQ_ONE: one extent");
        }
    }

    @Test
    void blockStatusForAnotherExportsContextIsRefused() throws IOException {
        try (RawClient c = client()) {
            c.option(Nbd.OPT_STRUCTURED_REPLY, new byte[0]);
            c.optionReply();
            c.option(Nbd.OPT_SET_META_CONTEXT, RawClient.metaData("raw", Nbd.BASE_ALLOCATION));
            c.optionReplies();
            c.go("layered", false, false);
            c.request(0, Nbd.CMD_BLOCK_STATUS, 1, 0, 4096);
            Chunk r = c.chunk();
            assertEquals(Nbd.EINVAL, r.errorCode(), r.message());
        }
    }

    // ------------------------------------------------------------------ transmission

    @Test
    void simpleRepliesWithoutStructuredNegotiation() throws IOException {
        try (RawClient c = client()) {
            c.go("layered", false, false);
            c.request(0, Nbd.CMD_READ, 11, 4L * MIB - 100, 200);
            RawClient.Simple s = c.simpleReply();
            assertEquals(0, s.error());
            assertEquals(11, s.cookie());
            assertArrayEquals(Arrays.copyOfRange(fx.layered.image(), 4 * MIB - 100, 4 * MIB + 100), c.data(200));
            c.request(0, Nbd.CMD_BLOCK_STATUS, 12, 0, 4096);
            assertEquals(Nbd.EINVAL, c.simpleReply().error(), "BLOCK_STATUS without a context");
            c.request(Nbd.CMD_FLAG_DF, Nbd.CMD_READ, 13, 0, 4096);
            assertEquals(Nbd.EINVAL, c.simpleReply().error(), "DF without structured replies");
        }
    }

    @Test
    void structuredReadsSkipHolesUnlessDontFragment() throws IOException {
        try (RawClient c = client()) {
            c.go("layered", true, false);
            long off = 4L * MIB - 8192;
            int len = 2 * MIB + 16384;
            byte[] want = Arrays.copyOfRange(fx.layered.image(), (int) off, (int) off + len);

            List<Chunk> chunks = new ArrayList<>();
            c.request(0, Nbd.CMD_READ, 21, off, len);
            assertArrayEquals(want, c.structuredRead(21, off, len, chunks));
            assertEquals(List.of(Nbd.REPLY_TYPE_OFFSET_DATA, Nbd.REPLY_TYPE_OFFSET_HOLE, Nbd.REPLY_TYPE_OFFSET_DATA),
                    chunks.stream().map(Chunk::type).toList());

            chunks.clear();
            c.request(Nbd.CMD_FLAG_DF, Nbd.CMD_READ, 22, off, len);
            assertArrayEquals(want, c.structuredRead(22, off, len, chunks));
            assertEquals(1, chunks.size(), "DF: one data chunk");
            assertEquals(Nbd.REPLY_TYPE_OFFSET_DATA, chunks.getFirst().type());
        }
    }

    @Test
    void repliesComeAsRequestsFinishTaggedByCookie() throws Exception {
        try (RawClient c = client()) {
            c.go("gated", true, false);
            c.request(0, Nbd.CMD_READ, 100, gated.gate, 4096); // waits at the gate
            assertTrue(gated.reached.await(10, TimeUnit.SECONDS), "the gated read never started");
            for (int i = 0; i < 8; i++) {
                c.request(0, Nbd.CMD_READ, 200 + i, 65536L * (i + 1), 4096);
            }
            for (int i = 0; i < 8; i++) {
                Chunk r = c.chunk();
                assertTrue(r.cookie() >= 200, "reply " + i + " is for cookie " + r.cookie() + " (the gated read)");
                long o = ByteBuffer.wrap(r.payload()).getLong();
                assertEquals(65536L * (r.cookie() - 199), o);
            }
            gated.open();
            Chunk late = c.chunk();
            assertEquals(100, late.cookie());
            assertArrayEquals(Arrays.copyOfRange(gated.bytes, 4096, 8192),
                    Arrays.copyOfRange(late.payload(), 8, late.payload().length));
        }
    }

    @Test
    void manyConnectionsWithManyRequestsInFlight() throws Exception {
        int connections = 6;
        List<Thread> threads = new ArrayList<>();
        List<Throwable> failures = java.util.Collections.synchronizedList(new ArrayList<>());
        for (int t = 0; t < connections; t++) {
            int seed = t;
            threads.add(Thread.ofPlatform().start(() -> {
                try (RawClient c = client()) {
                    boolean structured = seed % 2 == 0;
                    c.go("raw", structured, false);
                    SplittableRandom rnd = new SplittableRandom(seed);
                    Map<Long, long[]> sent = new HashMap<>();
                    for (long cookie = 1; cookie <= 64; cookie++) {
                        int len = rnd.nextInt(1, 200_000);
                        long off = rnd.nextLong(Fixture.RAW_SIZE - len);
                        c.request(0, Nbd.CMD_READ, cookie, off, len);
                        sent.put(cookie, new long[] {off, len});
                    }
                    for (int i = 0; i < 64; i++) {
                        byte[] data;
                        long cookie;
                        if (structured) {
                            Chunk r = c.chunk();
                            cookie = r.cookie();
                            assertTrue(r.done());
                            data = Arrays.copyOfRange(r.payload(), 8, r.payload().length);
                            assertEquals(sent.get(cookie)[0], ByteBuffer.wrap(r.payload()).getLong());
                        } else {
                            RawClient.Simple s = c.simpleReply();
                            assertEquals(0, s.error());
                            cookie = s.cookie();
                            data = c.data((int) sent.get(cookie)[1]);
                        }
                        long[] r = sent.remove(cookie);
                        assertArrayEquals(Arrays.copyOfRange(fx.raw, (int) r[0], (int) (r[0] + r[1])), data,
                                "cookie " + cookie);
                    }
                    assertTrue(sent.isEmpty());
                } catch (Throwable e) {
                    failures.add(e);
                }
            }));
        }
        for (Thread t : threads) {
            assertTrue(t.join(java.time.Duration.ofSeconds(60)), "a client did not finish");
        }
        if (!failures.isEmpty()) {
            throw new AssertionError(failures.size() + " clients failed", failures.getFirst());
        }
    }

    @Test
    void writesGoToTheOverlayAndReadOnlyExportsRefuseThem() throws IOException {
        byte[] data = new byte[10_000];
        new SplittableRandom(5).nextBytes(data);
        long off = 4L * MIB - 5000; // across a chunk boundary and into the zero mapping
        try (RawClient ro = client()) {
            ro.go("ro", true, true);
            ro.write(1, off, data);
            Chunk r = ro.chunk();
            assertEquals(Nbd.EPERM, r.errorCode());
            assertTrue(r.message().contains("read-only"), r.message());
            ro.request(0, Nbd.CMD_WRITE_ZEROES, 2, 0, 4096);
            assertEquals(Nbd.EPERM, ro.chunk().errorCode());
            ro.request(0, Nbd.CMD_TRIM, 3, 0, 4096);
            assertEquals(Nbd.EPERM, ro.chunk().errorCode());
            // The refused write's payload was consumed: the connection still works.
            ro.request(0, Nbd.CMD_READ, 4, off, data.length);
            assertArrayEquals(Arrays.copyOfRange(fx.layered.image(), (int) off, (int) off + data.length),
                    ro.structuredRead(4, off, data.length, new ArrayList<>()));
        }
        try (RawClient rw = client()) {
            RawClient.Export e = rw.go("rw", true, true);
            assertEquals(0, e.flags() & Nbd.FLAG_READ_ONLY);
            assertTrue((e.flags() & Nbd.FLAG_SEND_WRITE_ZEROES) != 0);
            rw.write(1, off, data);
            assertEquals(0, rw.chunk().errorCode());
            rw.request(Nbd.CMD_FLAG_FUA, Nbd.CMD_FLUSH, 2, 0, 0);
            assertEquals(0, rw.chunk().errorCode());
            rw.request(0, Nbd.CMD_READ, 3, off, data.length);
            assertArrayEquals(data, rw.structuredRead(3, off, data.length, new ArrayList<>()));

            // The written range is data now, where the base had a hole.
            rw.request(0, Nbd.CMD_BLOCK_STATUS, 4, 4L * MIB, 8192);
            ByteBuffer p = ByteBuffer.wrap(rw.chunk().payload());
            p.getInt();
            assertEquals(8192, p.getInt(), "written blocks merge into one data extent");
            assertEquals(0, p.getInt());

            rw.request(Nbd.CMD_FLAG_NO_HOLE, Nbd.CMD_WRITE_ZEROES, 5, off + 100, 200);
            assertEquals(0, rw.chunk().errorCode());
            rw.request(0, Nbd.CMD_READ, 6, off, data.length);
            byte[] zeroed = data.clone();
            Arrays.fill(zeroed, 100, 300, (byte) 0);
            assertArrayEquals(zeroed, rw.structuredRead(6, off, data.length, new ArrayList<>()));

            // TRIM zeroes written blocks wholly inside it.
            long block = (off / 4096 + 1) * 4096;
            rw.request(0, Nbd.CMD_TRIM, 7, block, 4096);
            assertEquals(0, rw.chunk().errorCode());
            rw.request(0, Nbd.CMD_READ, 8, block, 4096);
            assertArrayEquals(new byte[4096], rw.structuredRead(8, block, 4096, new ArrayList<>()));

            rw.write(9, Images.LAYERED_SIZE - 10, new byte[20]);
            assertEquals(Nbd.ENOSPC, rw.chunk().errorCode(), "a write past the end");
            rw.request(Nbd.CMD_FLAG_FAST_ZERO, Nbd.CMD_WRITE_ZEROES, 10, 0, 4096);
            assertEquals(Nbd.EINVAL, rw.chunk().errorCode(), "FAST_ZERO was not advertised");
            rw.request(0, Nbd.CMD_FLUSH, 11, 0, 4096);
            assertEquals(Nbd.EINVAL, rw.chunk().errorCode(), "FLUSH with a length");
        }
        // Another connection sees the write; the read-only export of the base does not.
        try (RawClient again = client()) {
            again.go("rw", false, false);
            again.request(0, Nbd.CMD_READ, 1, off, 100);
            assertEquals(0, again.simpleReply().error());
            assertArrayEquals(Arrays.copyOf(data, 100), again.data(100));
        }
    }

    @Test
    void cachePrefetchesIntoTheLocalCache() throws IOException {
        long off = Images.CHUNK + 100;
        assertFalse(cold.cache().isCached(off, 1 << 20));
        try (RawClient c = client()) {
            c.go("cold", true, false);
            c.request(0, Nbd.CMD_CACHE, 1, off, 1 << 20);
            Chunk r = c.chunk();
            assertEquals(0, r.errorCode(), r.message());
        }
        // The bytes were readable when CACHE replied; a streaming chunker marks a chunk present once
        // the whole chunk has landed, which may be a moment later.
        Await.until(() -> cold.cache().isCached(off, 1 << 20), java.time.Duration.ofSeconds(10),
                () -> "CACHE did not fetch the range");
        assertFalse(cold.cache().isCached(0, 4096), "CACHE fetched more than the chunks it was asked for");
    }

    @Test
    void unknownCommandsAndFlagsAreInvalid() throws IOException {
        try (RawClient c = client()) {
            c.go("raw", true, true);
            c.request(0, 9, 1, 0, 512);
            assertEquals(Nbd.EINVAL, c.chunk().errorCode(), "command 9");
            c.request(0x8000, Nbd.CMD_READ, 2, 0, 512);
            assertEquals(Nbd.EINVAL, c.chunk().errorCode(), "flag 0x8000");
            c.request(Nbd.CMD_FLAG_REQ_ONE, Nbd.CMD_READ, 3, 0, 512);
            assertEquals(Nbd.EINVAL, c.chunk().errorCode(), "REQ_ONE on a READ");
            // flags and type are two fields: a READ with FUA (bit 0 of flags) is still a READ.
            c.request(Nbd.CMD_FLAG_FUA, Nbd.CMD_READ, 4, 0, 512);
            assertArrayEquals(Arrays.copyOf(fx.raw, 512), c.structuredRead(4, 0, 512, new ArrayList<>()));
        }
    }
}
