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

    @Test
    void aClientWritingThroughTwoKillsOfTheDaemonGoesOnAndLosesNothing() throws Exception {
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
            byte[] model = f.template.clone();
            // Blocks whose last write was in flight when the daemon was killed (acknowledged or
            // not, it was not flushed): either content is right. Block -> its content before.
            java.util.Map<Integer, byte[]> eitherOr = new java.util.HashMap<>();
            Random rnd = new Random(16);
            int kills = 0;
            int flushes = 0;
            List<Integer> killAt = List.of(13, 27);
            for (int step = 0; step < 40; step++) {
                int len = (1 + rnd.nextInt(16)) * 4096;
                int off = rnd.nextInt((model.length - len) / 4096) * 4096;
                byte pattern = (byte) (step + 1);
                String write = "write -P " + (pattern & 0xff) + " " + off + " " + len;
                String wrote = "wrote " + len + "/" + len + " bytes at offset " + off;
                for (int b = off / 4096; b < (off + len) / 4096; b++) {
                    eitherOr.remove(b); // written again: only the new content is right
                }
                if (killAt.contains(step)) {
                    // Everything before is flushed; the daemon dies under this write: acknowledged
                    // or not, qemu waits for the daemon to come back (and sends it again if it was
                    // not acknowledged).
                    qemu.run("flush");
                    flushes++;
                    for (int b = off / 4096; b < (off + len) / 4096; b++) {
                        eitherOr.put(b, Arrays.copyOfRange(model, b * 4096, b * 4096 + 4096));
                    }
                    qemu.send(write);
                    d.process().destroyForcibly();
                    assertTrue(d.process().waitFor(STEP.toSeconds(), TimeUnit.SECONDS));
                    kills++;
                    d = daemon(state, tmp.resolve("daemon-" + kills + ".log"));
                    String said = qemu.awaitPrompt();
                    assertTrue(said.contains(wrote), write + ": " + said);
                } else {
                    assertTrue(qemu.run(write).contains(wrote), write);
                }
                Arrays.fill(model, off, off + len, pattern);
                if (step % 4 == 3) {
                    qemu.run("flush");
                    flushes++;
                }
            }
            qemu.run("flush");
            qemu.send("quit");
            assertTrue(qemu.process.waitFor(STEP.toSeconds(), TimeUnit.SECONDS), "qemu-io quit");
            assertEquals(2, kills);
            Path copy = tmp.resolve("vm.raw");
            Tools.run("nbdcopy", "nbd+unix:///vm?socket=" + sock, copy.toString()).ok();
            byte[] got = Files.readAllBytes(copy);
            int lost = 0;
            for (var e : eitherOr.entrySet()) {
                int at = e.getKey() * 4096;
                if (Arrays.equals(got, at, at + 4096, e.getValue(), 0, 4096)) {
                    System.arraycopy(model, at, got, at, 4096); // the old content: allowed, it was never flushed
                    lost++;
                }
            }
            assertArrayEquals(model, got, "the template with every write of the session, made through two kill -9s "
                    + "of the daemon (an unflushed block may read as its old content, never as anything else)");
            System.out.printf("40 writes and %d flushes by one qemu-io session through %d kill -9s of the daemon: "
                    + "all read back (%d unflushed blocks of the write in flight at a kill read as before it)%n", flushes + 1,
                    kills, lost);
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
