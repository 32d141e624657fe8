package dev.lazyblock.daemon;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.testing.Tools;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code kill -9} of a real daemon process while a real NBD client (qemu-io, one session with
 * {@code reconnect-delay}, as a VM's qemu would run) writes and flushes into its sandbox: the
 * daemon started again on the state directory brings the sandbox back on the same socket, the
 * client's session goes on (its next write waits out the restart), and every acknowledged byte
 * reads back, from the client and from a new one.
 */
class DaemonCrashTest {
    static final Duration STEP = Duration.ofSeconds(90);

    @TempDir
    Path tmp;

    /** A daemon process; its output lines arrive in {@code lines}. */
    private record Child(Process process, BlockingQueue<String> lines) {}

    private static Child daemon(Path state, Path log) throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process p = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED", "-cp",
                System.getProperty("java.class.path"), DaemonProcess.class.getName(), state.toString())
                .redirectError(log.toFile()).start();
        Child c = new Child(p, lines(p));
        String ready = c.lines().poll(STEP.toSeconds(), TimeUnit.SECONDS);
        assertTrue(ready != null && ready.startsWith("ready"), "the daemon started: " + ready + "\n"
                + Files.readString(log));
        return c;
    }

    private static BlockingQueue<String> lines(Process p) {
        BlockingQueue<String> q = new LinkedBlockingQueue<>();
        Thread.ofVirtual().start(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), UTF_8))) {
                for (String l; (l = r.readLine()) != null; ) {
                    q.add(l);
                }
            } catch (IOException ignored) {
                // the process died: that is the test
            }
        });
        return q;
    }

    /**
     * One interactive qemu-io session. It reads its next command only once the last one is done,
     * and says so with its prompt: so a command is sent only after a prompt, and its output is
     * what comes before the next one (a flush prints nothing, but its prompt means it is done).
     */
    private static final class QemuIo implements AutoCloseable {
        private static final String PROMPT = "qemu-io> ";
        private final Process process;
        private final StringBuilder out = new StringBuilder(); // guarded by itself
        private final java.util.concurrent.Semaphore prompts = new java.util.concurrent.Semaphore(0);
        private int consumed; // where the last command's output ends in out; test thread only

        QemuIo(String... command) throws IOException {
            process = new ProcessBuilder(command).redirectErrorStream(true).start();
            Thread.ofVirtual().start(() -> {
                byte[] buf = new byte[4096];
                int scanned = 0;
                try (var in = process.getInputStream()) {
                    for (int n; (n = in.read(buf)) > 0; ) {
                        synchronized (out) {
                            out.append(new String(buf, 0, n, UTF_8));
                            for (int at; (at = out.indexOf(PROMPT, scanned)) >= 0; ) {
                                scanned = at + PROMPT.length();
                                prompts.release();
                            }
                        }
                    }
                } catch (IOException ignored) {
                    // qemu-io is gone
                }
            });
        }

        /** Waits for the next prompt; the output since the previous one. */
        String awaitPrompt() throws InterruptedException {
            if (!prompts.tryAcquire(STEP.toSeconds(), TimeUnit.SECONDS)) {
                synchronized (out) {
                    throw new AssertionError("qemu-io gave no prompt within " + STEP.toSeconds() + " s; it printed:\n"
                            + out.substring(Math.max(0, out.length() - 3000)));
                }
            }
            synchronized (out) {
                int end = out.indexOf(PROMPT, consumed);
                String said = out.substring(consumed, end);
                consumed = end + PROMPT.length();
                return said;
            }
        }

        void send(String command) throws IOException {
            process.getOutputStream().write((command + "\n").getBytes(UTF_8));
            process.getOutputStream().flush();
        }

        /** Sends a command at the prompt and returns its output, failing on an error. */
        String run(String command) throws IOException, InterruptedException {
            send(command);
            String said = awaitPrompt();
            assertTrue(!said.contains("failed") && !said.contains("rror"), command + ": " + said);
            return said;
        }

        @Override
        public void close() {
            process.destroyForcibly();
        }
    }

    /** A block's content as a value id: 0 the template's, 1 to 250 a write's pattern, -1 anything else. */
    private static int valueOf(byte[] disk, byte[] template, int block) {
        int at = block * 4096;
        if (Arrays.equals(disk, at, at + 4096, template, at, at + 4096)) {
            return 0;
        }
        byte b = disk[at];
        for (int i = at + 1; i < at + 4096; i++) {
            if (disk[i] != b) {
                return -1;
            }
        }
        int v = b & 0xff;
        return v >= 1 && v <= 250 ? v : -1;
    }

    /**
     * 50 rounds with a fixed seed: random writes (4 to 64 KiB) and flushes from one qemu-io
     * session, then {@code kill -9} of the daemon, between two commands or under a write in
     * flight, and a new daemon on the state directory. After each restart a new client reads the
     * whole disk: every block is the last content flushed or one written since, never another.
     */
    @Test
    void aClientWritingThroughFiftyKillsOfTheDaemonGoesOnAndLosesNothingFlushed() throws Exception {
        DaemonFixture f = new DaemonFixture(tmp, 8 << 20, c -> c);
        Path state = tmp.resolve("crash-state");
        Child d = daemon(state, tmp.resolve("daemon-0.log"));
        QemuIo qemu = null;
        try {
            DaemonClient client = new DaemonClient(state.resolve("api.sock"), STEP);
            DaemonFixture.ok(201, client.post("/v1/sandboxes", "{\"id\":\"vm\",\"image\":\"" + f.templateUrl() + "\"}"));
            Path sock = state.resolve("sandboxes/vm/nbd.sock");
            qemu = new QemuIo("qemu-io", "--image-opts", "driver=raw,file.driver=nbd,file.path=" + sock
                    + ",file.export=vm,file.reconnect-delay=" + STEP.toSeconds());
            qemu.awaitPrompt();
            int blocks = f.template.length / 4096;
            // Per block, what it may read as now (cur) and what a crash may leave it as (cand:
            // its content at the last flush and everything written to it since).
            java.util.BitSet[] cur = new java.util.BitSet[blocks];
            java.util.BitSet[] cand = new java.util.BitSet[blocks];
            for (int b = 0; b < blocks; b++) {
                cur[b] = new java.util.BitSet();
                cur[b].set(0);
                cand[b] = (java.util.BitSet) cur[b].clone();
            }
            int[] last = new int[blocks]; // the last value written to each block (0: none yet)
            Random rnd = new Random(16);
            int step = 0;
            int flushes = 0;
            int underWrite = 0;
            long writes = 0;
            long reverted = 0;
            for (int round = 0; round < 50; round++) {
                int n = 1 + rnd.nextInt(6);
                int inFlightFrom = -1;
                int inFlightTo = -1;
                for (int w = 0; w < n; w++) {
                    int len = (1 + rnd.nextInt(16)) * 4096;
                    int off = rnd.nextInt((f.template.length - len) / 4096) * 4096;
                    int pattern = step++ % 250 + 1;
                    String write = "write -P " + pattern + " " + off + " " + len;
                    String wrote = "wrote " + len + "/" + len + " bytes at offset " + off;
                    writes++;
                    if (w == n - 1 && rnd.nextBoolean()) {
                        // The daemon dies under this write: acknowledged or not, qemu waits for a
                        // daemon on the socket (and sends it again if it was not acknowledged).
                        qemu.send(write);
                        d.process().destroyForcibly();
                        assertTrue(d.process().waitFor(STEP.toSeconds(), TimeUnit.SECONDS));
                        d = daemon(state, tmp.resolve("daemon-" + (round + 1) + ".log"));
                        String said = qemu.awaitPrompt();
                        assertTrue(said.contains(wrote) && !said.contains("failed"), write + ": " + said);
                        underWrite++;
                        inFlightFrom = off / 4096;
                        inFlightTo = (off + len) / 4096;
                        for (int b = 0; b < blocks; b++) {
                            if (b >= inFlightFrom && b < inFlightTo) {
                                cand[b].set(pattern);
                                last[b] = pattern;
                            }
                            cur[b] = (java.util.BitSet) cand[b].clone(); // lost or kept, unflushed
                        }
                        break;
                    }
                    assertTrue(qemu.run(write).contains(wrote), write);
                    for (int b = off / 4096; b < (off + len) / 4096; b++) {
                        cur[b].clear();
                        cur[b].set(pattern);
                        cand[b].set(pattern);
                        last[b] = pattern;
                    }
                    if (rnd.nextInt(3) == 0) {
                        qemu.run("flush");
                        flushes++;
                        for (int b = 0; b < blocks; b++) {
                            cand[b] = (java.util.BitSet) cur[b].clone();
                        }
                    }
                }
                if (inFlightFrom < 0) {
                    // Killed between two commands.
                    d.process().destroyForcibly();
                    assertTrue(d.process().waitFor(STEP.toSeconds(), TimeUnit.SECONDS));
                    d = daemon(state, tmp.resolve("daemon-" + (round + 1) + ".log"));
                    for (int b = 0; b < blocks; b++) {
                        cur[b] = (java.util.BitSet) cand[b].clone();
                    }
                }
                Path copy = tmp.resolve("vm-" + round + ".raw");
                Tools.run("nbdcopy", "nbd+unix:///vm?socket=" + sock, copy.toString()).ok();
                byte[] got = Files.readAllBytes(copy);
                Files.delete(copy);
                for (int b = 0; b < blocks; b++) {
                    int v = valueOf(got, f.template, b);
                    int block = b;
                    int r = round;
                    assertTrue(v >= 0 && cur[b].get(v), () -> "round " + r + ": block " + block + " reads as value "
                            + v + ", expected one of " + cur[block] + " (0: the template's, else a write's pattern)");
                    if (v != last[b]) {
                        reverted++; // an unflushed write a crash took: allowed
                        last[b] = v;
                    }
                    cur[b].clear();
                    cur[b].set(v);
                    if (b < inFlightFrom || b >= inFlightTo) {
                        cand[b] = (java.util.BitSet) cur[b].clone(); // served after a restart: on disk
                    }
                }
            }
            qemu.run("flush");
            qemu.send("quit");
            assertTrue(qemu.process.waitFor(STEP.toSeconds(), TimeUnit.SECONDS), "qemu-io quit");
            System.out.printf("50 kill -9s of the daemon (%d under a write in flight) during %d writes and %d flushes "
                    + "by one qemu-io session: every block read back as flushed or as written since (%d unflushed "
                    + "block writes taken by a crash)%n", underWrite, writes, flushes, reverted);
        } finally {
            if (qemu != null) {
                qemu.close();
            }
            d.process().getOutputStream().close();
            if (!d.process().waitFor(STEP.toSeconds(), TimeUnit.SECONDS)) {
                d.process().destroyForcibly();
            }
            f.close();
        }
    }
}
