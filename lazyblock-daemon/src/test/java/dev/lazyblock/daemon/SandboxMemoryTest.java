package dev.lazyblock.daemon;

import static dev.lazyblock.daemon.DaemonFixture.error;
import static dev.lazyblock.daemon.DaemonFixture.ok;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lazyblock.testing.Await;
import dev.lazyblock.testing.Tools;
import dev.lazyblock.testing.UpstreamReads;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.upstream.DirectoryStore;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A sandbox with guest memory: the uffd module's test VMM (a real userfaultfd, Firecracker's
 * handshake) faults its pages through the sandbox's handler, and every byte it checks is the
 * memory image's.
 */
class SandboxMemoryTest {
    static final int MEMORY = 16 << 20;

    @TempDir
    Path tmp;

    @Test
    void aSandboxsMemoryHandlerServesTheTestVmmTheImagesBytes() throws Exception {
        Path vmm = buildVmm();
        Path memory = UpstreamReads.writeRandomFile(tmp, "memory.raw", 9, MEMORY);
        try (DaemonFixture f = new DaemonFixture(tmp, 4 << 20, c -> c)) {
            JsonNode sb = ok(201, f.client.post("/v1/sandboxes", "{\"id\":\"vm\",\"image\":\"" + f.templateUrl()
                    + "\",\"memory\":\"" + memory + "\"}"));
            JsonNode mem = sb.get("memory");
            assertEquals("waiting", mem.get("state").asText(), sb.toString());
            String socket = mem.get("socket").asText();
            assertTrue(Files.exists(Path.of(socket)), "the handler listens once create returns");

            Tools.Result run = Tools.run(Duration.ofSeconds(120), vmm.toString(), socket, memory.toString(),
                    Integer.toString(MEMORY), "4", "300", "5", "-1");
            assertEquals(0, run.exit(), run.output());
            Await.until(() -> f.daemon.get("vm").memory().state().equals("done"), Duration.ofSeconds(30),
                    () -> "the handler ends when the VMM goes: " + f.daemon.get("vm").memory());
            MemoryHandler.Info info = f.daemon.get("vm").memory();
            assertTrue(info.faults() > 0 && info.failures() == 0, info.toString());
            assertTrue(info.vmmPid() > 0, info.toString());
            assertEquals(2, f.daemon.builds().size(), "the disk's build and the memory image, each shared");

            ok(204, f.client.delete("/v1/sandboxes/vm"));
            assertFalse(Files.exists(Path.of(socket)));
            assertEquals(0, f.daemon.builds().stream().mapToInt(BuildRegistry.Info::refs).sum());
        }
    }

    @Test
    void exportWritesThePagesTheGuestWroteAsTheMemorysNextLayer() throws Exception {
        Path vmm = buildVmm();
        Path raw = UpstreamReads.writeRandomFile(tmp, "memory.raw", 9, MEMORY);
        byte[] original = Files.readAllBytes(raw);
        try (DaemonFixture f = new DaemonFixture(tmp, 4 << 20, c -> c)) {
            String memHeader;
            try (DirectoryStore ds = new DirectoryStore(Path.of(f.storeDir()))) {
                memHeader = Path.of(f.storeDir(), LayerExporter.publishBase(raw, 4096, ds, "mem").headerKey())
                        .toString();
            }
            String disk = Path.of(f.storeDir(), f.headerKey).toString();
            JsonNode sb = ok(201, f.client.post("/v1/sandboxes", "{\"id\":\"vm\",\"image\":\"" + disk
                    + "\",\"memory\":\"" + memHeader + "\",\"trackMemoryWrites\":true}"));
            ProcessBuilder pb = new ProcessBuilder(vmm.toString(), sb.get("memory").get("socket").asText(),
                    raw.toString(), Integer.toString(MEMORY), "2", "50", "5", "-1").redirectErrorStream(true);
            pb.environment().put("FAKE_VMM_WP", "1"); // write-protect mode too, then writes pages 10-19, 30-39
            Process p = pb.start();
            try {
                assertEquals("paused", paused(p), "the test VMM wrote its pages and paused");
                assertEquals(20, f.daemon.get("vm").memory().dirtyPages());

                JsonNode exported = ok(200, f.client.post("/v1/sandboxes/vm/export", null));
                JsonNode mem = exported.get("memory");
                assertEquals(20, mem.get("storedBlocks").asLong(), exported.toString());
                p.getOutputStream().write('\n');
                p.getOutputStream().flush();
                assertTrue(p.waitFor(1, TimeUnit.MINUTES), "the VM resumed and finished");
                assertEquals(0, p.exitValue(), new String(p.getInputStream().readAllBytes()));

                // The new memory layer opens as a sandbox's disk: its bytes are the guest's memory.
                JsonNode check = ok(201, f.client.post("/v1/sandboxes", "{\"id\":\"check\",\"image\":\""
                        + mem.get("image").asText() + "\",\"writable\":false}"));
                Path copy = tmp.resolve("memory.out");
                Tools.run("nbdcopy", check.get("nbdUri").asText(), copy.toString()).ok();
                byte[] got = Files.readAllBytes(copy);
                byte[] want = original.clone();
                for (int pg = 10; pg < 40; pg++) {
                    if (pg < 20 || pg >= 30) {
                        for (int i = 0; i < 4096; i++) {
                            want[pg * 4096 + i] = (byte) (pg * 7 + i);
                        }
                    }
                }
                assertArrayEquals(want, got, "written pages from the guest, every other page from the base");
            } finally {
                if (p.isAlive()) {
                    p.destroyForcibly();
                }
            }
        }
    }

    @Test
    void trackingMemoryWritesNeedsALayeredMemoryImage() throws Exception {
        try (DaemonFixture f = new DaemonFixture(tmp, 1 << 20, c -> c)) {
            Path memory = UpstreamReads.writeRandomFile(tmp, "memory.raw", 9, 1 << 20);
            error(400, "bad_request", f.client.post("/v1/sandboxes", "{\"id\":\"x\",\"image\":\"" + f.templateUrl()
                    + "\",\"memory\":\"" + memory + "\",\"trackMemoryWrites\":true}"));
            try (var left = Files.list(f.root.resolve("state/sandboxes"))) {
                assertEquals(0, left.count());
            }
        }
    }

    @Test
    void aSandboxWhoseVmmNeverComesIsDeletedPromptlyAndAMissingMemoryImageLeavesNothing() throws Exception {
        try (DaemonFixture f = new DaemonFixture(tmp, 1 << 20, c -> c)) {
            Path memory = UpstreamReads.writeRandomFile(tmp, "memory.raw", 9, 1 << 20);
            ok(201, f.client.post("/v1/sandboxes", "{\"id\":\"idle\",\"image\":\"" + f.templateUrl()
                    + "\",\"memory\":\"" + memory + "\"}"));
            long t0 = System.nanoTime();
            ok(204, f.client.delete("/v1/sandboxes/idle"));
            assertTrue(System.nanoTime() - t0 < Duration.ofSeconds(10).toNanos(), "delete stops a waiting handler");

            error(422, "image_not_found", f.client.post("/v1/sandboxes", "{\"id\":\"nomem\",\"image\":\""
                    + f.templateUrl() + "\",\"memory\":\"" + tmp.resolve("absent.raw") + "\"}"));
            try (var left = Files.list(f.root.resolve("state/sandboxes"))) {
                assertEquals(0, left.count());
            }
            assertEquals(0, f.daemon.builds().stream().mapToInt(BuildRegistry.Info::refs).sum());
        }
    }

    /**
     * The daemon stops and starts again while a VM runs: the test VMM has faulted its pages,
     * written some and paused; after the restart it goes on, removes a page (a balloon) and
     * faults it again: only the new daemon, holding the VM's userfaultfd again, can serve that.
     */
    @Test
    void aRestartedDaemonTakesBackARunningVmsUserfaultfdFromTheHolder() throws Exception {
        Path vmm = buildVmm();
        Path memory = UpstreamReads.writeRandomFile(tmp, "memory.raw", 9, MEMORY);
        Path holderSocket = tmp.resolve("holder.sock");
        dev.lazyblock.uffd.UffdHolder holder = new dev.lazyblock.uffd.UffdHolder(holderSocket);
        Thread holding = Thread.ofPlatform().name("uffd-holder").start(() -> {
            try {
                holder.serve();
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        Process p = null;
        try {
            Await.until(() -> Files.exists(holderSocket), Duration.ofSeconds(30), () -> "the holder listens");
            DaemonFixture f = new DaemonFixture(tmp, 4 << 20, c -> c.withUffdHolder(holderSocket));
            DaemonConfig config = f.daemon.config();
            JsonNode sb = ok(201, f.client.post("/v1/sandboxes", "{\"id\":\"vm\",\"image\":\"" + f.templateUrl()
                    + "\",\"memory\":\"" + memory + "\"}"));
            ProcessBuilder pb = new ProcessBuilder(vmm.toString(), sb.get("memory").get("socket").asText(),
                    memory.toString(), Integer.toString(MEMORY), "4", "200", "5", "-1").redirectErrorStream(true);
            pb.environment().put("FAKE_VMM_WP", "1"); // pauses after its touches and writes, until a line on stdin
            p = pb.start();
            assertEquals("paused", paused(p), "the test VMM ran and paused");
            long before = f.daemon.get("vm").memory().faults();
            assertEquals(1, holder.size(), "the handler gave the holder the VM's userfaultfd");
            f.api.close();
            f.daemon.close();
            assertEquals(1, holder.size(), "a stopping daemon leaves it held");

            try (Daemon again = new Daemon(config, null)) {
                Await.until(() -> again.get("vm").memory().state().equals("serving"), Duration.ofSeconds(30),
                        () -> "the new daemon took the VM over: " + again.get("vm").memory());
                assertEquals(p.pid(), again.get("vm").memory().vmmPid());
                p.getOutputStream().write('\n');
                p.getOutputStream().flush();
                assertTrue(p.waitFor(1, TimeUnit.MINUTES), "the VM went on after the restart and finished");
                String said = new String(p.getInputStream().readAllBytes());
                assertEquals(0, p.exitValue(), said);
                Await.until(() -> again.get("vm").memory().state().equals("done"), Duration.ofSeconds(30),
                        () -> "the handler ends when the VMM goes: " + again.get("vm").memory());
                MemoryHandler.Info info = again.get("vm").memory();
                assertTrue(info.faults() >= 1 && info.zeroPages() >= 1 && info.failures() == 0,
                        "the removed page was faulted again and served by the new daemon: " + info);
                Await.until(() -> holder.size() == 0, Duration.ofSeconds(30), () -> "the holder let go of the VM");
                System.out.printf("daemon restarted under a running VM: %d faults before, %d after (%d zero pages)%n",
                        before, info.faults(), info.zeroPages());
            }
            f.http.close();
        } finally {
            if (p != null && p.isAlive()) {
                p.destroyForcibly();
            }
            holder.close();
            holding.join(Duration.ofSeconds(10));
        }
    }

    /** Reads the test VMM's output (bounded: a minute) until it says "paused"; "ended" if it never does. */
    private static String paused(Process p) throws Exception {
        BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream()));
        return CompletableFuture.supplyAsync(() -> {
            try {
                for (String line; (line = out.readLine()) != null; ) {
                    if (line.equals("paused")) {
                        return line;
                    }
                }
                return "ended";
            } catch (IOException e) {
                return e.toString();
            }
        }).get(1, TimeUnit.MINUTES);
    }

    /** The uffd module's test VMM, compiled into this test's directory. */
    private Path buildVmm() throws Exception {
        Path vmm = tmp.resolve("fake_vmm");
        Tools.run("gcc", "-O2", "-Wall", "-pthread", "-o", vmm.toString(),
                Path.of("../lazyblock-uffd/src/test/c/fake_vmm.c").toAbsolutePath().toString()).ok();
        return vmm;
    }
}
