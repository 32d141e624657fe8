package dev.lazyblock.gcs;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.lazyblock.testing.Seeds;
import dev.lazyblock.upstream.Upstream;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Random;
import org.gaul.s3proxy.junit.S3ProxyExtension;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Random ranged reads of a gs:// object through the XML API (served by S3Proxy), both read paths, against the bytes put there. */
class GcsXmlUpstreamPropertyTest {
    /** Not a multiple of anything: the last chunk is odd-sized. */
    private static final int SIZE = (3 << 20) + 12_345;

    @RegisterExtension
    final S3ProxyExtension server = TestGcs.server();

    private GcsConfig config;
    private byte[] object;

    @BeforeEach
    void upload() {
        config = TestGcs.xml(server.getUri()).build();
        object = TestGcs.randomBytes(7, SIZE);
        try (var s3 = TestGcs.admin(server.getUri())) {
            s3.createBucket(b -> b.bucket(TestGcs.BUCKET));
            s3.putObject(b -> b.bucket(TestGcs.BUCKET).key("images/a.img"),
                    software.amazon.awssdk.core.sync.RequestBody.fromBytes(object));
        }
    }

    @Test
    void randomRangesMatchTheObject() throws Exception {
        for (long seed : Seeds.seeds(4).toArray()) {
            Seeds.replayable(seed, () -> {
                Random r = new Random(seed);
                // A fresh upstream per seed: the first read finds the size from a Content-Range.
                try (Upstream up = GcsXmlUpstream.open(config, new GcsLocation(TestGcs.BUCKET, "images/a.img"))) {
                    for (int i = 0; i < 40; i++) {
                        long[] range = randomRange(r);
                        long off = range[0];
                        int len = (int) range[1];
                        String where = "read " + i + " [" + off + ", " + (off + len) + ")";

                        ByteBuffer dst = r.nextBoolean() ? ByteBuffer.allocate(len + 16)
                                : ByteBuffer.allocateDirect(len + 16);
                        int pad = r.nextInt(17);
                        dst.position(pad).limit(pad + len);
                        up.readFully(off, dst);
                        assertEquals(pad + len, dst.position(), where + ": readFully left the position");
                        assertArrayEquals(expected(off, len), bytes(dst, pad, len), where + " via readFully");

                        assertArrayEquals(expected(off, len), viaStream(up, off, len, r), where + " via openRange");
                    }
                    assertEquals(SIZE, up.size());
                    assertEquals("gs://" + TestGcs.BUCKET + "/images/a.img", up.name());
                }
            });
        }
    }

    /** Offsets and lengths across the object, a fair share of them ending at its last byte. */
    private static long[] randomRange(Random r) {
        int len = switch (r.nextInt(6)) {
            case 0 -> 1;
            case 1 -> 1 + r.nextInt(4096);
            case 2 -> 4096;
            default -> 1 + r.nextInt(512 * 1024);
        };
        long off = r.nextInt(4) == 0 ? SIZE - len : r.nextInt(SIZE - len + 1);
        return new long[] {off, len};
    }

    private byte[] expected(long off, int len) {
        return Arrays.copyOfRange(object, (int) off, (int) off + len);
    }

    private static byte[] bytes(ByteBuffer b, int from, int len) {
        byte[] out = new byte[len];
        b.duplicate().position(from).limit(from + len).get(out);
        return out;
    }

    /** Reads a range stream in random-sized pieces, each into a fresh buffer of random kind. */
    static byte[] viaStream(Upstream up, long off, int len, Random r) throws Exception {
        byte[] out = new byte[len];
        int got = 0;
        try (Upstream.RangeStream s = up.openRange(off, len)) {
            while (true) {
                int size = 1 + r.nextInt(r.nextBoolean() ? 64 : 96 * 1024);
                ByteBuffer buf = r.nextBoolean() ? ByteBuffer.allocate(size) : ByteBuffer.allocateDirect(size);
                int n = s.read(buf);
                if (n < 0) {
                    break;
                }
                assertEquals(n, buf.position(), "read's count and the buffer's position");
                if (got + n > len) {
                    throw new AssertionError("stream yielded more than " + len + " bytes");
                }
                buf.flip().get(out, got, n);
                got += n;
            }
        }
        assertEquals(len, got, "bytes the stream yielded");
        return out;
    }
}
