package dev.lazyblock.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

class GetCommandTest {
    @TempDir
    Path dir;

    private static int run(GetCommand cmd, ByteArrayOutputStream out, String... args) {
        PrintStream o = System.out;
        PrintStream e = System.err;
        try {
            System.setOut(new PrintStream(out, true));
            System.setErr(new PrintStream(out, true));
            return new CommandLine(cmd).execute(args);
        } finally {
            System.setOut(o);
            System.setErr(e);
        }
    }

    @Test
    void anInterruptedGetResumesAndTheResultIsTheImage() throws Exception {
        byte[] image = new byte[10 * (1 << 20) + 12345]; // 11 chunks of 1 MiB, the last one short
        new Random(8).nextBytes(image);
        Path src = Files.write(dir.resolve("src.img"), image);
        Path out = dir.resolve("out.img");

        GetCommand first = new GetCommand();
        first.stopAfterChunks = 4;
        ByteArrayOutputStream log1 = new ByteArrayOutputStream();
        assertEquals(1, run(first, log1, src.toString(), out.toString(), "--chunk-mib", "1", "--parallel", "1"));
        assertTrue(log1.toString().contains("rerun to resume"), log1.toString());
        assertTrue(Files.exists(dir.resolve("out.img.lazyblock-get")), "progress is saved");

        ByteArrayOutputStream log2 = new ByteArrayOutputStream();
        assertEquals(0, run(new GetCommand(), log2, src.toString(), out.toString(), "--chunk-mib", "1"), log2.toString());
        assertTrue(log2.toString().contains("(7 fetched now, 4 from an earlier run)"), log2.toString());
        assertEquals(-1, Files.mismatch(src, out), "the file is the image");
        assertTrue(Files.notExists(dir.resolve("out.img.lazyblock-get")), "state removed when done");
        assertTrue(log2.toString().contains("of 10.0 MiB (100%)"), "a summary line: " + log2);
    }

    @Test
    void anImageReplacedAtTheSameSizeBetweenRunsIsFetchedAgainNotMixed() throws Exception {
        byte[] before = new byte[6 * (1 << 20)];
        new Random(9).nextBytes(before);
        Path src = Files.write(dir.resolve("src.img"), before);
        Path out = dir.resolve("out.img");
        GetCommand first = new GetCommand();
        first.stopAfterChunks = 3;
        assertEquals(1, run(first, new ByteArrayOutputStream(), src.toString(), out.toString(), "--chunk-mib", "1",
                "--parallel", "1"));

        byte[] after = new byte[before.length];
        new Random(10).nextBytes(after);
        Files.write(src, after);
        // Another modification time for sure, even on a file system with coarse timestamps.
        Files.setLastModifiedTime(src, FileTime.from(Files.getLastModifiedTime(src).toInstant().plusSeconds(10)));

        ByteArrayOutputStream log = new ByteArrayOutputStream();
        assertEquals(0, run(new GetCommand(), log, src.toString(), out.toString(), "--chunk-mib", "1"), log.toString());
        assertTrue(log.toString().contains("the image changed since the interrupted run"), log.toString());
        assertTrue(log.toString().contains("(6 fetched now, 0 from an earlier run)"), log.toString());
        assertEquals(-1, Files.mismatch(src, out), "the file is the new image, no chunk of the old one");
    }
}
