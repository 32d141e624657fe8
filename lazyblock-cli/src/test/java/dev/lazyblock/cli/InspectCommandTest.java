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
}
