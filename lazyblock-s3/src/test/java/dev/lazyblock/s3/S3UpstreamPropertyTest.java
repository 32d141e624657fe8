package dev.lazyblock.s3;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.lazyblock.testing.Seeds;
import dev.lazyblock.upstream.Upstream;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Random;
import org.gaul.s3proxy.junit.S3ProxyExtension;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.services.s3.S3Client;

/** Random ranged reads of a real object, through both read paths, against the bytes put there. */
class S3UpstreamPropertyTest {
    /** Not a multiple of anything: the last chunk is odd-sized. */
    private static final int SIZE = (3 << 20) + 12_345;

    @RegisterExtension
    final S3ProxyExtension server = TestS3.server();

    private S3Client s3;
    private byte[] object;

    @BeforeEach
    void upload() {
        s3 = TestS3.config(server.getUri()).build().newClient();
        s3.createBucket(b -> b.bucket(TestS3.BUCKET));
        object = TestS3.randomBytes(7, SIZE);
        s3.putObject(b -> b.bucket(TestS3.BUCKET).key("images/a.img"), RequestBody.fromBytes(object));
    }

    @AfterEach
    void closeClient() {
        s3.close();
    }

    @Test
    void randomRangesMatchTheObject() throws Exception {
        for (long seed : Seeds.seeds(4).toArray()) {
            Seeds.replayable(seed, () -> {
                Random r = new Random(seed);
                // A fresh upstream per seed: the first read finds the size from a Content-Range.
                try (Upstream up = new S3Upstream(s3, new S3Location(TestS3.BUCKET, "images/a.img"))) {
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
    private static byte[] viaStream(Upstream up, long off, int len, Random r) throws Exception {
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
