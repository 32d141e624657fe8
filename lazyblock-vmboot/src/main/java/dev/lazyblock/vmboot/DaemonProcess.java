package dev.lazyblock.vmboot;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * {@code lazyblock daemon} as users run it, in its own JVM, driven with {@code lazyblock sandbox}
 * (each call a process of its own, as an orchestrator's shell-out would be).
 */
public final class DaemonProcess implements AutoCloseable {
    private final Process process;
    private final Path socket;
    private final Map<String, String> env;
    private final Path log;

    private DaemonProcess(Process process, Path socket, Map<String, String> env, Path log) {
        this.process = process;
        this.socket = socket;
        this.env = env;
        this.log = log;
    }

    /** Starts a daemon on {@code stateDir} and waits (bounded) until its control socket answers. */
    public static DaemonProcess start(Path stateDir, Map<String, String> env, Path log)
            throws IOException, InterruptedException {
        Path socket = stateDir.resolve("api.sock");
        ProcessBuilder pb = new ProcessBuilder(cli("daemon", "--state-dir", stateDir.toString(), "--socket",
                socket.toString())).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
        pb.environment().putAll(env);
        DaemonProcess d = new DaemonProcess(pb.start(), socket, env, log);
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (true) {
            if (Files.exists(socket) && d.sandbox("host").exit == 0) {
                return d;
            }
            if (!d.process.isAlive() || System.nanoTime() - deadline > 0) {
                d.close();
                throw new IOException("lazyblock daemon did not answer on " + socket + " within 60 s (log " + log + ")");
            }
            Thread.sleep(50);
        }
    }

    private static List<String> cli(String... args) {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow", "-jar",
                ServeProcess.jar().toString()));
        cmd.addAll(List.of(args));
        return cmd;
    }

    record Result(int exit, String output) {}

    /** Runs {@code lazyblock sandbox --socket S ARGS}, at most 2 minutes. */
    Result sandbox(String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("sandbox", "--socket", socket.toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cli(cmd.toArray(String[]::new)))
                .redirectError(ProcessBuilder.Redirect.appendTo(log.toFile()));
        pb.environment().putAll(env);
        Process p = pb.start();
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(2, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            throw new IOException("lazyblock sandbox " + String.join(" ", args) + " did not finish in 2 minutes");
        }
        return new Result(p.exitValue(), new String(out, StandardCharsets.UTF_8).trim());
    }

    /** Creates a sandbox and returns its disk's NBD URI. */
    public String create(String id, String image) throws IOException, InterruptedException {
        Result r = sandbox("create", image, "--id", id, "--field", "nbdUri");
        if (r.exit() != 0) {
            throw new IOException("lazyblock sandbox create failed (log " + log + "): " + r.output());
        }
        return r.output();
    }

    @Override
    public void close() throws InterruptedException {
        process.toHandle().destroy(); // SIGTERM: the daemon deletes its sandboxes and saves its caches
        if (!process.waitFor(60, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            process.waitFor(10, TimeUnit.SECONDS);
        }
    }
}
