package dev.lazyblock.testing;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs the real NBD clients (libnbd's nbdinfo/nbdcopy, qemu-img, qemu-io) with a time limit.
 * A missing tool fails the test with what to install: CI installs them (.ci/run).
 */
public final class Tools {
    public static final Duration TIMEOUT = Duration.ofSeconds(120);

    private Tools() {}

    public record Result(List<String> command, int exit, String output) {
        public Result ok() {
            if (exit != 0) {
                fail(String.join(" ", command) + " exited with " + exit + ":\n" + output);
            }
            return this;
        }
    }

    /** Fails unless {@code tool} is an executable on the PATH (or, holding a '/', an executable file). */
    public static void require(String tool) {
        if (tool.contains("/")) { // a path, e.g. a test program the test just compiled
            if (!Files.isExecutable(Path.of(tool))) {
                fail(tool + " is not an executable file");
            }
            return;
        }
        for (String dir : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, tool))) {
                return;
            }
        }
        fail(tool + " is not installed, and these tests run the real NBD clients. Install them with\n"
                + "    apt-get install -y libnbd-bin nbdkit qemu-utils\n"
                + "(.ci/run does this before the build).");
    }

    public static Result run(String... command) throws IOException, InterruptedException {
        return run(TIMEOUT, command);
    }

    /** Runs {@code command} with stdin closed, stdout and stderr together, killed after {@code limit}. */
    public static Result run(Duration limit, String... command) throws IOException, InterruptedException {
        require(command[0]);
        Path out = Files.createTempFile("lazyblock-tool-", ".out");
        try {
            Process p = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(out.toFile())
                    .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
            if (!p.waitFor(limit.toMillis(), TimeUnit.MILLISECONDS)) {
                p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
                fail(String.join(" ", command) + " did not finish within " + limit + ":\n"
                        + Files.readString(out, StandardCharsets.UTF_8));
            }
            return new Result(List.of(command), p.exitValue(), Files.readString(out, StandardCharsets.UTF_8));
        } finally {
            Files.deleteIfExists(out);
        }
    }

    public static Result run(List<String> command) throws IOException, InterruptedException {
        return run(command.toArray(String[]::new));
    }

    public static List<String> cmd(String... parts) {
        return new ArrayList<>(List.of(parts));
    }
}
