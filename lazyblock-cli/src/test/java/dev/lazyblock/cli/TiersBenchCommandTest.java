package dev.lazyblock.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** bench tiers on a small image: the tables come out, and a second host behind a warm tier asks the bucket nothing. */
class TiersBenchCommandTest {
    @TempDir
    Path dir;

    @Test
    void printsSizesAndReadRowsAndTheWarmTierCostsNoBucketRequest() throws Exception {
        Path image = Files.write(dir.resolve("img.raw"), ExportCommandTest.compressible(31, 12 << 20));
        WarmCommandTest.Run r = WarmCommandTest.run(new Main(), "bench", "tiers", "--image", image.toString(), "--reads",
                "300", "--threads", "2", "--dir", dir.toString());
        assertEquals(0, r.exit(), r.err());
        for (String codec : new String[] {"none", "lz4", "zstd"}) {
            assertTrue(Pattern.compile("(?m)^\\| " + codec + " \\| [\\d,]+ \\| [\\d.]+% \\|").matcher(r.out()).find(), r.out());
            assertTrue(r.out().contains("| " + codec + ", cold |"), r.out());
            assertTrue(Pattern.compile("(?m)^\\| " + codec + ", second host, warm tier \\|.*\\| 0 \\| 0\\.0 \\| tier's own")
                    .matcher(r.out()).find(), "warm tier row of " + codec + " asked the bucket: " + r.out());
        }
        try (var left = Files.list(dir)) {
            assertEquals(1, left.count(), "the bench's work directory is removed");
        }
    }
}
