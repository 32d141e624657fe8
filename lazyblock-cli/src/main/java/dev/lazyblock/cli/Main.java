package dev.lazyblock.cli;

import java.nio.file.Path;
import java.util.Map;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.OptionSpec;

/** The {@code lazyblock} command line. */
@Command(name = "lazyblock", mixinStandardHelpOptions = true, version = "lazyblock 0.1.0",
        description = {"Serves VM snapshot images lazily from object storage.",
                "Defaults come from a config file (--config FILE, $LAZYBLOCK_CONFIG or",
                "~/.config/lazyblock/config.properties): long option names as keys,",
                "cache-dir=DIR for every command, serve.listen=HOST:PORT for one; flags",
                "win. Credentials come from the environment only."},
        subcommands = {DemoCommand.class, GetCommand.class, WarmCommand.class, ServeCommand.class, ExportCommand.class,
                InspectCommand.class, GcCommand.class, BenchCommand.class, DaemonCommand.class, SandboxCommand.class, UffdHolderCommand.class,
                CommandLine.HelpCommand.class},
        footer = {"", "Examples:",
                "  lazyblock serve https://example.com/rootfs.ext4",
                "  lazyblock warm s3://bucket/vm1/<build>.header --cache-dir /var/cache/lb",
                "  lazyblock daemon --state-dir /var/lib/lazyblock   (production: many sandboxes)",
                "  lazyblock serve --help"})
public final class Main implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    public static void main(String[] args) {
        System.exit(execute(args, System.getenv(), Path.of(System.getProperty("user.home"))));
    }

    static int execute(String[] args, Map<String, String> env, Path home) {
        CommandLine cl;
        try {
            cl = commandLine(args, env, home);
        } catch (Config.ConfigException e) {
            System.err.println("lazyblock: " + e.getMessage());
            return 2;
        }
        return cl.execute(args);
    }

    /** The command line with {@code --config} on every command and the config file, if any, as its defaults. */
    static CommandLine commandLine(String[] args, Map<String, String> env, Path home) throws Config.ConfigException {
        CommandLine cl = new CommandLine(new Main());
        addConfigOption(cl);
        Path file = Config.locate(args, env, home);
        if (file != null) {
            cl.setDefaultValueProvider(Config.load(file, cl));
        }
        return cl;
    }

    /** Every command takes --config (read before parsing, by {@link Config#locate}), so its help shows it. */
    private static void addConfigOption(CommandLine c) {
        if (c.getCommand() instanceof CommandLine.HelpCommand) {
            return;
        }
        c.getCommandSpec().addOption(OptionSpec.builder("--config").paramLabel("FILE").type(Path.class)
                .description("Defaults from this properties file (default: $" + Config.ENV
                        + ", else ~/.config/lazyblock/config.properties if present).")
                .build());
        for (CommandLine sub : c.getSubcommands().values()) {
            addConfigOption(sub);
        }
    }
}
