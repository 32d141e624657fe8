package dev.lazyblock.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A writable {@code serve --overlay-dir} killed with {@code kill -9} while a client writes and
 * flushes, then started again on the same directories: what was acknowledged before the last
 * successful FLUSH (or with FUA) reads back, every other block reads as one of the contents it
 * had since, never a torn or foreign block, and the image below is never written.
 */
class ServeCrashTest {
    private static final int BLOCK = 4096;
    private static final int SIZE = 8 << 20;
    private static final int ROUNDS = Integer.getInteger("lazyblock.crashRounds", 50);

    @TempDir
    Path dir;

    /**
     * What a client may read of each block after a crash. Blocks not in {@link #possible} must
     * read exactly as {@link #current}; those in it (written since they were last made durable)
     * as any of the contents listed, the durable one first.
     */
    private static final class Model {
        final byte[] current;
        final Map<Integer, List<byte[]>> possible = new HashMap<>();
        long acked;
        long flushes;
        long readOld;
        long readNew;

        Model(byte[] image) {
            current = image.clone();
        }

        byte[] block(int b) {
            return Arrays.copyOfRange(current, b * BLOCK, (b + 1) * BLOCK);
        }

        /** Before a write is sent: from now on its blocks may read as their new content too. */
        void writing(long off, byte[] data) {
            int first = (int) (off / BLOCK);
            int last = (int) ((off + data.length - 1) / BLOCK);
            for (int b = first; b <= last; b++) {
                possible.computeIfAbsent(b, k -> new ArrayList<>(List.of(block(k))));
            }
            System.arraycopy(data, 0, current, (int) off, data.length);
            for (int b = first; b <= last; b++) {
                possible.get(b).add(block(b));
            }
        }

        /** A write acknowledged with FUA: its blocks are durable as they are now. */
        void durable(long off, int len) {
            for (int b = (int) (off / BLOCK); b <= (off + len - 1) / BLOCK; b++) {
                possible.remove(b);
            }
        }

        /** A successful FLUSH: every block is durable as it is now. */
        void flushed() {
            possible.clear();
            flushes++;
        }

        /** Checks what a restarted server serves; what it serves is then the state to go on from. */
        void verify(byte[] served, int round) {
            for (int b = 0; b < SIZE / BLOCK; b++) {
                byte[] got = Arrays.copyOfRange(served, b * BLOCK, (b + 1) * BLOCK);
                List<byte[]> may = possible.get(b);
                if (may == null) {
                    if (!Arrays.equals(got, block(b))) {
                        fail("round " + round + ": block " + b + " was durable (flushed or FUA) but reads otherwise");
                    }
                    continue;
                }
                int match = -1;
                for (int i = 0; i < may.size() && match < 0; i++) {
                    if (Arrays.equals(got, may.get(i))) {
                        match = i;
                    }
                }
                if (match < 0) {
                    fail("round " + round + ": block " + b + ", written since its last flush, reads as none of the "
                            + may.size() + " contents it had (torn or foreign)");
                }
                if (match == 0) {
                    readOld++;
                } else {
                    readNew++;
                }
            }
            System.arraycopy(served, 0, current, 0, SIZE);
            possible.clear();
        }
    }

    @Test
    void acknowledgedFlushedWritesSurviveKillNineOfTheServer() throws Exception {
        byte[] original = new byte[SIZE];
        new SplittableRandom(16).nextBytes(original);
        Path image = dir.resolve("base.img");
        Files.write(image, original);
        Path overlays = dir.resolve("overlay");
        Path caches = dir.resolve("cache");
        Model model = new Model(original);
        SplittableRandom rnd = new SplittableRandom(1616);
        long killedMidWrite = 0;
        for (int round = 0; round <= ROUNDS; round++) {
            try (ServeProcess serve = ServeProcess.start(dir.resolve("serve-" + round + ".err"), image.toString(),
                    "--writable", "--overlay-dir", overlays.toString(), "--cache-dir", caches.toString(),
                    "--export", "disk", "--listen", "127.0.0.1:0")) {
                byte[] served = new byte[SIZE];
                try (NbdClient nbd = new NbdClient(serve.address(), "disk")) {
                    assertEquals(SIZE, nbd.size());
                    assertTrue(nbd.flushes(), "a writable export advertises SEND_FLUSH and SEND_FUA");
                    for (int off = 0; off < SIZE; off += 1 << 20) {
                        nbd.read(off, ByteBuffer.wrap(served, off, 1 << 20));
                    }
                }
                model.verify(served, round);
                if (round == ROUNDS) {
                    String out = serve.stop();
                    assertTrue(out.contains("stopped."), out + serve.stderr());
                    break;
                }
                int ops = 20 + rnd.nextInt(200);
                int killAt = rnd.nextInt(ops);
                try (NbdClient nbd = new NbdClient(serve.address(), "disk")) {
                    for (int op = 0; ; op++) {
                        if (op == killAt) {
                            // From another thread, so the kill lands at a random point of a request.
                            Thread.ofPlatform().start(serve::kill);
                        }
                        int kind = rnd.nextInt(100);
                        try {
                            if (kind < 10) {
                                nbd.flush();
                                model.flushed();
                            } else {
                                int len = kind < 50 ? BLOCK * (1 + rnd.nextInt(16)) : 1 + rnd.nextInt(3 * BLOCK);
                                long off = kind < 50 ? (long) BLOCK * rnd.nextInt(SIZE / BLOCK - 16)
                                        : rnd.nextLong(SIZE - len);
                                byte[] data = new byte[len];
                                rnd.nextBytes(data);
                                boolean fua = kind >= 95;
                                model.writing(off, data);
                                nbd.write(off, ByteBuffer.wrap(data), fua);
                                model.acked++;
                                if (fua) {
                                    model.durable(off, len);
                                }
                            }
                        } catch (IOException killed) {
                            if (kind >= 10) {
                                killedMidWrite++;
                            }
                            break;
                        }
                        assertTrue(op < killAt + 100_000, "the server outlived its SIGKILL by 100,000 requests");
                    }
                }
                serve.awaitExit();
            }
        }
        assertEquals(-1, Arrays.mismatch(original, Files.readAllBytes(image)), "the image below was written");
        assertTrue(model.flushes > ROUNDS, "the harness flushed " + model.flushes + " times");
        assertTrue(model.readOld + model.readNew > 0, "no kill landed after an unflushed write");
        System.out.printf("serve crash harness: %d rounds, %,d writes acknowledged, %,d flushes, %d kills during a "
                        + "write; unflushed blocks read back as their old content %,d times, as a new one %,d times%n",
                ROUNDS, model.acked, model.flushes, killedMidWrite, model.readOld, model.readNew);
    }

    @Test
    void anOverlayIsNeverLaidOverAnImageThatChanged() throws Exception {
        Path image = dir.resolve("base.img");
        byte[] bytes = new byte[1 << 20];
        new SplittableRandom(7).nextBytes(bytes);
        Files.write(image, bytes);
        Path overlays = dir.resolve("overlay");
        try (ServeProcess serve = ServeProcess.start(dir.resolve("first.err"), image.toString(), "--writable",
                "--overlay-dir", overlays.toString(), "--export", "disk", "--listen", "127.0.0.1:0")) {
            try (NbdClient nbd = new NbdClient(serve.address(), "disk")) {
                nbd.write(0, ByteBuffer.wrap(new byte[BLOCK]), true);
            }
            serve.stop();
        }
        // Rewritten in place: same name, same size, other bytes.
        Files.setLastModifiedTime(image, FileTime.from(Instant.now().plusSeconds(60)));
        Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"), Main.class.getName(),
                "serve", image.toString(), "--writable", "--overlay-dir", overlays.toString(), "--export", "disk",
                "--listen", "127.0.0.1:0").redirectErrorStream(true).start();
        assertTrue(p.waitFor(60, java.util.concurrent.TimeUnit.SECONDS), "serve did not exit within 60 s");
        String out = new String(p.getInputStream().readAllBytes());
        assertEquals(2, p.exitValue(), out);
        assertTrue(out.contains("--overlay-dir: overlay") && out.contains("cannot be reopened"), out);
        assertFalse(out.contains("Exception"), out);
    }

    @Test
    void qemuIoReadsBackWhatItFlushedBeforeTheKill() throws Exception {
        Path image = dir.resolve("base.img");
        Files.write(image, new byte[4 << 20]);
        Path overlays = dir.resolve("overlay");
        String[] args = {image.toString(), "--writable", "--overlay-dir", overlays.toString(), "--export", "disk",
                "--listen", "127.0.0.1:0"};
        try (ServeProcess serve = ServeProcess.start(dir.resolve("first.err"), args)) {
            ClientTools.run("qemu-io", "-f", "raw", serve.uri().toString(), "-c", "write -P 0x5a 1M 256k",
                    "-c", "write -P 0xa5 3000 5000", "-c", "flush");
            serve.kill();
            serve.awaitExit();
        }
        try (ServeProcess serve = ServeProcess.start(dir.resolve("second.err"), args)) {
            // 256 KiB, and the two blocks the unaligned write touched.
            assertTrue(serve.stdout().contains("270,336 bytes written by earlier runs"), serve.stdout());
            String read = ClientTools.run("qemu-io", "-f", "raw", serve.uri().toString(), "-c", "read -P 0x5a 1M 256k",
                    "-c", "read -P 0xa5 3000 5000", "-c", "read -P 0 0 3000", "-c", "read -P 0 8000 1040576").output();
            assertFalse(read.contains("Pattern verification failed"), read);
            serve.stop();
        }
        assertEquals(-1, Files.mismatch(image, writeZeros(dir.resolve("zeros"), 4 << 20)), "the image was written");
    }

    private static Path writeZeros(Path p, int size) throws IOException {
        Files.write(p, new byte[size]);
        return p;
    }
}
