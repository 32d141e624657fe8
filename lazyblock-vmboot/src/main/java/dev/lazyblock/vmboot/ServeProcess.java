package dev.lazyblock.vmboot;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code lazyblock serve} as users run it: the CLI jar in its own JVM, configured through the
 * environment, stopped with SIGTERM (which makes it print its statistics and export its layer).
 */
public final class ServeProcess implements AutoCloseable {
    private static final Pattern EXPORT = Pattern.compile("export '([^']+)' at (nbd://\\S+)");

    private final Process process;
    private final StringBuilder out = new StringBuilder();
    private final CountDownLatch ready = new CountDownLatch(1);
    /** Set by the reader thread before {@link #ready} opens. */
    private volatile URI uri;

    private final Thread reader;

    private ServeProcess(Process process) {
        this.process = process;
        this.reader = Thread.ofPlatform().daemon().name("serve-stdout").start(this::read);
    }

    /** The CLI jar: {@code -Dlazyblock.cli.jar}, else the build's. */
    public static Path jar() {
        return Path.of(System.getProperty("lazyblock.cli.jar", "lazyblock-cli/target/lazyblock.jar"));
    }

    /**
     * Starts {@code lazyblock serve IMAGE args...} on a free loopback port (unless {@code args}
     * has a {@code --listen}) and waits until it listens; its log goes to {@code log}.
     */
    public static ServeProcess start(String image, List<String> args, Map<String, String> env, Path log)
            throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow", "-jar", jar().toString(),
                "serve", image));
        if (!args.contains("--listen")) {
            cmd.addAll(List.of("--listen", "127.0.0.1:0"));
        }
        cmd.addAll(args);
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.appendTo(log.toFile()));
        pb.environment().putAll(env);
        ServeProcess s = new ServeProcess(pb.start());
        if (!s.ready.await(60, TimeUnit.SECONDS) || s.uri == null) {
            String output = s.stop(Duration.ofSeconds(10));
            throw new IOException("lazyblock serve did not start in 60 s (log " + log + "): " + output);
        }
        return s;
    }

    private void read() {
        try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
            for (String line; (line = r.readLine()) != null; ) {
                synchronized (out) {
                    out.append(line).append('\n');
                }
                Matcher m = EXPORT.matcher(line);
                if (uri == null && m.find()) {
                    uri = URI.create(m.group(2));
                    ready.countDown();
                }
            }
        } catch (IOException e) {
            // the process is gone
        } finally {
            ready.countDown();
        }
    }

    /** The NBD URI of the export. */
    public URI uri() {
        return uri;
    }

    /** What serve printed so far. */
    public String output() {
        synchronized (out) {
            return out.toString();
        }
    }

    /** SIGTERM, then waits for the process to finish (killing it after {@code timeout}); returns its output. */
    public String stop(Duration timeout) throws InterruptedException {
        // SIGTERM through the handle: Process.destroy() would also close our end of its stdout,
        // losing what serve prints as it stops (its statistics, the exported layer).
        process.toHandle().destroy();
        if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
            process.destroyForcibly();
            process.waitFor(10, TimeUnit.SECONDS);
        }
        reader.join(TimeUnit.SECONDS.toMillis(10)); // it ends at EOF, right after the process
        return output();
    }

    /** {@code kill -9}, and waits (30 s at most) until the process is gone. */
    public void kill() throws InterruptedException {
        process.destroyForcibly(); // SIGKILL on Linux
        if (!process.waitFor(30, TimeUnit.SECONDS)) {
            throw new IllegalStateException("serve outlived its SIGKILL by 30 s");
        }
        reader.join(TimeUnit.SECONDS.toMillis(10));
    }

    /** The exit status: 143 after a SIGTERM it handled (the JVM's convention), whatever it printed. */
    public int exitValue() {
        return process.exitValue();
    }

    @Override
    public void close() throws InterruptedException {
        if (process.isAlive()) {
            stop(Duration.ofSeconds(30));
        }
    }
}
