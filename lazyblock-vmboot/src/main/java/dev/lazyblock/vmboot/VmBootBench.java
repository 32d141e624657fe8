package dev.lazyblock.vmboot;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * {@code bench/vm-boot}: time from starting qemu to the guest's marker, booting one image from
 * one store six ways (issue 9's rows), each with the store behind no added latency and behind
 * the GCS model, each row cold unless it says warm.
 */
public final class VmBootBench {
    private static final Duration BOOT_TIMEOUT = Duration.ofMinutes(10);
    private static final String KEY = "rootfs.ext4";

    private final BootImage image;
    private final Store store;
    private final Path work;
    private final int rounds;
    private final java.util.Set<String> only;

    /** One row's figures (medians over rounds where there are several). */
    record Row(String name, double seconds, double downloadSeconds, long requests, long bytes, String note) {}

    private VmBootBench(BootImage image, Store store, Path work, int rounds, java.util.Set<String> only) {
        this.only = only;
        this.image = image;
        this.store = store;
        this.work = work;
        this.rounds = rounds;
    }

    public static void main(String[] args) throws Exception {
        long imageMib = 1024;
        long bootSetMib = 24;
        int rounds = 1;
        java.util.Set<String> only = java.util.Set.of("1", "2", "2b", "3", "4", "5", "6", "7");
        Path work = Path.of(System.getProperty("java.io.tmpdir"), "lazyblock-vmboot");
        Path out = null;
        List<DelayProxy.Model> models = List.of(DelayProxy.Model.NONE, DelayProxy.Model.GCS);
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            switch (a) {
                case "--image-mib" -> imageMib = Long.parseLong(args[++i]);
                case "--boot-set-mib" -> bootSetMib = Long.parseLong(args[++i]);
                case "--rounds" -> rounds = Integer.parseInt(args[++i]);
                case "--rows" -> only = java.util.Set.of(args[++i].split(","));
                case "--work" -> work = Path.of(args[++i]);
                case "--out" -> out = Path.of(args[++i]);
                case "--models" -> models = Arrays.stream(args[++i].split(",")).map(m -> switch (m.toLowerCase(Locale.ROOT)) {
                    case "none" -> DelayProxy.Model.NONE;
                    case "gcs" -> DelayProxy.Model.GCS;
                    default -> throw new IllegalArgumentException("--models: none or gcs, got " + m);
                }).toList();
                case "-h", "--help" -> {
                    System.out.println("""
                            bench/vm-boot [--image-mib 1024] [--boot-set-mib 24] [--rounds 1] [--models none,gcs] [--rows 1,2,2b,3,4,5,6,7]
                                          [--work DIR] [--out FILE.md]
                            Boots a busybox VM from a root disk in S3Proxy seven ways and prints time to marker,
                            bytes and requests fetched from the store, and the ratio to nbdkit (row 2).""");
                    return;
                }
                default -> throw new IllegalArgumentException("unknown option " + a + " (--help lists them)");
            }
        }
        Files.createDirectories(work);
        BootImage image = BootImage.build(work.resolve("image"), imageMib << 20, bootSetMib << 20);
        Qemu.Accel accel = Qemu.accel(image);
        StringBuilder report = new StringBuilder();
        try (Store store = Store.start(work.resolve("store"))) {
            store.putIfAbsent(KEY, image.rootfs());
            VmBootBench bench = new VmBootBench(image, store, work, rounds, only);
            report.append(String.format("bench vm-boot, %s: %s, %d cores; guest: %s, %d MiB root image (ext4, busybox), "
                            + "%d MiB boot set; qemu %s; median of %d round(s)%n", LocalDate.now(), accel,
                    Runtime.getRuntime().availableProcessors(), image.kernelVersion(), image.size() >> 20,
                    image.bootSetBytes() >> 20, qemuVersion(), rounds));
            for (DelayProxy.Model m : models) {
                store.model(m);
                List<Row> rows = bench.runAll();
                report.append(table(m, rows, image.size()));
                System.out.print(table(m, rows, image.size()));
                System.out.flush();
            }
        }
        System.out.println();
        System.out.print(report);
        if (out != null) {
            Files.writeString(out, report);
        }
    }

    private List<Row> runAll() throws Exception {
        List<Row> rows = new ArrayList<>();
        if (only.contains("1")) {
            rows.add(median(r -> downloadThenBoot()));
        }
        if (only.contains("2")) {
            rows.add(median(r -> nbdkit(List.of("cache"), "2. nbdkit --filter=cache curl")));
        }
        if (only.contains("2b")) {
            rows.add(median(r -> nbdkit(List.of("readahead", "cache"), "2b. nbdkit --filter=readahead --filter=cache curl")));
        }
        if (only.contains("3")) {
            rows.add(median(r -> serve("streaming", List.of(), "3. lazyblock serve, streaming")));
        }
        // Rows 4 and 6 come from one serve: a cold boot, then a second boot on the kept cache;
        // it records the working set row 5 prefetches.
        List<Row[]> fourSix = new ArrayList<>();
        if (only.contains("4") || only.contains("5") || only.contains("6")) {
            for (int i = 0; i < rounds; i++) {
                fourSix.add(coldThenWarm());
            }
        }
        if (only.contains("4")) {
            rows.add(medianOf(fourSix.stream().map(r -> r[0]).toList()));
        }
        if (only.contains("5")) {
            rows.add(median(r -> serve("request-first", List.of("--prefetch", workingSet().toString()),
                    "5. lazyblock serve, request-first + prefetched working set")));
        }
        if (only.contains("6")) {
            rows.add(medianOf(fourSix.stream().map(r -> r[1]).toList()));
        }
        if (only.contains("7")) {
            rows.add(median(r -> daemon("7. lazyblockd sandbox (nbd+unix), request-first")));
        }
        return rows;
    }

    interface Run {
        Row apply(int round) throws Exception;
    }

    private Row median(Run run) throws Exception {
        List<Row> all = new ArrayList<>();
        for (int i = 0; i < rounds; i++) {
            all.add(run.apply(i));
        }
        return medianOf(all);
    }

    private static Row medianOf(List<Row> all) {
        List<Row> sorted = all.stream().sorted((a, b) -> Double.compare(a.seconds(), b.seconds())).toList();
        return sorted.get(sorted.size() / 2);
    }

    private Path workingSet() {
        return work.resolve("working-set.bin");
    }

    private Row downloadThenBoot() throws Exception {
        Path local = work.resolve("downloaded.ext4");
        Files.deleteIfExists(local);
        Files.deleteIfExists(local.resolveSibling(local.getFileName() + ".lazyblock-get"));
        store.reset();
        long t0 = System.nanoTime();
        ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow", "-jar",
                ServeProcess.jar().toString(), "get",
                "s3://" + Store.BUCKET + "/" + KEY, local.toString())
                .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(work.resolve("get.log").toFile()));
        pb.environment().putAll(store.environment());
        Process p = pb.start();
        if (p.waitFor() != 0) {
            throw new IOException("lazyblock get failed (" + p.exitValue() + "), see " + work.resolve("get.log"));
        }
        double download = (System.nanoTime() - t0) / 1e9;
        DelayProxy.Counts c = store.counts();
        Qemu.Boot boot = check(Qemu.boot(image, "file=" + local + ",format=raw,snapshot=on", BOOT_TIMEOUT));
        Files.deleteIfExists(local);
        return new Row("1. download (lazyblock get, 8 parallel), then boot", download + boot.seconds(), download,
                c.requests(), c.responseBytes(), String.format("boot alone %.2f s", boot.seconds()));
    }

    private Row nbdkit(List<String> filters, String name) throws Exception {
        store.reset();
        try (Nbdkit kit = Nbdkit.start(store.httpUrl(KEY), filters, work.resolve("nbdkit.log"))) {
            Qemu.Boot boot = check(Qemu.boot(image, "file=" + kit.uri() + ",format=raw,snapshot=on", BOOT_TIMEOUT));
            DelayProxy.Counts c = store.counts();
            return new Row(name, boot.seconds(), 0, c.requests(), c.responseBytes(), "");
        }
    }

    private Row serve(String chunker, List<String> extra, String name) throws Exception {
        store.reset();
        List<String> args = new ArrayList<>(List.of("--writable", "--chunker", chunker, "--export", "root"));
        args.addAll(extra);
        try (ServeProcess serve = ServeProcess.start("s3://" + Store.BUCKET + "/" + KEY, args, store.environment(),
                work.resolve("serve.log"))) {
            Qemu.Boot boot = check(Qemu.boot(image, "file=" + serve.uri() + ",format=raw", BOOT_TIMEOUT));
            DelayProxy.Counts c = store.counts();
            return new Row(name, boot.seconds(), 0, c.requests(), c.responseBytes(), "");
        }
    }

    /** A fresh daemon (cold caches); the disk is a sandbox's export on its Unix socket. */
    private Row daemon(String name) throws Exception {
        store.reset();
        Path state = work.resolve("daemon-state");
        deleteTree(state);
        Files.createDirectories(state);
        try (DaemonProcess d = DaemonProcess.start(state, store.environment(), work.resolve("daemon.log"))) {
            String uri = d.create("vm", "s3://" + Store.BUCKET + "/" + KEY);
            Qemu.Boot boot = check(Qemu.boot(image, "file=" + uri + ",format=raw", BOOT_TIMEOUT));
            DelayProxy.Counts c = store.counts();
            return new Row(name, boot.seconds(), 0, c.requests(), c.responseBytes(), "");
        } finally {
            deleteTree(state);
        }
    }

    private static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p)) {
            return;
        }
        try (var s = Files.walk(p)) {
            for (Path q : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(q);
            }
        }
    }

    private Row[] coldThenWarm() throws Exception {
        store.reset();
        List<String> args = List.of("--writable", "--chunker", "request-first", "--export", "root",
                "--record-working-set", workingSet().toString());
        try (ServeProcess serve = ServeProcess.start("s3://" + Store.BUCKET + "/" + KEY, args, store.environment(),
                work.resolve("serve.log"))) {
            Qemu.Boot cold = check(Qemu.boot(image, "file=" + serve.uri() + ",format=raw", BOOT_TIMEOUT));
            DelayProxy.Counts c = store.counts();
            store.reset();
            Qemu.Boot warm = check(Qemu.boot(image, "file=" + serve.uri() + ",format=raw", BOOT_TIMEOUT));
            DelayProxy.Counts w = store.counts();
            String stopped = serve.stop(Duration.ofMinutes(1));
            if (!stopped.contains("working set:")) {
                throw new IOException("serve did not save its working set:\n" + stopped);
            }
            return new Row[] {
                new Row("4. lazyblock serve, request-first", cold.seconds(), 0, c.requests(), c.responseBytes(), ""),
                new Row("6. 4 warm (second boot, cache kept)", warm.seconds(), 0, w.requests(), w.responseBytes(), "")};
        }
    }

    private static Qemu.Boot check(Qemu.Boot boot) throws IOException {
        if (!boot.reachedMarker()) {
            throw new IOException("the guest did not print " + BootImage.MARKER + "; console:\n" + boot.console());
        }
        return boot;
    }

    static String table(DelayProxy.Model m, List<Row> rows, long imageBytes) {
        double peer = rows.stream().filter(r -> r.name().startsWith("2.")).findFirst().map(Row::seconds).orElse(Double.NaN);
        StringBuilder b = new StringBuilder();
        b.append(String.format("%nstore behind: %s%s%n%n", m.name(), m.ttfbNanos() == 0 ? " (no added latency)"
                : String.format(" (%d ms to first byte + %d MB/s per request)", m.ttfbNanos() / 1_000_000,
                        m.bytesPerSecond() / 1_000_000)));
        b.append("| row | time to marker s | store requests | store MiB | % of image | ratio to row 2 | note |\n");
        b.append("|---|---|---|---|---|---|---|\n");
        for (Row r : rows) {
            b.append(String.format("| %s | %.2f | %,d | %.1f | %.1f%% | %.2f | %s |%n", r.name(), r.seconds(), r.requests(),
                    r.bytes() / 1048576.0, 100.0 * r.bytes() / imageBytes, r.seconds() / peer,
                    r.downloadSeconds() > 0 ? String.format("download %.2f s; %s", r.downloadSeconds(), r.note()) : r.note()));
        }
        return b.toString();
    }

    private static String qemuVersion() {
        try {
            Process p = new ProcessBuilder("qemu-system-x86_64", "--version").redirectErrorStream(true).start();
            String v = new String(p.getInputStream().readAllBytes()).lines().findFirst().orElse("?");
            p.waitFor();
            return v.replace("QEMU emulator version ", "");
        } catch (IOException | InterruptedException e) {
            return "?";
        }
    }
}
