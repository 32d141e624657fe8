package dev.lazyblock.cli;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.LinkedHashSet;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import picocli.CommandLine;

/**
 * Fuzzing of the config file (Jazzer; see {@code bin/fuzz}): any bytes as
 * {@code config.properties}, then the commands its keys name parsed with it as their defaults.
 *
 * <p>The contract: the file is refused with a {@link Config.ConfigException} (unreadable, an
 * unknown key, a key that looks like a credential, which the message never quotes the value of)
 * or accepted; an accepted file's bad value fails the command's parse with picocli's
 * {@link CommandLine.ParameterException} naming the option, never another exception.
 */
class ConfigFuzzTest {
    private static Path dir;
    /** Built once: building every command's model is most of the cost of a run. */
    private static CommandLine root;

    @BeforeAll
    static void start() throws Exception {
        dir = Files.createTempDirectory("config-fuzz");
        root = Main.commandLine(new String[0], Map.of(), dir);
    }

    @AfterAll
    static void stop() throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
    }

    @FuzzTest(maxDuration = "10s")
    void anyFileIsRefusedWithAConfigErrorOrItsBadValuesFailTheParse(byte[] input) throws IOException {
        Path file = Files.write(dir.resolve("config.properties"), input);
        try {
            root.setDefaultValueProvider(Config.load(file, root));
        } catch (Config.ConfigException e) {
            assertTrue(e.getMessage().contains(file.toString()), "the error names the file: " + e.getMessage());
            return;
        }
        for (String command : commandsNamed(input)) {
            try {
                root.parseArgs(command, "img");
            } catch (CommandLine.ParameterException e) {
                // A bad value, or a command that wants other arguments: picocli's own error.
            }
        }
    }

    /** The commands the file's keys name ("serve.listen": serve), and serve for the shared keys. */
    private static Set<String> commandsNamed(byte[] input) throws IOException {
        Properties p = new Properties();
        p.load(new java.io.StringReader(new String(input, StandardCharsets.UTF_8)));
        Set<String> out = new LinkedHashSet<>();
        out.add("serve");
        for (String key : p.stringPropertyNames()) {
            int dot = key.indexOf('.');
            if (dot > 0 && out.size() < 4) {
                out.add(key.substring(0, dot).toLowerCase(Locale.ROOT));
            }
        }
        return out;
    }
}
