package dev.lazyblock.uffd;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.testing.Await;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A handler killed (SIGKILL, a real separate process) in the middle of a fault, and one started
 * after it that takes the userfaultfd back from the {@link UffdHolder}: the faults that waited on
 * the dead one are served, and the fake VMM (src/test/c) finds every byte right.
 */
class HandlerRestartTest {
    static final int SIZE = 16 << 20;
    /** For handlers that must fail before they read a page. */
    static final dev.lazyblock.device.Device NO_MEMORY = new dev.lazyblock.device.Device() {
        @Override public long size() { return SIZE; }
        @Override public int blockSize() { return 4096; }
        @Override public long readAt(java.lang.foreign.MemorySegment dst, long off) throws IOException {
            throw new IOException("no page should be read");
        }
        @Override public void close() { }
    };

    @TempDir
    static Path work;
    static Path vmm;
    static Path image;
    static Path holderSocket;
    static UffdHolder holder;
    static Thread holding;

    @BeforeAll
    static void build() throws Exception {
        vmm = FakeVmm.build(work);
        byte[] bytes = new byte[SIZE];
        new Random(23).nextBytes(bytes);
        image = work.resolve("memory.img");
        Files.write(image, bytes);
        holderSocket = work.resolve("holder.sock");
        holder = new UffdHolder(holderSocket);
        holding = Thread.ofPlatform().name("uffd-holder").start(() -> {
            try {
                holder.serve();
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        Await.until(() -> Files.exists(holderSocket), Duration.ofSeconds(30), () -> "holder socket appeared");
    }

    @AfterAll
    static void stopHolder() throws InterruptedException {
        holder.close();
        holding.join(TimeUnit.SECONDS.toMillis(10));
    }

    private static Process handler(String mode, Path socket, String name, int killAt) throws IOException {
        String java = ProcessHandle.current().info().command().orElse("java");
        return new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                HandlerProcess.class.getName(), mode, socket.toString(), holderSocket.toString(), name,
                image.toString(), Integer.toString(killAt)).redirectErrorStream(true)
                .redirectOutput(work.resolve(name + "-" + mode + "-" + System.nanoTime() + ".log").toFile()).start();
    }

    private static Process vmm(Path socket, long seed) throws IOException {
        return new ProcessBuilder(vmm.toString(), socket.toString(), image.toString(), Integer.toString(SIZE), "8", "400",
                Long.toString(seed), "-1").redirectErrorStream(true).start();
    }

    private static int exit(Process p, String what) throws InterruptedException {
        assertTrue(p.waitFor(2, TimeUnit.MINUTES), what + " finished");
        return p.exitValue();
    }

    @Test
    void faultsThatWaitedOnAKilledHandlerAreServedByTheOneThatResumesIt() throws Exception {
        Random rnd = new Random(16);
        int kills = 0;
        for (int round = 0; round < 6; round++) {
            String name = "vm" + round;
            Path socket = work.resolve(name + ".sock");
            List<Process> started = new ArrayList<>();
            try {
                Process first = handler("serve", socket, name, 20 + rnd.nextInt(400));
                started.add(first);
                Await.until(() -> Files.exists(socket), Duration.ofSeconds(60), () -> "handler socket appeared");
                Process guest = vmm(socket, 100 + round);
                started.add(guest);
                // Odd rounds kill the resumed handler too: the descriptor is handed on twice.
                int deaths = round % 2 == 0 ? 1 : 2;
                assertEquals(137, exit(first, "the first handler"), "killed by SIGKILL mid-fault");
                kills++;
                for (int d = 1; d < deaths; d++) {
                    assertTrue(guest.isAlive(), "the VMM waits on its faults");
                    Process again = handler("resume", socket, name, 5 + rnd.nextInt(200));
                    started.add(again);
                    assertEquals(137, exit(again, "a resumed handler"), "killed again mid-fault");
                    kills++;
                }
                assertTrue(guest.isAlive(), "the VMM still waits on its faults with no handler");
                Process last = handler("resume", socket, name, -1);
                started.add(last);
                int vmmExit = exit(guest, "the fake VMM");
                String out = new String(guest.getInputStream().readAllBytes(), UTF_8).trim();
                assertEquals(0, vmmExit, out);
                assertTrue(out.contains("mismatches=0") && out.contains("remove_zero=1"), out);
                assertEquals(0, exit(last, "the resumed handler, once its VMM is gone"));
                System.out.printf("round %d: %d handler kill(s) mid-fault, then resumed: %s%n", round, deaths, out);
            } finally {
                started.forEach(Process::destroyForcibly);
            }
        }
        Await.until(() -> holder.size() == 0, Duration.ofSeconds(30), () -> "the holder let go of every VM that ended");
        assertEquals(9, kills);
    }

    @Test
    void resumingAVmThatIsGoneIsAClearErrorAndTheHolderLetsGo(@TempDir Path dir) throws Exception {
        String name = "gone";
        Path socket = dir.resolve("gone.sock");
        Process first = handler("serve", socket, name, 30);
        Process guest = null;
        try {
            Await.until(() -> Files.exists(socket), Duration.ofSeconds(60), () -> "handler socket appeared");
            guest = vmm(socket, 7);
            assertEquals(137, exit(first, "the handler"));
            guest.destroyForcibly();
            exit(guest, "the killed VMM");
            int before = holder.size();
            PageFaultHandler h = new PageFaultHandler(NO_MEMORY, socket);
            IOException e = assertThrows(IOException.class, () -> h.resume(holderSocket, name));
            assertTrue(e.getMessage().contains("is gone"), e.getMessage());
            assertEquals(before - 1, holder.size(), "the holder dropped it");
            IOException none = assertThrows(UffdHolder.NotHeldException.class, () -> h.resume(holderSocket, name));
            assertTrue(none.getMessage().contains("holds no userfaultfd as 'gone'"), none.getMessage());
        } finally {
            first.destroyForcibly();
            if (guest != null) {
                guest.destroyForcibly();
            }
        }
    }

    @Test
    void malformedHolderRequestsGetAClearRefusalAndTheHolderServesOn() throws Exception {
        assertEquals("rw-------", java.nio.file.attribute.PosixFilePermissions.toString(
                Files.getPosixFilePermissions(holderSocket)), "only the owner may take a VM's memory");
        for (Map.Entry<String, String> bad : Map.of(
                "HELLO there", "ERR unknown request 'HELLO'",
                "PUT ../etc", "ERR expected PUT|TAKE|DROP <name>",
                "PUT fine\npid 1", "ERR PUT fine carried no descriptor",
                "TAKE", "ERR expected PUT|TAKE|DROP <name>").entrySet()) {
            assertTrue(raw(bad.getKey()).startsWith(bad.getValue()), bad.getKey() + " -> " + raw(bad.getKey()));
        }
        // A length prefix promising more than the bound is refused without reading (or allocating) it.
        int sock = Sys.connectUnix(holderSocket.toString());
        try {
            Sys.send(sock, ByteBuffer.allocate(4).putInt(Integer.MAX_VALUE).array(), -1);
            assertEquals(null, Sys.receive(sock, 4096), "the holder hung up on it");
        } finally {
            Sys.close(sock);
        }
        IOException e = assertThrows(UffdHolder.NotHeldException.class, () -> UffdHolder.take(holderSocket, "nobody"));
        assertTrue(e.getMessage().contains("holds no userfaultfd as 'nobody'"), e.getMessage());
    }

    private static String raw(String request) throws IOException {
        int sock = Sys.connectUnix(holderSocket.toString());
        try {
            byte[] body = request.getBytes(UTF_8);
            Sys.send(sock, ByteBuffer.allocate(4 + body.length).putInt(body.length).put(body).array(), -1);
            Sys.Received r = Sys.receive(sock, 4096);
            return r == null ? "<closed>" : new String(r.bytes(), 4, r.bytes().length - 4, UTF_8);
        } finally {
            Sys.close(sock);
        }
    }
}
