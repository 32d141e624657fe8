package dev.lazyblock.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.upstream.DirectoryStore;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ExportCommandTest {
    @TempDir
    Path dir;

    @Test
    void aRawFileExportedAsABaseLayerReadsBackAsTheSameBytes() throws Exception {
        byte[] bytes = new byte[5 * (1 << 20) + 99];
        new SplittableRandom(41).nextBytes(bytes);
        Path raw = Files.write(dir.resolve("rootfs.raw"), bytes);
        Path dest = dir.resolve("layers/vm1");
        WarmCommandTest.Run r = WarmCommandTest.run(new ExportCommand(), raw.toString(), dest.toString());
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.err().contains("export rootfs.raw: 5.0 MiB of 5.0 MiB (100%)"), "a summary line: " + r.err());
        Matcher m = Pattern.compile("exported .* as base layer (\\S+): 5,242,979 bytes, block 4,096; header (\\S+)")
                .matcher(r.out());
        assertTrue(m.find(), r.out());
        Path header = Path.of(m.group(2));
        assertEquals(dest, header.getParent());
        assertEquals(m.group(1) + ".header", header.getFileName().toString());
        try (LayeredImage image = LayeredImage.open(new DirectoryStore(dest), header.getFileName().toString(), dir,
                ChunkerKind.FULL_FETCH, ChunkerOptions.DEFAULTS)) {
            byte[] got = new byte[bytes.length];
            image.readAt(got, 0, got.length, 0);
            assertEquals(-1, java.util.Arrays.mismatch(bytes, got));
        }
    }

    @Test
    void anHttpDestinationOrAMissingFileIsRefused() throws Exception {
        Path raw = Files.write(dir.resolve("x.raw"), new byte[4096]);
        WarmCommandTest.Run http = WarmCommandTest.run(new ExportCommand(), raw.toString(), "https://example.com/x");
        assertEquals(2, http.exit());
        assertTrue(http.err().contains("cannot write to https://"), http.err());
        WarmCommandTest.Run missing = WarmCommandTest.run(new ExportCommand(), dir.resolve("nope").toString(), dir.toString());
        assertEquals(2, missing.exit());
        assertTrue(missing.err().contains("is not a regular file"), missing.err());
    }
}
