package dev.lazyblock.daemon;

import static dev.lazyblock.daemon.DaemonFixture.error;
import static dev.lazyblock.daemon.DaemonFixture.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lazyblock.testing.Await;
import dev.lazyblock.testing.Tools;
import dev.lazyblock.testing.UpstreamReads;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
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
        Path vmm = tmp.resolve("fake_vmm");
        Tools.run("gcc", "-O2", "-Wall", "-pthread", "-o", vmm.toString(),
                Path.of("../lazyblock-uffd/src/test/c/fake_vmm.c").toAbsolutePath().toString()).ok();
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
}
