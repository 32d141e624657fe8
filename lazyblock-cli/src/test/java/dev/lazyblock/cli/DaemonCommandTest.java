package dev.lazyblock.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** `lazyblock daemon` and `lazyblock sandbox`, its client, against a real NBD client. */
class DaemonCommandTest {
    @TempDir
    Path dir;

    record Run(int exit, String out, String err) {}

    /** Runs `lazyblock ARGS` in this thread, its standard output and error captured. */
    static Run lazyblock(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream savedOut = System.out;
        PrintStream savedErr = System.err;
        System.setOut(new PrintStream(out, true));
        System.setErr(new PrintStream(err, true));
        try {
            int exit = new CommandLine(new Main()).execute(args);
            return new Run(exit, out.toString().trim(), err.toString().trim());
        } finally {
            System.setOut(savedOut);
            System.setErr(savedErr);
        }
    }

    @Test
    void sandboxCommandsDriveARunningDaemon() throws Exception {
        byte[] image = new byte[3 << 20];
        new Random(5).nextBytes(image);
        Path raw = Files.write(dir.resolve("disk.raw"), image);
        Path sock = dir.resolve("api.sock");
        DaemonCommand daemon = new DaemonCommand();
        int[] exit = {-1};
        PrintStream saved = System.out;
        ByteArrayOutputStream banner = new ByteArrayOutputStream();
        System.setOut(new PrintStream(banner, true));
        Thread t;
        try {
            t = Thread.ofPlatform().name("daemon-test").start(() -> exit[0] = new CommandLine(daemon)
                    .execute("--state-dir", dir.resolve("state").toString(), "--socket", sock.toString()));
            assertTrue(daemon.started.await(30, TimeUnit.SECONDS), "the daemon did not start within 30 s");
        } finally {
            System.setOut(saved);
        }
        assertTrue(daemon.api != null, "the daemon did not start:\n" + banner);
        assertTrue(banner.toString().contains("API on unix:" + sock), banner.toString());
        try {
            String s = "--socket=" + sock;
            Run created = lazyblock("sandbox", s, "create", raw.toString(), "--id", "vm1", "--field", "nbdUri");
            assertEquals(0, created.exit(), created.err());
            String uri = created.out();
            assertTrue(uri.startsWith("nbd+unix:///vm1?socket="), uri);
            ClientTools.Result info = ClientTools.run("nbdinfo", "--size", uri);
            assertEquals(String.valueOf(image.length), info.output().trim());
            ClientTools.run("nbdcopy", uri, dir.resolve("copy").toString());
            assertTrue(java.util.Arrays.equals(image, Files.readAllBytes(dir.resolve("copy"))));

            Run list = lazyblock("sandbox", s, "list");
            assertEquals(0, list.exit(), list.err());
            assertTrue(list.out().contains("\"id\" : \"vm1\""), list.out());
            Run dup = lazyblock("sandbox", s, "create", raw.toString(), "--id", "vm1");
            assertEquals(1, dup.exit());
            assertTrue(dup.err().contains("409") && dup.err().contains("duplicate_id"), dup.err());
            Run paused = lazyblock("sandbox", s, "pause", "vm1", "--field", "state");
            assertEquals("paused", paused.out(), paused.err());
            assertEquals("running", lazyblock("sandbox", s, "resume", "vm1", "--field", "state").out());
            Run export = lazyblock("sandbox", s, "export", "vm1");
            assertEquals(1, export.exit());
            assertTrue(export.err().contains("not_layered"), export.err());
            assertEquals(0, lazyblock("sandbox", s, "delete", "vm1").exit());
            Run gone = lazyblock("sandbox", s, "get", "vm1");
            assertEquals(1, gone.exit());
            assertTrue(gone.err().contains("404"), gone.err());
            Run badId = lazyblock("sandbox", s, "get", "../x");
            assertEquals(2, badId.exit(), badId.err());
            Run host = lazyblock("sandbox", s, "host", "--timeout", "5");
            assertEquals(0, host.exit(), host.err());
            assertTrue(host.out().contains("\"sandboxes\" : 0"), host.out());
        } finally {
            daemon.stop();
            assertTrue(t.join(Duration.ofSeconds(60)), "the daemon did not stop within 60 s");
        }
        assertEquals(0, exit[0]);
        assertFalse(Files.exists(sock), "a stopped daemon removes its socket");
        Run noDaemon = lazyblock("sandbox", "--socket", sock.toString(), "list");
        assertEquals(1, noDaemon.exit());
        assertTrue(noDaemon.err().contains("no lazyblock daemon answers on " + sock), noDaemon.err());
    }

    @Test
    void badDaemonOptionsExitWithUsageErrors() {
        assertEquals(2, new CommandLine(new DaemonCommand()).execute("--state-dir", dir.toString(), "--chunker", "x"));
        assertEquals(2, new CommandLine(new DaemonCommand()).execute("--state-dir", dir.toString(),
                "--max-sandboxes", "0"));
        assertEquals(2, new CommandLine(new DaemonCommand()).execute("--state-dir", dir.toString(), "--listen", "nope"));
        assertEquals(2, new CommandLine(new DaemonCommand()).execute("--state-dir", dir.toString(),
                "--disk-budget", "lots"));
    }

    @Test
    void aTenantSecretsFileOpenToOthersOrMissingIsAUsageErrorThatQuotesNoSecret() throws Exception {
        Path secrets = dir.resolve("tenants");
        Files.writeString(secrets, "acme a secret of more than 16 bytes\n");
        Files.setPosixFilePermissions(secrets, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
        Run open = lazyblock("daemon", "--state-dir", dir.resolve("state").toString(), "--tenant-secrets",
                secrets.toString());
        assertEquals(2, open.exit());
        assertTrue(open.err().contains("chmod 600"), open.err());
        assertFalse(open.err().contains("a secret of more"), open.err());
        Run missing = lazyblock("daemon", "--state-dir", dir.resolve("state").toString(), "--tenant-secrets",
                dir.resolve("nope").toString());
        assertEquals(2, missing.exit());
        assertTrue(missing.err().contains("--tenant-secrets") && missing.err().contains("nope"), missing.err());
    }
}
