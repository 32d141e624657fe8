package dev.lazyblock.daemon;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.testing.Tools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A daemon stopped and started again on its state directory brings every sandbox back: same id,
 * socket and export name, a writable one with the writes its clients made, a paused one paused;
 * what it cannot bring back is kept on disk, named in errors, until deleted.
 */
class DaemonRestartTest {
    @TempDir
    Path tmp;

    private static String uri(Path state, String id) {
        return "nbd+unix:///" + id + "?socket=" + state.resolve("sandboxes").resolve(id).resolve("nbd.sock");
    }

    @Test
    void aRestartedDaemonBringsBackEverySandboxWithItsWritesOnTheSameSocket() throws Exception {
        DaemonFixture f = new DaemonFixture(tmp, 4 << 20, c -> c);
        Path state = f.root.resolve("state");
        Daemon.SandboxInfo a = f.daemon.create(new Daemon.CreateRequest("a", f.templateUrl(), null, true, null));
        f.daemon.create(new Daemon.CreateRequest("b", f.templateUrl(), null, false, "disk-b"));
        f.daemon.create(new Daemon.CreateRequest("c", f.templateUrl(), null, true, null));
        assertEquals(uri(state, "a"), a.nbdUri());
        // qemu-io flushes before it exits: these writes are acknowledged and durable.
        Tools.run("qemu-io", "-f", "raw", a.nbdUri(), "-c", "write -P 0x5a 1M 256k", "-c", "write -P 0xa5 3M 4k").ok();
        f.daemon.pause("c");
        f.api.close();
        f.daemon.close();
        assertTrue(Tools.run("nbdinfo", uri(state, "a")).exit() != 0, "nothing serves while no daemon runs");

        try (Daemon again = new Daemon(DaemonConfig.defaults(state), null)) {
            List<Daemon.SandboxInfo> back = again.list();
            assertEquals(List.of("a", "b", "c"), back.stream().map(Daemon.SandboxInfo::id).toList());
            assertEquals(List.of("running", "running", "paused"), back.stream().map(Daemon.SandboxInfo::state).toList());
            assertEquals(a.created(), back.getFirst().created());
            assertEquals(List.of(true, false, true), back.stream().map(Daemon.SandboxInfo::writable).toList());
            assertEquals("disk-b", back.get(1).export());
            assertEquals(uri(state, "a"), back.getFirst().nbdUri(), "the same socket and export name");
            String read = Tools.run("qemu-io", "-f", "raw", uri(state, "a"), "-c", "read -P 0x5a 1M 256k",
                    "-c", "read -P 0xa5 3M 4k").ok().output();
            assertFalse(read.contains("fail"), read);
            Path copy = tmp.resolve("a.raw");
            Tools.run("nbdcopy", uri(state, "a"), copy.toString()).ok();
            byte[] expected = f.template.clone();
            Arrays.fill(expected, 1 << 20, (1 << 20) + (256 << 10), (byte) 0x5a);
            Arrays.fill(expected, 3 << 20, (3 << 20) + 4096, (byte) 0xa5);
            assertArrayEquals(expected, Files.readAllBytes(copy), "sandbox a: the template and its own writes");
            Path copyB = tmp.resolve("b.raw");
            Tools.run("nbdcopy", "nbd+unix:///disk-b?socket=" + state.resolve("sandboxes/b/nbd.sock"), copyB.toString())
                    .ok();
            assertArrayEquals(f.template, Files.readAllBytes(copyB), "sandbox b: the template, untouched");
            assertTrue(back.getFirst().writtenBytes() >= (256 << 10) + 4096, "written: " + back.getFirst().writtenBytes());
            again.resume("c");
            again.delete("a");
            assertFalse(Files.exists(state.resolve("sandboxes/a")), "only delete removes a sandbox");
        }
        try (Daemon third = new Daemon(DaemonConfig.defaults(state), null)) {
            assertEquals(List.of("b", "c"), third.list().stream().map(Daemon.SandboxInfo::id).toList());
            assertEquals("running", third.get("c").state(), "resumed before the stop, running after it");
        }
        f.http.close();
    }

    @Test
    void whatARestartCannotBringBackIsKeptNamedAndDeletable() throws Exception {
        DaemonFixture f = new DaemonFixture(tmp, 1 << 20, c -> c);
        Path state = f.root.resolve("state");
        f.daemon.create(new Daemon.CreateRequest("gone", f.templateUrl(), null, true, null));
        f.daemon.create(new Daemon.CreateRequest("torn", f.templateUrl(), null, true, null));
        f.daemon.create(new Daemon.CreateRequest("fine", f.templateUrl(), null, true, null));
        f.api.close();
        f.daemon.close();
        // A create that never returned (no record), a record torn by hand, an image that moved away.
        Files.createDirectories(state.resolve("sandboxes/half"));
        Files.writeString(state.resolve("sandboxes/torn/sandbox.json"), "{\"version\": 1, \"requ");
        Path gone = state.resolve("sandboxes/gone/sandbox.json");
        Files.writeString(gone, Files.readString(gone).replace(f.headerKey, "tpl/nothing-here.header"));

        try (Daemon again = new Daemon(DaemonConfig.defaults(state), null)) {
            assertEquals(List.of("fine"), again.list().stream().map(Daemon.SandboxInfo::id).toList());
            assertFalse(Files.exists(state.resolve("sandboxes/half")), "a half-created sandbox is removed");
            for (String id : List.of("gone", "torn")) {
                assertTrue(Files.exists(state.resolve("sandboxes").resolve(id)), id + "'s writes are kept");
                DaemonException e = assertThrows(DaemonException.class, () -> again.get(id));
                assertEquals(409, e.status());
                assertTrue(e.getMessage().contains("could not be brought back"), e.getMessage());
                DaemonException dup = assertThrows(DaemonException.class,
                        () -> again.create(new Daemon.CreateRequest(id, f.templateUrl(), null, true, null)));
                assertEquals(409, dup.status(), dup.getMessage());
            }
            assertTrue(assertThrows(DaemonException.class, () -> again.get("torn")).getMessage()
                    .contains("is not a sandbox record"));
            again.delete("torn");
            assertFalse(Files.exists(state.resolve("sandboxes/torn")));
            assertEquals("running", again.create(new Daemon.CreateRequest("torn", f.templateUrl(), null, true, null))
                    .state(), "the id is free once deleted");
        }
        f.http.close();
    }
}
