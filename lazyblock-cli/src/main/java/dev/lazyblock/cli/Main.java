package dev.lazyblock.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code lazyblock} command line. */
@Command(name = "lazyblock", mixinStandardHelpOptions = true, version = "lazyblock 0.1.0",
        description = "Serves VM snapshot images lazily from object storage.",
        subcommands = {DemoCommand.class, GetCommand.class, InspectCommand.class, ServeCommand.class, WarmCommand.class, ExportCommand.class, BenchCommand.class, CommandLine.HelpCommand.class})
public final class Main implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    public static void main(String[] args) {
        System.exit(new CommandLine(new Main()).execute(args));
    }
}
