package dev.lazyblock.upstream;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class SyntheticUpstreamTest {
    @Test
    void everyReadAgreesWithByteAtWhateverItsAlignmentOrByteOrder() throws Exception {
        SyntheticUpstream up = new SyntheticUpstream(1L << 40);
        SplittableRandom rnd = new SplittableRandom(3);
        for (int i = 0; i < 200; i++) {
            long off = rnd.nextLong((1L << 40) - 100_000);
            int len = rnd.nextInt(0, 20_000);
            ByteBuffer dst = (rnd.nextBoolean() ? ByteBuffer.allocate(len + 7) : ByteBuffer.allocateDirect(len + 7))
                    .order(rnd.nextBoolean() ? ByteOrder.BIG_ENDIAN : ByteOrder.LITTLE_ENDIAN);
            int start = rnd.nextInt(8);
            dst.position(start).limit(start + len);
            if (rnd.nextBoolean()) {
                up.readFully(off, dst);
            } else {
                try (var s = up.openRange(off, len)) {
                    while (dst.hasRemaining() && s.read(dst) > 0) {
                        // drain
                    }
                }
            }
            assertEquals(start + len, dst.position());
            for (int k = 0; k < len; k++) {
                assertEquals(SyntheticUpstream.byteAt(off + k), dst.get(start + k), "byte " + (off + k));
            }
        }
    }
}
