package dev.lazyblock.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.device.WorkingSet;
import dev.lazyblock.testing.Await;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code serve --record-working-set} then {@code serve --prefetch}: the second boot's reads are hits. */
class ServeWorkingSetTest {
    private static final int MIB = 1 << 20;

    @TempDir
    Path dir;

    private record Run(ServeCommand command, Thread thread, ByteArrayOutputStream out) {
        static Run start(String... args) throws InterruptedException {
            ServeCommand c = new ServeCommand();
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            PrintStream saved = System.out;
            System.setOut(new PrintStream(out, true));
            try {
                Thread t = Thread.ofPlatform().start(() -> new CommandLine(c).execute(args));
                assertTrue(c.started.await(30, TimeUnit.SECONDS), "serve did not start within 30 s");
                return new Run(c, t, out);
            } finally {
                System.setOut(saved);
            }
        }

        String stop() throws InterruptedException {
            command.stop();
            assertTrue(thread.join(Duration.ofSeconds(60)), "serve did not stop within 60 s");
            return out.toString();
        }
    }

    /** Reads 4 KiB at each offset with qemu-io, in order. */
    private static void read(String uri, long... offsets) throws Exception {
        for (long off : offsets) {
            ClientTools.run("qemu-io", "-f", "raw", "-r", "-c", "read " + off + " 4k", uri);
        }
    }

    @Test
    void theChunksOneRunReadArePrefetchedInThatOrderAndTheNextRunsReadsAreHits() throws Exception {
        Path image = dir.resolve("disk.img");
        byte[] bytes = new byte[40 * MIB];
        new SplittableRandom(9).nextBytes(bytes);
        Files.write(image, bytes);
        Path ws = dir.resolve("ws.bin");
        long[] offsets = {21L * MIB + 8192, 5L * MIB, 21L * MIB + 4096, 37L * MIB + 12288};

        Run first = Run.start(image.toString(), "--listen", "127.0.0.1:0", "--record-working-set", ws.toString(),
                "--cache-dir", dir.resolve("c1").toString());
        read(first.command().server.uri("disk.img"), offsets);
        String out = first.stop();
        assertTrue(out.contains("working set: 3 chunks read"), out);
        // One offset per 4 MiB chunk, the first block read there, in first-read order.
        assertEquals(List.of(21L * MIB + 8192, 5L * MIB, 37L * MIB + 12288), WorkingSet.load(ws).offsets());

        Run second = Run.start(image.toString(), "--listen", "127.0.0.1:0", "--prefetch", ws.toString(),
                "--cache-dir", dir.resolve("c2").toString());
        assertEquals(3L, second.command().prefetched.get(30, TimeUnit.SECONDS), "chunks prefetched");
        // The prefetch is done when its reads are answered; the rest of each chunk may still be
        // streaming in, and a client read landing before the chunk is whole is not a hit.
        Chunker served = (Chunker) second.command().server.exports().getFirst().device();
        for (long chunk : new long[] {20, 4, 36}) {
            Await.until(() -> served.cache().isCached(chunk * MIB, 4 * MIB), Duration.ofSeconds(30),
                    () -> "chunk at " + chunk + " MiB present after the prefetch");
        }
        read(second.command().server.uri("disk.img"), offsets);
        String stats = second.stop();
        // The prefetch's own reads are the 3 misses; every client read was a hit.
        assertTrue(stats.contains("reads: 4 cache hits (16,384 bytes), 3 misses (12,288 bytes)"), stats);
    }

    @Test
    void aWorkingSetFileThatIsNotOneIsRefusedClearly() throws Exception {
        Path image = dir.resolve("disk.img");
        Files.write(image, new byte[MIB]);
        Path bogus = dir.resolve("bogus.bin");
        Files.writeString(bogus, "not a working set, but long enough to have a header");
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream saved = System.err;
        System.setErr(new PrintStream(err, true));
        int exit;
        try {
            exit = new CommandLine(new ServeCommand()).execute(image.toString(), "--listen", "127.0.0.1:0",
                    "--prefetch", bogus.toString());
        } finally {
            System.setErr(saved);
        }
        assertEquals(2, exit, err.toString());
        assertTrue(err.toString().contains("--prefetch: working set " + bogus + " does not start with LZBLKWS1"),
                err.toString());
    }
}
