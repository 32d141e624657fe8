package dev.lazyblock.compress;

import java.nio.charset.StandardCharsets;
import java.util.Random;

/** Test images that look like disks: runs of text, zeros, small-alphabet bytes and random bytes. */
final class Images {
    private static final String[] WORDS = ("the quick brown fox jumps over lazy dog block chunk frame layer image "
            + "kernel module config usr lib share doc man page lazyblock cache fetch").split(" ");

    private Images() {}

    static byte[] diskLike(long seed, int size) {
        Random r = new Random(seed);
        byte[] b = new byte[size];
        int pos = 0;
        while (pos < size) {
            int run = Math.min(size - pos, 512 + r.nextInt(64 << 10));
            switch (r.nextInt(4)) {
                case 0 -> { } // zeros
                case 1 -> {
                    byte[] rnd = new byte[run];
                    r.nextBytes(rnd);
                    System.arraycopy(rnd, 0, b, pos, run);
                }
                case 2 -> {
                    StringBuilder sb = new StringBuilder(run + 16);
                    while (sb.length() < run) {
                        sb.append(WORDS[r.nextInt(WORDS.length)]).append(r.nextInt(8) == 0 ? '\n' : ' ');
                    }
                    System.arraycopy(sb.toString().getBytes(StandardCharsets.US_ASCII), 0, b, pos, run);
                }
                default -> {
                    for (int i = 0; i < run; i++) {
                        b[pos + i] = (byte) r.nextInt(16);
                    }
                }
            }
            pos += run;
        }
        return b;
    }
}
