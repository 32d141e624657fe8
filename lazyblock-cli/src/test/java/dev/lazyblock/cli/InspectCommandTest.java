package dev.lazyblock.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.upstream.DirectoryStore;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

class InspectCommandTest {
    @TempDir
    Path dir;

    private static String[] run(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream o = System.out;
        PrintStream e = System.err;
        int code;
        try {
            System.setOut(new PrintStream(out, true));
            System.setErr(new PrintStream(err, true));
            code = new CommandLine(new Main()).execute(args);
        } finally {
            System.setOut(o);
            System.setErr(e);
        }
        return new String[] {Integer.toString(code), out.toString(), err.toString()};
    }

    @Test
    void printsABaseLayersBuildAndMapping() throws Exception {
        Path raw = Files.write(dir.resolve("base.raw"), new byte[3 * 4096]);
        LayerExporter.Layer base;
        try (DirectoryStore store = new DirectoryStore(dir.resolve("store"))) {
            base = LayerExporter.publishBase(raw, 4096, store, "img");
        }
        String[] r = run("inspect", dir.resolve("store").resolve(base.headerKey()).toString());
        assertEquals("0", r[0], r[2]);
        String id = base.header().buildId().toString();
        assertTrue(r[1].contains("layer " + id) && r[1].contains("(none: a base image)"), r[1]);
        assertTrue(r[1].contains("12,288 bytes, 4,096-byte blocks") && r[1].contains("(this layer)"), r[1]);
        assertTrue(r[1].contains("1 mappings") && r[1].contains(id + " @ 0"), r[1]);
    }

    @Test
    void aCorruptHeaderSaysWhichFieldIsWrong() throws Exception {
        Path bad = Files.write(dir.resolve("x.header"), new byte[100]);
        String[] r = run("inspect", bad.toString());
        assertEquals("1", r[0]);
        assertTrue(r[2].contains("bad layer header: magic"), r[2]);
    }

    /** Two images exported content-addressed into one directory: the second uploads only its new chunks, inspect counts what they share. */
    @Test
    void contentAddressedExportsShareChunksAndInspectCountsThem() throws Exception {
        int chunk = 64 << 10;
        byte[] a = new byte[8 * chunk];
        new java.util.SplittableRandom(8).nextBytes(a);
        byte[] b = a.clone();
        b[3 * chunk + 7] ^= 1; // one chunk differs
        Path ra = Files.write(dir.resolve("a.raw"), a);
        Path rb = Files.write(dir.resolve("b.raw"), b);
        Path dest = dir.resolve("layers");
        String[] ea = run("export", ra.toString(), dest.toString(), "--content-addressed", "--chunk-kib", "64");
        assertEquals("0", ea[0], ea[2]);
        assertTrue(ea[1].contains("8 chunks of 64 KiB: 8 uploaded"), ea[1]);
        String[] eb = run("export", rb.toString(), dest.toString(), "--content-addressed", "--chunk-kib", "64");
        assertEquals("0", eb[0], eb[2]);
        assertTrue(eb[1].contains("1 uploaded (65536 bytes), 7 already in the store"), eb[1]);
        String ha = header(ea[1]);
        String hb = header(eb[1]);
        String[] r = run("inspect", ha, hb);
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("header     version 3"), r[1]);
        assertTrue(r[1].matches("(?s).*shared\\s+458,752\\s+7 objects.*"), r[1]);
        assertTrue(r[1].matches("(?s).*only in this layer\\s+65,536\\s+1 objects.*"), r[1]);
        assertTrue(r[1].matches("(?s).*only in the other\\s+65,536\\s+1 objects.*"), r[1]);
        // b's header goes: gc deletes the one chunk only b used, and keeps a's.
        Files.delete(Path.of(hb));
        String[] young = run("gc", dest.toString());
        assertEquals("0", young[0], young[2]);
        assertTrue(young[1].contains("deleted 0 (0 bytes), 1 unreferenced kept by the grace period"), young[1]);
        String[] gc = run("gc", dest.toString(), "--grace", "0s");
        assertEquals("0", gc[0], gc[2]);
        assertTrue(gc[1].contains("1 headers reference 8 of 9 chunk objects; deleted 1 (65536 bytes)"), gc[1]);
        assertEquals("0", run("inspect", ha)[0]);
        String[] bad = run("export", ra.toString(), dest.toString(), "--content-addressed", "--chunk-kib", "100");
        assertEquals("2", bad[0]);
        assertTrue(bad[2].contains("--chunk-kib") && bad[2].contains("power of two"), bad[2]);
    }

    /** The header path in export's summary line. */
    private static String header(String out) {
        int at = out.lastIndexOf("header ");
        return out.substring(at + "header ".length()).trim();
    }
}
