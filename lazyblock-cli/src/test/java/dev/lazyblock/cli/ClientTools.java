package dev.lazyblock.cli;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/** Runs a real NBD client with a time limit; a missing one fails with what to install. */
final class ClientTools {
    private ClientTools() {}

    record Result(int exit, String output) {}

    static Result run(String... command) throws IOException, InterruptedException {
        return run(true, command);
    }

    /** Runs the tool and returns its exit code and output, whatever the code. */
    static Result runAllowingFailure(String... command) throws IOException, InterruptedException {
        return run(false, command);
    }

    private static Result run(boolean mustSucceed, String... command) throws IOException, InterruptedException {
        if (!NbdBenchCommand.onPath(command[0])) {
            fail(command[0] + " is not installed, and the serve tests run real NBD clients. Install them with\n"
                    + "    apt-get install -y libnbd-bin nbdkit qemu-utils\n(.ci/run does this before the build).");
        }
        Path out = Files.createTempFile("lazyblock-tool-", ".out");
        try {
            Process p = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(out.toFile())
                    .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
            if (!p.waitFor(120, TimeUnit.SECONDS)) {
                p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
                fail(String.join(" ", command) + " did not finish within 120 s:\n" + Files.readString(out));
            }
            Result r = new Result(p.exitValue(), Files.readString(out, StandardCharsets.UTF_8));
            if (mustSucceed && r.exit() != 0) {
                fail(String.join(" ", command) + " exited with " + r.exit() + ":\n" + r.output());
            }
            return r;
        } finally {
            Files.deleteIfExists(out);
        }
    }
}
