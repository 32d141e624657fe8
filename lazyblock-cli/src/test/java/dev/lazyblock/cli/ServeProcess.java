package dev.lazyblock.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * {@code lazyblock serve} in a JVM of its own, so a test can {@code kill -9} it: what a crash of
 * the server does to its files can only be seen from outside the process that crashed.
 */
final class ServeProcess implements AutoCloseable {
    private final Process process;
    private final Path stderr;
    private final StringBuilder stdout = new StringBuilder();
    private final URI uri;
    /** Reads the server's output until it exits. */
    private volatile Thread drain;

    private ServeProcess(Process process, Path stderr, URI uri) {
        this.process = process;
        this.stderr = stderr;
        this.uri = uri;
    }

    /** Starts {@code lazyblock serve ARGS} and waits (30 s at most) until it prints its export. */
    static ServeProcess start(Path stderr, String... args) throws IOException, InterruptedException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> command = new ArrayList<>(List.of(java, "--enable-native-access=ALL-UNNAMED", "-cp",
                System.getProperty("java.class.path"), Main.class.getName(), "serve"));
        command.addAll(List.of(args));
        Process p = new ProcessBuilder(command).redirectError(stderr.toFile()).start();
        BufferedReader lines = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        StringBuilder seen = new StringBuilder();
        CompletableFuture<URI> exported = CompletableFuture.supplyAsync(() -> {
            try {
                for (String line; (line = lines.readLine()) != null; ) {
                    seen.append(line).append('\n');
                    int at = line.indexOf("' at nbd://");
                    if (line.startsWith("export '") && at > 0) {
                        return URI.create(line.substring(at + 5).trim());
                    }
                }
                return null;
            } catch (IOException e) {
                return null;
            }
        });
        URI uri;
        try {
            uri = exported.get(30, TimeUnit.SECONDS);
        } catch (TimeoutException | java.util.concurrent.ExecutionException e) {
            uri = null;
        }
        if (uri == null) {
            p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            fail("serve did not export within 30 s:\n" + seen + Files.readString(stderr));
        }
        ServeProcess s = new ServeProcess(p, stderr, uri);
        s.stdout.append(seen);
        // Keep draining its output, so a full pipe never blocks the server.
        s.drain = Thread.ofVirtual().start(() -> {
            try {
                for (String line; (line = lines.readLine()) != null; ) {
                    synchronized (s.stdout) {
                        s.stdout.append(line).append('\n');
                    }
                }
            } catch (IOException ignored) {
                // the process is gone
            }
        });
        return s;
    }

    URI uri() {
        return uri;
    }

    InetSocketAddress address() {
        return new InetSocketAddress(uri.getHost(), uri.getPort());
    }

    String stdout() {
        synchronized (stdout) {
            return stdout.toString();
        }
    }

    String stderr() throws IOException {
        return Files.readString(stderr);
    }

    /** {@code kill -9}: no shutdown hook, no close, no last commit. */
    void kill() {
        process.destroyForcibly(); // SIGKILL on Linux
    }

    void awaitExit() throws InterruptedException {
        assertTrue(process.waitFor(30, TimeUnit.SECONDS), "serve did not die within 30 s of SIGKILL");
    }

    /** SIGTERM, as systemd stops it: a clean close (the JVM then exits 143, 128 + SIGTERM). */
    String stop() throws InterruptedException, IOException {
        // Through the handle: Process.destroy would also close our end of its output, losing the last lines.
        process.toHandle().destroy();
        assertTrue(process.waitFor(120, TimeUnit.SECONDS), "serve did not stop within 120 s of SIGTERM");
        assertEquals(143, process.exitValue(), "serve's exit code; its stderr:\n" + stderr());
        assertTrue(drain.join(java.time.Duration.ofSeconds(30)), "serve's output did not end within 30 s of its exit");
        return stdout();
    }

    @Override
    public void close() throws InterruptedException {
        if (process.isAlive()) {
            process.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
        }
    }
}
