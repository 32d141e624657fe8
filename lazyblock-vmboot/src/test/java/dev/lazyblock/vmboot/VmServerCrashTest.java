package dev.lazyblock.vmboot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.s3.S3ObjectStore;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A running VM keeps running across {@code kill -9} and restart of the server under its disk: the
 * guest writes and syncs files in a loop on a writable disk served lazily from S3 with a kept
 * overlay; serve is killed twice mid-loop and started again on the same port, overlay and cache;
 * qemu reconnects ({@code reconnect-delay}) and resends what was in flight. Afterwards the disk
 * passes {@code e2fsck} and every file the guest announced as synced holds its checksum.
 */
class VmServerCrashTest {
    private static final long IMAGE = 1L << 30;
    private static final long BOOT_SET = 24L << 20;
    private static final int FILES = 24;
    private static final int[] KILL_AFTER = {4, 12};
    private static final Pattern KEPT = Pattern.compile("([0-9,]+) bytes written by earlier runs");
    private static final Pattern SYNCED = Pattern.compile(BootImage.SYNCED + " (\\d+) ([0-9a-f]{32})");

    @Test
    void aGuestWritingAndSyncingGoesOnAcrossTwoKillsOfTheServerAndItsSyncedFilesSurvive(@TempDir Path tmp)
            throws Exception {
        BootImage image = BootImage.build(Path.of("target/vm-image"), IMAGE, BOOT_SET);
        int port;
        try (ServerSocket free = new ServerSocket(0)) {
            port = free.getLocalPort();
        }
        try (Store store = Store.start(tmp.resolve("store"))) {
            LayerExporter.Layer base;
            try (S3ObjectStore objects = store.objects()) {
                base = LayerExporter.publishBase(image.rootfs(), 4096, objects, "crash");
            }
            store.model(DelayProxy.Model.NONE);
            String header = "s3://" + Store.BUCKET + "/" + base.headerKey();
            List<String> args = List.of("--writable", "--export", "root", "--listen", "127.0.0.1:" + port,
                    "--overlay-dir", tmp.resolve("overlay").toString(), "--cache-dir", tmp.resolve("cache").toString());
            Path log = Path.of("target/vm-crash-serve.log");
            Files.deleteIfExists(log);

            Map<Integer, String> synced = new ConcurrentHashMap<>();
            CountDownLatch[] reached = {new CountDownLatch(1), new CountDownLatch(1)};
            ServeProcess[] serve = {ServeProcess.start(header, args, store.environment(), log)};
            try {
                String drive = "format=raw,file.driver=nbd,file.server.type=inet,file.server.host=127.0.0.1,"
                        + "file.server.port=" + port + ",file.export=root,file.reconnect-delay=60";
                Qemu.Boot[] boot = new Qemu.Boot[1];
                Exception[] failed = new Exception[1];
                Thread vm = Thread.ofPlatform().name("vm").start(() -> {
                    try {
                        boot[0] = Qemu.boot(image, drive, "lazyblock.syncloop=" + FILES, Duration.ofMinutes(10), line -> {
                            Matcher m = SYNCED.matcher(line);
                            if (m.find()) {
                                int n = Integer.parseInt(m.group(1));
                                synced.put(n, m.group(2));
                                for (int k = 0; k < KILL_AFTER.length; k++) {
                                    if (n == KILL_AFTER[k]) {
                                        reached[k].countDown();
                                    }
                                }
                            }
                        });
                    } catch (Exception e) {
                        failed[0] = e;
                    }
                });
                for (int k = 0; k < KILL_AFTER.length; k++) {
                    assertTrue(reached[k].await(10, TimeUnit.MINUTES), "the guest never synced file " + KILL_AFTER[k]
                            + "; synced so far: " + synced.keySet());
                    serve[0].kill();
                    serve[0] = ServeProcess.start(header, args, store.environment(), log);
                    Matcher kept = KEPT.matcher(serve[0].output());
                    assertTrue(kept.find() && Long.parseLong(kept.group(1).replace(",", "")) > 0,
                            "the restarted serve goes on with the guest's writes:\n" + serve[0].output());
                }
                vm.join(Duration.ofMinutes(10));
                assertFalse(vm.isAlive(), "qemu did not finish within 10 minutes");
                if (failed[0] != null) {
                    throw failed[0];
                }
                assertTrue(boot[0].reachedMarker(), "the guest did not finish; console:\n" + boot[0].console());
                assertEquals(FILES, synced.size(), "files the guest synced; console:\n" + boot[0].console());
                assertTrue(synced.size() > KILL_AFTER[KILL_AFTER.length - 1], "the guest stopped at the kills");

                Path after = tmp.resolve("after.ext4");
                BootImage.run(List.of("nbdcopy", serve[0].uri().toString(), after.toString()));
                String fsck = fsck(after);
                for (Map.Entry<Integer, String> f : synced.entrySet()) {
                    byte[] bytes = debugfsCat(after, BootImage.SYNCED_DIR + "/f" + f.getKey());
                    assertEquals(256 << 10, bytes.length, "size of synced file f" + f.getKey());
                    assertEquals(f.getValue(), HexFormat.of().formatHex(MessageDigest.getInstance("MD5").digest(bytes)),
                            "the MD5 of synced file f" + f.getKey());
                }
                System.out.printf("VM across 2 kills of serve (after files %d and %d): %d files synced and intact, "
                                + "e2fsck clean (%s)%n", KILL_AFTER[0], KILL_AFTER[1], synced.size(), fsck);
                String out = serve[0].stop(Duration.ofMinutes(2));
                assertTrue(out.contains("stopped."), out);
            } finally {
                serve[0].close();
            }
        }
    }

    /** {@code e2fsck -fn}: fails the test unless the file system is clean; returns its summary line. */
    private static String fsck(Path image) throws IOException, InterruptedException {
        Process p = new ProcessBuilder("e2fsck", "-fn", image.toString()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(5, TimeUnit.MINUTES), "e2fsck did not finish in 5 minutes");
        assertEquals(0, p.exitValue(), "e2fsck found errors:\n" + out);
        String[] lines = out.strip().split("\n");
        return lines[lines.length - 1].strip();
    }

    private static byte[] debugfsCat(Path image, String file) throws IOException, InterruptedException {
        Process p = new ProcessBuilder("debugfs", "-R", "cat " + file, image.toString())
                .redirectError(ProcessBuilder.Redirect.DISCARD).start();
        byte[] out = p.getInputStream().readAllBytes();
        p.waitFor(1, TimeUnit.MINUTES);
        return out;
    }
}
