package dev.lazyblock.cli;

import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.TreeSet;
import java.util.regex.Pattern;
import picocli.CommandLine;
import picocli.CommandLine.Model.ArgSpec;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;

/**
 * The optional config file: defaults for any command's long options, as properties.
 * {@code serve.listen=127.0.0.1:10810} sets serve's {@code --listen}; a key without a command
 * ({@code cache-dir=/var/cache/lazyblock}) sets that option for every command that has it; a
 * command's own key wins over the shared one. Flags on the command line win over both, and both
 * over the built-in defaults: the file is picocli's default-value provider.
 *
 * <p>Where it is: {@code --config FILE}, else {@code $LAZYBLOCK_CONFIG}, else
 * {@code ~/.config/lazyblock/config.properties} if it exists. Credentials stay in the environment:
 * a key that looks like one is refused, so a secret never sits in a file that gets copied around.
 */
final class Config implements CommandLine.IDefaultValueProvider {
    static final String ENV = "LAZYBLOCK_CONFIG";

    /** Key words that name a credential; a cache key is not one. */
    private static final Pattern SECRET = Pattern.compile("secret|password|passwd|token|credential|key");
    private static final Pattern CACHE_KEY = Pattern.compile("cache-?key");

    private final Path file;
    private final Properties props;

    private Config(Path file, Properties props) {
        this.file = file;
        this.props = props;
    }

    /** A config file that cannot be used: the command exits 2 with this message. */
    static final class ConfigException extends Exception {
        ConfigException(String message) {
            super(message);
        }
    }

    Path file() {
        return file;
    }

    /**
     * The config file for these arguments and environment, or null if there is none.
     *
     * @param home the user's home directory (where {@code .config/lazyblock/config.properties} is looked for)
     */
    static Path locate(String[] args, Map<String, String> env, Path home) throws ConfigException {
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--")) {
                break;
            }
            if (args[i].equals("--config")) {
                if (i + 1 >= args.length) {
                    throw new ConfigException("--config needs a FILE");
                }
                return mustExist(Path.of(args[i + 1]), "--config");
            }
            if (args[i].startsWith("--config=")) {
                return mustExist(Path.of(args[i].substring("--config=".length())), "--config");
            }
        }
        String fromEnv = env.get(ENV);
        if (fromEnv != null && !fromEnv.isEmpty()) {
            return mustExist(Path.of(fromEnv), "$" + ENV);
        }
        Path dflt = home.resolve(".config/lazyblock/config.properties");
        return Files.isRegularFile(dflt) ? dflt : null;
    }

    private static Path mustExist(Path p, String from) throws ConfigException {
        if (!Files.isRegularFile(p)) {
            throw new ConfigException("config file " + p + " (from " + from + ") does not exist or is not a file");
        }
        return p;
    }

    /** Reads {@code file} and checks every key against the commands under {@code root}. */
    static Config load(Path file, CommandLine root) throws ConfigException {
        Properties props = new Properties();
        try (Reader r = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            props.load(r);
        } catch (IOException | IllegalArgumentException e) {
            throw new ConfigException("cannot read config file " + file + ": " + e.getMessage());
        }
        List<String> unknown = new ArrayList<>();
        for (String key : new TreeSet<>(props.stringPropertyNames())) {
            String lower = key.toLowerCase(Locale.ROOT);
            if (SECRET.matcher(CACHE_KEY.matcher(lower).replaceAll("")).find()) {
                throw new ConfigException("config file " + file + ": '" + key + "' looks like a credential. Credentials "
                        + "are read from the environment only (LAZYBLOCK_S3_*, AWS_*), never from the config file: "
                        + "remove the key");
            }
            if (!known(key, root)) {
                unknown.add(key);
            }
        }
        if (!unknown.isEmpty()) {
            throw new ConfigException("config file " + file + ": no command has an option for " + unknown
                    + " (keys are long option names, e.g. cache-dir=DIR for every command, serve.listen=HOST:PORT "
                    + "for one; `lazyblock COMMAND --help` lists them)");
        }
        return new Config(file, props);
    }

    /** Whether some command has the option {@code key} names (shared) or the command it names has it. */
    private static boolean known(String key, CommandLine root) {
        for (CommandLine c : all(root)) {
            String prefix = commandKey(c.getCommandSpec());
            for (OptionSpec o : c.getCommandSpec().options()) {
                String name = optionKey(o);
                if (name != null && (key.equals(name) || key.equals(prefix + "." + name))) {
                    return true;
                }
            }
        }
        return false;
    }

    private static List<CommandLine> all(CommandLine root) {
        List<CommandLine> out = new ArrayList<>();
        out.add(root);
        for (CommandLine sub : root.getSubcommands().values()) {
            if (!out.contains(sub)) {
                out.addAll(all(sub));
            }
        }
        return out;
    }

    /** "serve", "bench.nbd": the command's path below the root, dotted. */
    static String commandKey(CommandSpec spec) {
        String q = spec.qualifiedName(".");
        int dot = q.indexOf('.');
        return dot < 0 ? "" : q.substring(dot + 1);
    }

    /** The option's long name without dashes; null for options a file should not set (help, version, config). */
    private static String optionKey(OptionSpec o) {
        if (o.usageHelp() || o.versionHelp() || o.longestName().equals("--config") || !o.longestName().startsWith("--")) {
            return null;
        }
        return o.longestName().substring(2);
    }

    @Override
    public String defaultValue(ArgSpec arg) {
        if (!(arg instanceof OptionSpec o) || optionKey(o) == null) {
            return null;
        }
        String name = optionKey(o);
        String own = props.getProperty(commandKey(o.command()) + "." + name);
        return own != null ? own : props.getProperty(name);
    }
}
