package dev.lazyblock.daemon;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lazyblock.testing.Tools;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Three sandboxes from one template, served at once to real NBD clients (qemu-io writes,
 * nbdcopy reads): each reads back only its own writes, the template is untouched, and the
 * template's chunks are fetched from the store once for all three.
 */
class SharedTemplateTest {
    static final int SIZE = 24 << 20; // six 4 MiB chunks

    @TempDir
    Path tmp;

    @Test
    void threeSandboxesFromOneTemplateKeepTheirWritesApartAndFetchEachChunkOnce() throws Exception {
        try (DaemonFixture f = new DaemonFixture(tmp, SIZE, c -> c)) {
            String[] ids = {"sb-a", "sb-b", "sb-c"};
            List<byte[]> models = new ArrayList<>();
            Random rnd = new Random(7);
            for (int i = 0; i < ids.length; i++) {
                JsonNode sb = f.create(ids[i], f.templateUrl());
                assertEquals("running", sb.get("state").asText());
                assertEquals(SIZE, sb.get("size").asLong());
                String uri = sb.get("nbdUri").asText();
                assertTrue(uri.startsWith("nbd+unix:///" + ids[i] + "?socket="), uri);
                byte[] model = f.template.clone();
                List<String> cmd = Tools.cmd("qemu-io", "-f", "raw");
                for (int w = 0; w < 8; w++) {
                    int len = (1 + rnd.nextInt(64)) * 512;
                    int off = rnd.nextInt((SIZE - len) / 512) * 512;
                    int pattern = 0x11 * (i + 1) + w;
                    cmd.addAll(List.of("-c", "write -P " + pattern + " " + off + " " + len));
                    Arrays.fill(model, off, off + len, (byte) pattern);
                }
                cmd.add(uri);
                Tools.run(cmd).ok();
                models.add(model);
            }
            for (int i = 0; i < ids.length; i++) {
                String uri = f.ok(200, f.client.get("/v1/sandboxes/" + ids[i])).get("nbdUri").asText();
                Path out = tmp.resolve(ids[i] + ".out");
                Tools.run("nbdcopy", uri, out.toString()).ok();
                assertArrayEquals(models.get(i), Files.readAllBytes(out), ids[i] + " reads back its own writes only");
            }
            JsonNode ro = f.ok(201, f.client.post("/v1/sandboxes",
                    "{\"id\":\"ro\",\"image\":\"" + f.templateUrl() + "\",\"writable\":false}"));
            assertFalse(ro.get("writable").asBoolean());
            Path out = tmp.resolve("ro.out");
            Tools.run("nbdcopy", ro.get("nbdUri").asText(), out.toString()).ok();
            assertArrayEquals(f.template, Files.readAllBytes(out), "the template is unchanged");

            JsonNode host = f.ok(200, f.client.get("/v1/host"));
            assertEquals(4, host.get("sandboxes").asInt());
            assertEquals(1, host.get("builds").asInt(), "one build shared by the four sandboxes");
            long remote = host.get("reads").get("remoteBytes").asLong();
            assertTrue(remote >= SIZE && remote <= SIZE + SIZE / 8,
                    "the store sent " + remote + " bytes for four full reads of a " + SIZE + "-byte template");
            JsonNode builds = f.ok(200, f.client.get("/v1/builds")).get("builds");
            assertEquals(1, builds.size());
            assertEquals(4, builds.get(0).get("refs").asInt());
            long missBytes = 0;
            for (JsonNode s : f.ok(200, f.client.get("/v1/sandboxes")).get("sandboxes")) {
                missBytes += s.get("reads").get("missBytes").asLong();
                assertTrue(s.get("reads").get("readBytes").asLong() >= SIZE - s.get("writtenBytes").asLong(),
                        "every block the sandbox did not write was read from the build: " + s);
            }
            assertTrue(missBytes <= remote, "sandboxes are charged " + missBytes + " missed bytes, the store sent "
                    + remote);

            for (String id : List.of("sb-a", "sb-b", "sb-c", "ro")) {
                f.ok(204, f.client.delete("/v1/sandboxes/" + id));
            }
            assertEquals(0, f.ok(200, f.client.get("/v1/sandboxes")).get("sandboxes").size());
            try (var left = Files.list(tmp.resolve("state/sandboxes"))) {
                assertEquals(List.of(), left.toList(), "deleted sandboxes leave nothing in the state directory");
            }
            assertEquals(0, f.ok(200, f.client.get("/v1/builds")).get("builds").get(0).get("refs").asInt(),
                    "the build stays open, idle, for the next sandbox");
        }
    }

    @Test
    void exportWritesANewLayerThatOpensWithTheSandboxWrites() throws Exception {
        try (DaemonFixture f = new DaemonFixture(tmp, 8 << 20, c -> c)) {
            Path header = Path.of(f.storeDir(), f.headerKey);
            JsonNode sb = f.create("writer", header.toString());
            Tools.run("qemu-io", "-f", "raw", "-c", "write -P 0x5a 1048576 65536", "-c", "write -z 0 4096",
                    sb.get("nbdUri").asText()).ok();
            byte[] expected = f.template.clone();
            Arrays.fill(expected, 1 << 20, (1 << 20) + 65536, (byte) 0x5a);
            Arrays.fill(expected, 0, 4096, (byte) 0);

            JsonNode exported = f.ok(200, f.client.post("/v1/sandboxes/writer/export", null));
            assertTrue(exported.get("memory").isNull(), "no memory image, no memory layer");
            JsonNode layer = exported.get("disk");
            assertEquals(17, layer.get("storedBlocks").asLong() + layer.get("zeroBlocks").asLong(), layer.toString());
            assertEquals("paused", f.ok(200, f.client.get("/v1/sandboxes/writer")).get("state").asText());
            String image = layer.get("image").asText();
            assertEquals(header.resolveSibling(layer.get("headerKey").asText()).toString(), image);
            assertTrue(Files.exists(Path.of(image)), image);

            JsonNode child = f.create("child", image);
            assertEquals(2, child.get("builds").size(), "the child reads its parent's build and the new one");
            Path out = tmp.resolve("child.out");
            Tools.run("nbdcopy", child.get("nbdUri").asText(), out.toString()).ok();
            assertArrayEquals(expected, Files.readAllBytes(out));

            JsonNode resumed = f.ok(200, f.client.post("/v1/sandboxes/writer/resume", null));
            Path again = tmp.resolve("writer.out");
            Tools.run("nbdcopy", resumed.get("nbdUri").asText(), again.toString()).ok();
            assertArrayEquals(expected, Files.readAllBytes(again), "the paused sandbox resumes with its writes");
        }
    }

    @Test
    void everySandboxsFetchesRunOnTheDaemonsOwnPoolWithinItsHostWideBound(@TempDir Path tmp) throws Exception {
        try (DaemonFixture f = new DaemonFixture(tmp, 24 << 20, c -> c.withMaxFetchThreads(1))) {
            java.util.List<String> uris = new java.util.ArrayList<>();
            for (String id : java.util.List.of("p1", "p2", "p3")) {
                uris.add(f.create(id, f.templateUrl()).get("nbdUri").asText());
            }
            java.util.concurrent.atomic.AtomicInteger most = new java.util.concurrent.atomic.AtomicInteger();
            java.util.concurrent.atomic.AtomicBoolean copying = new java.util.concurrent.atomic.AtomicBoolean(true);
            Thread sampler = Thread.ofPlatform().start(() -> {
                while (copying.get()) {
                    most.accumulateAndGet(f.daemon.host().fetches().running(), Math::max);
                    Thread.onSpinWait();
                }
            });
            java.util.List<Process> copies = new java.util.ArrayList<>();
            for (int i = 0; i < uris.size(); i++) {
                copies.add(new ProcessBuilder("nbdcopy", uris.get(i), tmp.resolve("copy-" + i).toString())
                        .redirectErrorStream(true).start());
            }
            for (Process p : copies) {
                assertTrue(p.waitFor(2, java.util.concurrent.TimeUnit.MINUTES), "nbdcopy finished");
                assertEquals(0, p.exitValue(), new String(p.getInputStream().readAllBytes()));
            }
            copying.set(false);
            sampler.join();
            for (int i = 0; i < uris.size(); i++) {
                assertArrayEquals(f.template, Files.readAllBytes(tmp.resolve("copy-" + i)), "sandbox " + (i + 1));
            }
            Daemon.Fetches fetches = f.daemon.host().fetches();
            assertEquals(1, fetches.maxThreads());
            assertTrue(fetches.completed() >= 6, "the 24 MiB template's chunks were fetched on the daemon's pool: "
                    + fetches);
            assertEquals(1, most.get(), "one fetch at a time, host-wide, seen while three clients copied");
        }
    }
}
