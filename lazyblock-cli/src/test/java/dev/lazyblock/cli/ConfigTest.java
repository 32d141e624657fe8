package dev.lazyblock.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** The config file: flags over the file, the file over built-in defaults, credentials refused. */
class ConfigTest {
    @TempDir
    Path dir;

    private Path config(String... lines) throws Exception {
        return Files.writeString(dir.resolve("config.properties"), String.join("\n", lines) + "\n");
    }

    private <T> T parsed(Class<T> type, Map<String, String> env, String... args) throws Exception {
        CommandLine cl = Main.commandLine(args, env, dir.resolve("home"));
        CommandLine.ParseResult r = cl.parseArgs(args);
        return type.cast(r.subcommand().commandSpec().userObject());
    }

    @Test
    void flagsWinOverTheFileAndTheFileOverBuiltInDefaults() throws Exception {
        Path f = config("serve.chunker=streaming", "cache-dir=/var/cache/lb", "serve.listen=127.0.0.1:10810",
                "warm.parallel=3");
        ServeCommand fromFile = parsed(ServeCommand.class, Map.of(), "--config", f.toString(), "serve", "img");
        assertEquals("streaming", fromFile.chunker);
        assertEquals("127.0.0.1:10810", fromFile.listen);
        assertEquals(Path.of("/var/cache/lb"), fromFile.cacheDir, "a shared key applies to every command");

        ServeCommand flags = parsed(ServeCommand.class, Map.of(), "serve", "img", "--config", f.toString(),
                "--chunker", "full-fetch", "--cache-dir", "/tmp/x");
        assertEquals("full-fetch", flags.chunker);
        assertEquals(Path.of("/tmp/x"), flags.cacheDir);

        ServeCommand builtIn = parsed(ServeCommand.class, Map.of(), "serve", "img");
        assertEquals("request-first", builtIn.chunker);
        assertEquals("127.0.0.1:10809", builtIn.listen);
        assertNull(builtIn.cacheDir);

        WarmCommand warm = parsed(WarmCommand.class, Map.of(Config.ENV, f.toString()), "warm", "img");
        assertEquals(3, warm.parallel, "the file named by $LAZYBLOCK_CONFIG");
        assertEquals(Path.of("/var/cache/lb"), warm.cacheDir);
        assertEquals("full-fetch", warm.chunker, "serve.chunker is serve's alone");

        // Options shared through a mixin (the tier's) are keyed like any other, per command too.
        Path t = config("tier=/mnt/nfs/tier", "warm.tier-budget=20G");
        WarmCommand tiered = parsed(WarmCommand.class, Map.of(Config.ENV, t.toString()), "warm", "img");
        assertEquals(Path.of("/mnt/nfs/tier"), tiered.tier.dir);
        assertEquals("20G", tiered.tier.budget);
        ServeCommand servedTiered = parsed(ServeCommand.class, Map.of(Config.ENV, t.toString()), "serve", "img");
        assertEquals(Path.of("/mnt/nfs/tier"), servedTiered.tier.dir);
        assertNull(servedTiered.tier.budget, "warm.tier-budget is warm's alone");
    }

    @Test
    void theFileInTheHomeDirectoryIsReadWhenPresent() throws Exception {
        Path home = dir.resolve("home");
        Files.createDirectories(home.resolve(".config/lazyblock"));
        Files.writeString(home.resolve(".config/lazyblock/config.properties"), "get.parallel=2\n");
        CommandLine cl = Main.commandLine(new String[] {"get", "a", "b"}, Map.of(), home);
        GetCommand get = (GetCommand) cl.parseArgs("get", "a", "b").subcommand().commandSpec().userObject();
        assertEquals(2, get.parallel);
    }

    @Test
    void keysThatLookLikeCredentialsAreRefused() throws Exception {
        for (String key : new String[] {"s3.secret-access-key", "serve.password", "token", "aws.access-key-id"}) {
            Path f = config(key + "=x");
            Config.ConfigException e = assertThrows(Config.ConfigException.class,
                    () -> Main.commandLine(new String[] {"--config", f.toString(), "serve", "img"}, Map.of(), dir));
            assertTrue(e.getMessage().contains("'" + key + "' looks like a credential"), e.getMessage());
            assertTrue(e.getMessage().contains("environment only"), e.getMessage());
        }
    }

    @Test
    void anUnknownKeyOrAMissingFileExitsWithTwoAndSaysWhy() throws Exception {
        Path f = config("serve.lisen=127.0.0.1:1");
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream saved = System.err;
        try {
            System.setErr(new PrintStream(err, true));
            assertEquals(2, Main.execute(new String[] {"--config", f.toString(), "serve", "img"}, Map.of(), dir));
            assertEquals(2, Main.execute(new String[] {"serve", "img"}, Map.of(Config.ENV, "/nonexistent"), dir));
        } finally {
            System.setErr(saved);
        }
        assertTrue(err.toString().contains("no command has an option for [serve.lisen]"), err.toString());
        assertTrue(err.toString().contains("config file /nonexistent (from $LAZYBLOCK_CONFIG) does not exist"),
                err.toString());
    }

    @Test
    void everyCommandsHelpHasExamplesAndTheConfigOption() throws Exception {
        CommandLine root = Main.commandLine(new String[0], Map.of(), dir);
        java.util.List<CommandLine> all = new java.util.ArrayList<>(java.util.List.of(root));
        for (int i = 0; i < all.size(); i++) {
            for (CommandLine sub : all.get(i).getSubcommands().values()) {
                if (!(sub.getCommand() instanceof CommandLine.HelpCommand) && !all.contains(sub)) {
                    all.add(sub);
                }
            }
        }
        assertTrue(all.size() >= 9, "root, demo, get, warm, serve, export, inspect, bench, bench nbd: " + all.size());
        for (CommandLine c : all) {
            String usage = c.getUsageMessage(CommandLine.Help.Ansi.OFF);
            String name = c.getCommandSpec().qualifiedName();
            assertTrue(usage.contains("Examples:\n  lazyblock"), name + " has no examples:\n" + usage);
            assertTrue(usage.contains("--config=FILE"), name + " does not list --config:\n" + usage);
        }
    }
}
