package dev.lazyblock.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * bench dedup on small images: every row comes out, content addressing stores less than one
 * object per image at each chunk size (the derived images share the base's chunks), and the work
 * directory goes.
 */
class DedupBenchCommandTest {
    @TempDir
    Path dir;

    @Test
    void contentAddressedRowsStoreLessThanOneObjectPerImage() throws Exception {
        Path jdk = Path.of(System.getProperty("java.home"));
        WarmCommandTest.Run r = WarmCommandTest.run(new Main(), "bench", "dedup", "--image-mib", "24", "--base-from",
                jdk.resolve("lib").toString(), "--packages-from", jdk.resolve("conf") + "," + jdk.resolve("legal"),
                "--package-mib", "1", "--memory-mib", "4", "--chunk-kib", "1024,128", "--dir", dir.toString());
        assertEquals(0, r.exit(), r.err());
        for (int kib : new int[] {1024, 128}) {
            Matcher one = row("one object per image, " + kib + " KiB chunks").matcher(r.out());
            Matcher cas = row("content-addressed, " + kib + " KiB chunks").matcher(r.out());
            assertTrue(one.find() && cas.find(), r.out());
            long storedOne = Long.parseLong(one.group(1).replace(",", ""));
            long storedCas = Long.parseLong(cas.group(1).replace(",", ""));
            assertTrue(storedCas < storedOne / 2, "content addressing stores less: " + r.out());
        }
        try (var left = Files.list(dir)) {
            assertEquals(0, left.count(), "the bench's work directory is removed");
        }
    }

    private static Pattern row(String layout) {
        return Pattern.compile("(?m)^\\| " + Pattern.quote(layout) + " \\| ([\\d,]+) \\|");
    }
}
