package dev.lazyblock.vmboot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.s3.S3ObjectStore;
import java.io.IOException;
import java.io.OutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A real VM (qemu, Debian's kernel, a busybox root file system of 1 GiB) boots from a layered
 * image that {@code lazyblock serve} fetches lazily from a real S3 server; what the guest wrote
 * comes back as a layer.
 */
class VmBootEndToEndTest {
    private static final long IMAGE = 1L << 30;
    private static final long BOOT_SET = 24L << 20;
    private static final Pattern EXPORTED = Pattern.compile("header \\S*?(e2e/[0-9a-f-]+\\.header)\\s*$", Pattern.MULTILINE);

    @Test
    void aGuestBootsFromALazilyServedDiskFetchingLittleOfItAndItsWritesComeBackAsALayer(@TempDir Path tmp)
            throws Exception {
        BootImage image = BootImage.build(Path.of("target/vm-image"), IMAGE, BOOT_SET);
        assertFalse(debugfsCat(image.rootfs(), BootImage.GUEST_FILE).contains(BootImage.GUEST_TEXT),
                "the image must not hold the guest's file before it boots");
        try (Store store = Store.start(tmp.resolve("store"))) {
            LayerExporter.Layer base;
            try (S3ObjectStore objects = store.objects()) {
                base = LayerExporter.publishBase(image.rootfs(), 4096, objects, "e2e");
            }
            store.reset();
            String parent = "s3://" + Store.BUCKET + "/" + base.headerKey();
            String exported;
            Qemu.Boot boot;
            DelayProxy.Counts fetched;
            try (ServeProcess serve = ServeProcess.start(parent, List.of("--writable", "--export-layer", "--chunker",
                    "request-first", "--export", "root"), store.environment(), serveLog())) {
                boot = Qemu.boot(image, "file=" + serve.uri() + ",format=raw", Duration.ofMinutes(10));
                fetched = store.counts();
                exported = serve.stop(Duration.ofMinutes(5));
                assertTrue(exported.contains("stopped."), "serve did not stop cleanly; it printed:\n" + exported);
            }
            System.out.printf("booted under %s in %.2f s to the marker; fetched %,d bytes in %,d requests of a %,d-byte "
                            + "image (%.1f%%)%n", Qemu.accel(image), boot.seconds(), fetched.responseBytes(),
                    fetched.requests(), image.size(), 100.0 * fetched.responseBytes() / image.size());
            assertTrue(boot.reachedMarker(), "the guest never printed " + BootImage.MARKER + "; console:\n" + boot.console());
            assertFalse(boot.console().contains(BootImage.MOUNT_FAILED), boot.console());
            assertTrue(fetched.responseBytes() < image.size() / 10,
                    "booting fetched " + fetched.responseBytes() + " bytes, not a small part of " + image.size());
            assertTrue(fetched.responseBytes() >= BOOT_SET, "the guest reads its boot set from the disk, but only "
                    + fetched.responseBytes() + " bytes came from the store");

            Matcher m = EXPORTED.matcher(exported);
            assertTrue(m.find(), "serve did not print an exported layer:\n" + exported);
            Path after = tmp.resolve("after.ext4");
            try (S3ObjectStore objects = store.objects();
                 LayeredImage layered = LayeredImage.open(objects, m.group(1), tmp, ChunkerKind.STREAMING,
                         ChunkerOptions.DEFAULTS)) {
                assertEquals(2, layered.header().builds().size(), "the new layer's builds: base and its own");
                materialize(layered, after);
            }
            String text = debugfsCat(after, BootImage.GUEST_FILE);
            assertTrue(text.startsWith(BootImage.GUEST_TEXT), "the exported layer's " + BootImage.GUEST_FILE
                    + " holds '" + text + "'");
        }
    }

    /** Kept in target/ for a failed run's post-mortem. */
    private static Path serveLog() throws IOException {
        Path log = Path.of("target/vm-boot-serve.log");
        Files.deleteIfExists(log);
        return log;
    }

    private static void materialize(LayeredImage image, Path out) throws IOException {
        try (Arena arena = Arena.ofConfined(); OutputStream o = Files.newOutputStream(out)) {
            MemorySegment buf = arena.allocate(4 << 20, 4096);
            byte[] bytes = new byte[(int) buf.byteSize()];
            for (long off = 0; off < image.size(); ) {
                int n = (int) Math.min(buf.byteSize(), image.size() - off);
                image.readAt(buf.asSlice(0, n), off);
                MemorySegment.copy(buf, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, bytes, 0, n);
                o.write(bytes, 0, n);
                off += n;
            }
        }
    }

    /** A file's content read from an ext4 image by debugfs (no mount), or debugfs' complaint. */
    private static String debugfsCat(Path image, String file) throws IOException, InterruptedException {
        Process p = new ProcessBuilder("debugfs", "-R", "cat " + file, image.toString()).redirectErrorStream(false).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        p.getErrorStream().readAllBytes();
        p.waitFor();
        return out;
    }
}
