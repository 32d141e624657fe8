package dev.lazyblock.daemon;

import static dev.lazyblock.daemon.DaemonFixture.error;
import static dev.lazyblock.daemon.DaemonFixture.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.ServerSocket;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Every bad request gets a JSON error naming what was wrong, and leaves nothing half-made. */
class ControlApiErrorsTest {
    @TempDir
    Path tmp;

    private static void assertNothingLeft(DaemonFixture f) throws IOException {
        try (var left = Files.list(f.root.resolve("state/sandboxes"))) {
            assertEquals(List.of(), left.toList(), "a refused create leaves no directory or socket");
        }
        for (BuildRegistry.Info b : f.daemon.builds()) {
            assertEquals(0, b.refs(), "a refused create holds no reference to " + b.identity());
        }
        assertEquals(List.of(), f.daemon.list());
    }

    @Test
    void unknownSandboxIsNotFound() throws Exception {
        try (DaemonFixture f = new DaemonFixture(tmp, 1 << 20, c -> c)) {
            error(404, "not_found", f.client.get("/v1/sandboxes/nope"));
            error(404, "not_found", f.client.delete("/v1/sandboxes/nope"));
            error(404, "not_found", f.client.post("/v1/sandboxes/nope/pause", null));
            // Jetty itself refuses an encoded '/' in a path segment.
            assertEquals(400, f.client.get("/v1/sandboxes/..%2F..%2Fetc").status());
            error(404, "not_found", f.client.get("/v1/sandboxes/a%20b"));
            error(404, "no_route", f.client.get("/v1/nothing"));
            error(404, "no_route", f.client.get("/"));
            error(405, "method_not_allowed", f.client.call("PUT", "/v1/sandboxes", "{}"));
        }
    }

    @Test
    void duplicateIdIsAConflictAndTheFirstSandboxKeepsServing() throws Exception {
        try (DaemonFixture f = new DaemonFixture(tmp, 1 << 20, c -> c)) {
            f.create("twin", f.templateUrl());
            error(409, "duplicate_id", f.client.post("/v1/sandboxes",
                    "{\"id\":\"twin\",\"image\":\"" + f.templateUrl() + "\"}"));
            assertEquals("running", ok(200, f.client.get("/v1/sandboxes/twin")).get("state").asText());
            assertTrue(Files.exists(f.root.resolve("state/sandboxes/twin/nbd.sock")));
        }
    }

    @Test
    void malformedOrUnexpectedJsonIsABadRequest() throws Exception {
        try (DaemonFixture f = new DaemonFixture(tmp, 1 << 20, c -> c)) {
            error(400, "malformed_json", f.client.post("/v1/sandboxes", "{\"image\": "));
            error(400, "malformed_json", f.client.post("/v1/sandboxes", "[1,2]"));
            error(400, "malformed_json", f.client.post("/v1/sandboxes",
                    "{\"image\":\"" + f.templateUrl() + "\",\"colour\":\"blue\"}"));
            error(400, "bad_request", f.client.post("/v1/sandboxes", ""));
            error(400, "bad_request", f.client.post("/v1/sandboxes", "null"));
            error(400, "bad_request", f.client.post("/v1/sandboxes", "{\"id\":\"x\"}"));
            error(400, "bad_request", f.client.post("/v1/sandboxes",
                    "{\"id\":\"../evil\",\"image\":\"" + f.templateUrl() + "\"}"));
            error(400, "bad_request", f.client.post("/v1/sandboxes",
                    "{\"id\":\"ok\",\"export\":\"" + "x".repeat(5000) + "\",\"image\":\"" + f.templateUrl() + "\"}"));
            error(413, "body_too_large", f.client.post("/v1/sandboxes",
                    "{\"image\":\"" + "a".repeat(ControlServer.MAX_BODY) + "\"}"));
            assertNothingLeft(f);
        }
    }

    @Test
    void anImageThatDoesNotOpenIsRefusedAndLeavesNothing() throws Exception {
        try (DaemonFixture f = new DaemonFixture(tmp, 1 << 20, c -> c)) {
            error(422, "image_not_found", f.client.post("/v1/sandboxes",
                    "{\"id\":\"a\",\"image\":\"" + tmp.resolve("missing.header") + "\"}"));
            error(422, "image_not_found", f.client.post("/v1/sandboxes",
                    "{\"id\":\"b\",\"image\":\"" + f.http.uri("/tpl/missing.header") + "\"}"));
            Files.writeString(tmp.resolve("garbage.header"), "not a header");
            error(400, "bad_image", f.client.post("/v1/sandboxes",
                    "{\"id\":\"c\",\"image\":\"" + tmp.resolve("garbage.header") + "\"}"));
            error(400, "bad_image", f.client.post("/v1/sandboxes", "{\"id\":\"d\",\"image\":\"nosuch://x/y\"}"));
            int dead;
            try (ServerSocket s = new ServerSocket(0)) {
                dead = s.getLocalPort();
            }
            error(502, "store_failed", f.client.post("/v1/sandboxes",
                    "{\"id\":\"e\",\"image\":\"http://127.0.0.1:" + dead + "/x.header\"}"));
            assertNothingLeft(f);
        }
    }

    @Test
    void aStoreThatLosesTheBuildMidCreateLeavesNoReference() throws Exception {
        try (DaemonFixture f = new DaemonFixture(tmp, 1 << 20, c -> c)) {
            // The header opens, its build's diff object does not.
            try (var diffs = Files.list(f.root.resolve("store/tpl"))) {
                for (Path p : diffs.filter(p -> p.toString().endsWith(".diff")).toList()) {
                    Files.delete(p);
                }
            }
            DaemonClient.Reply r = f.client.post("/v1/sandboxes", "{\"id\":\"lost\",\"image\":\"" + f.templateUrl()
                    + "\"}");
            assertTrue(r.status() == 422 || r.status() == 502, r.body());
            assertTrue(r.body().contains("lost") || r.body().contains(".diff"), r.body());
            assertNothingLeft(f);
        }
    }

    @Test
    void limitsAreRefusedWith429() throws Exception {
        try (DaemonFixture f = new DaemonFixture(tmp, 1 << 20, c -> c.withMaxSandboxes(2))) {
            f.create("one", f.templateUrl());
            f.create("two", f.templateUrl());
            error(429, "limit_reached", f.client.post("/v1/sandboxes",
                    "{\"id\":\"three\",\"image\":\"" + f.templateUrl() + "\"}"));
            ok(204, f.client.delete("/v1/sandboxes/one"));
            f.create("three", f.templateUrl());
        }
        Path other = Files.createDirectories(tmp.resolve("builds"));
        try (DaemonFixture f = new DaemonFixture(other, 1 << 20, c -> c.withMaxBuilds(1))) {
            f.create("raw", f.templateFile.toString());
            error(429, "limit_reached", f.client.post("/v1/sandboxes",
                    "{\"id\":\"layered\",\"image\":\"" + f.templateUrl() + "\"}"));
            assertEquals(1, f.daemon.list().size());
            ok(204, f.client.delete("/v1/sandboxes/raw"));
            // The idle build is closed to make room.
            f.create("layered", f.templateUrl());
            assertEquals(1, f.daemon.builds().size());
        }
    }

    @Test
    void aLiveControlSocketIsNotTakenOverAndAStaleOneIsReplaced() throws Exception {
        try (DaemonFixture f = new DaemonFixture(tmp, 1 << 20, c -> c)) {
            IOException e = assertThrows(IOException.class,
                    () -> ControlServer.start(f.daemon, null, f.api.socket(), null));
            assertTrue(e.getMessage().contains("another daemon"), e.getMessage());
            assertEquals(200, f.client.get("/v1/host").status(), "the first daemon still answers");
        }
        Path stale = tmp.resolve("stale.sock");
        ServerSocketChannel ch = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        ch.bind(UnixDomainSocketAddress.of(stale));
        ch.close(); // the file stays, nothing accepts
        Path notSocket = Files.writeString(tmp.resolve("plain"), "data");
        try (Daemon d = new Daemon(DaemonConfig.defaults(tmp.resolve("state2")), null)) {
            try (ControlServer s = ControlServer.start(d, null, stale, null)) {
                assertEquals(200, new DaemonClient(s.socket(), Duration.ofSeconds(10)).get("/v1/host").status());
                assertEquals("rw-------", java.nio.file.attribute.PosixFilePermissions.toString(
                        Files.getPosixFilePermissions(stale)));
                error(404, "not_found", new DaemonClient(s.socket(), Duration.ofSeconds(10)).get("/metrics"));
            }
            assertFalse(Files.exists(stale), "closing removes the control socket");
            IOException e = assertThrows(IOException.class, () -> ControlServer.start(d, null, notSocket, null));
            assertTrue(e.getMessage().contains("not a socket"), e.getMessage());
            assertEquals("data", Files.readString(notSocket));
        }
    }

    @Test
    void aClientOfADeadSocketSaysSo() {
        IOException e = assertThrows(IOException.class,
                () -> new DaemonClient(tmp.resolve("none.sock"), Duration.ofSeconds(5)).get("/v1/host"));
        assertTrue(e.getMessage().contains("no lazyblock daemon answers"), e.getMessage());
    }
}
