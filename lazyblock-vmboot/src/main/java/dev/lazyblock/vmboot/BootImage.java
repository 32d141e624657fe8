package dev.lazyblock.vmboot;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Properties;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import java.util.zip.GZIPOutputStream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What a VM boots: the machine's Debian kernel, a small initramfs (busybox and the virtio
 * modules) that mounts {@code /dev/vda} and switches to it, and the root file system image on
 * that disk: busybox, an init that reads its "boot set" (files standing in for the binaries and
 * libraries a real boot loads), writes {@link #GUEST_FILE}, prints {@link #MARKER} and powers off;
 * the rest of the file system filled with data boot never reads.
 *
 * <p>Built from Debian's packages (linux-image-cloud-amd64, busybox-static, e2fsprogs) with no
 * loop mount: {@code mkfs.ext4 -d} populates the image from a directory. Contents are seeded, so
 * a rebuild holds the same files.
 */
public record BootImage(Path kernel, Path initrd, Path rootfs, long size, long bootSetBytes, String kernelVersion) {
    private static final Logger log = LoggerFactory.getLogger(BootImage.class);

    /** The line the guest's init prints once it has read its boot set and written its file. */
    public static final String MARKER = "LAZYBLOCK-VM-BOOTED";
    /** The file the guest writes during boot (its content starts with {@link #GUEST_TEXT}). */
    public static final String GUEST_FILE = "/lazyblock-guest.txt";
    public static final String GUEST_TEXT = "written by the guest during boot";
    /** With {@code lazyblock.syncloop=N}: the guest prints this, a file's number and its MD5 after each sync. */
    public static final String SYNCED = "LAZYBLOCK-SYNCED";
    /** Where the sync loop writes its files ({@code f1} to {@code fN}, 256 KiB each). */
    public static final String SYNCED_DIR = "/synced";
    /** The initramfs says this when it cannot mount the disk. */
    public static final String MOUNT_FAILED = "lazyblock-initramfs: cannot mount /dev/vda";

    private static final int BOOT_FILE = 512 << 10;
    private static final int FILL_FILE = 64 << 20;
    private static final String[] MODULES = {"kernel/drivers/virtio/virtio_pci.ko", "kernel/drivers/block/virtio_blk.ko"};

    /**
     * Builds the image in {@code dir}, or reuses one built there with the same parameters and kernel.
     *
     * @param imageBytes the root file system image size
     * @param bootSetBytes how much of it the guest reads while booting
     */
    public static BootImage build(Path dir, long imageBytes, long bootSetBytes) throws IOException, InterruptedException {
        if (imageBytes < (64L << 20) || bootSetBytes < BOOT_FILE || bootSetBytes > imageBytes / 4) {
            throw new IllegalArgumentException("want an image of at least 64 MiB and a boot set between 512 KiB and a "
                    + "quarter of it, got " + imageBytes + " and " + bootSetBytes + " bytes");
        }
        Files.createDirectories(dir);
        String version = newestKernel();
        Path kernel = Path.of("/boot/vmlinuz-" + version);
        BootImage image = new BootImage(kernel, dir.resolve("initrd.gz"), dir.resolve("rootfs.ext4"), imageBytes,
                bootSetBytes, version);
        Path stamp = dir.resolve("boot-image.properties");
        Properties want = new Properties();
        want.setProperty("kernel", version);
        want.setProperty("size", Long.toString(imageBytes));
        want.setProperty("bootSet", Long.toString(bootSetBytes));
        want.setProperty("format", "3");
        if (Files.exists(stamp) && Files.exists(image.initrd) && Files.exists(image.rootfs)) {
            Properties have = new Properties();
            try (InputStream in = Files.newInputStream(stamp)) {
                have.load(in);
            }
            if (have.equals(want)) {
                log.info("reusing the boot image in {}", dir);
                return image;
            }
        }
        Files.deleteIfExists(stamp);
        byte[] busybox = staticBusybox();
        writeInitramfs(image.initrd, busybox, version);
        writeRootfs(dir, image.rootfs, busybox, imageBytes, bootSetBytes);
        try (OutputStream out = Files.newOutputStream(stamp)) {
            want.store(out, "lazyblock-vmboot image parameters");
        }
        return image;
    }

    /** The newest kernel under /boot whose modules include virtio_blk. */
    static String newestKernel() throws IOException {
        List<String> found = new ArrayList<>();
        try (Stream<Path> s = Files.list(Path.of("/boot"))) {
            s.map(p -> p.getFileName().toString()).filter(n -> n.startsWith("vmlinuz-")).sorted().forEach(n -> {
                String v = n.substring("vmlinuz-".length());
                if (Files.exists(Path.of("/lib/modules", v, "kernel/drivers/block/virtio_blk.ko"))) {
                    found.add(v);
                }
            });
        } catch (IOException e) {
            throw new IOException("cannot list /boot: " + e.getMessage(), e);
        }
        if (found.isEmpty()) {
            throw new IOException("no kernel under /boot with an uncompressed virtio_blk module: install Debian's "
                    + "linux-image-cloud-amd64 (bench/vm-boot does)");
        }
        return found.getLast();
    }

    private static byte[] staticBusybox() throws IOException {
        Path p = Path.of("/bin/busybox");
        if (!Files.exists(p)) {
            throw new IOException("no /bin/busybox: install Debian's busybox-static");
        }
        byte[] b = Files.readAllBytes(p);
        // A dynamic executable names its loader near the start (PT_INTERP).
        if (new String(b, 0, Math.min(b.length, 4096), StandardCharsets.ISO_8859_1).contains("/lib64/ld-linux")) {
            throw new IOException("/bin/busybox is dynamically linked; the initramfs has no libc: install busybox-static");
        }
        return b;
    }

    /** The modules to insmod, dependencies first, from modules.dep (which lists them last-loaded-first). */
    static List<String> moduleOrder(String version) throws IOException {
        List<String> dep = Files.readAllLines(Path.of("/lib/modules", version, "modules.dep"));
        LinkedHashSet<String> order = new LinkedHashSet<>();
        for (String target : MODULES) {
            String line = dep.stream().filter(l -> l.startsWith(target + ":")).findFirst().orElseThrow(
                    () -> new IOException("modules.dep of " + version + " does not list " + target));
            String[] deps = line.substring(target.length() + 1).trim().split("\\s+");
            for (int i = deps.length - 1; i >= 0; i--) {
                if (!deps[i].isEmpty()) {
                    order.add(deps[i]);
                }
            }
            order.add(target);
        }
        for (String m : order) {
            if (!m.endsWith(".ko")) {
                throw new IOException("module " + m + " is compressed; busybox insmod loads plain .ko files only");
            }
        }
        return List.copyOf(order);
    }

    private static void writeInitramfs(Path out, byte[] busybox, String version) throws IOException {
        List<String> modules = moduleOrder(version);
        StringBuilder init = new StringBuilder("""
                #!/bin/busybox sh
                /bin/busybox mount -t devtmpfs dev /dev
                /bin/busybox mount -t proc proc /proc
                """);
        for (String m : modules) {
            init.append("/bin/busybox insmod /lib/modules/").append(Path.of(m).getFileName()).append('\n');
        }
        init.append("""
                i=0
                while [ ! -b /dev/vda ] && [ $i -lt 3000 ]; do /bin/busybox usleep 10000; i=$((i+1)); done
                /bin/busybox mount -t ext4 -o rw /dev/vda /newroot || { echo "%s"; /bin/busybox poweroff -f; }
                /bin/busybox umount /proc
                /bin/busybox mount --move /dev /newroot/dev
                exec /bin/busybox switch_root /newroot /sbin/init
                """.formatted(MOUNT_FAILED));
        Path tmp = out.resolveSibling(out.getFileName() + ".tmp");
        try (Cpio cpio = new Cpio(new GZIPOutputStream(new BufferedOutputStream(Files.newOutputStream(tmp)), 1 << 16))) {
            for (String d : new String[] {"bin", "dev", "proc", "sys", "newroot", "lib", "lib/modules"}) {
                cpio.directory(d);
            }
            cpio.file("bin/busybox", busybox, true);
            for (String m : modules) {
                cpio.file("lib/modules/" + Path.of(m).getFileName(),
                        Files.readAllBytes(Path.of("/lib/modules", version, m)), false);
            }
            cpio.file("init", init.toString().getBytes(StandardCharsets.US_ASCII), true);
        }
        Files.move(tmp, out, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    }

    private static void writeRootfs(Path dir, Path rootfs, byte[] busybox, long imageBytes, long bootSetBytes)
            throws IOException, InterruptedException {
        Path stage = dir.resolve("rootfs.d");
        deleteTree(stage);
        for (String d : new String[] {"bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "usr/share/boot", "data"}) {
            Files.createDirectories(stage.resolve(d));
        }
        Files.write(stage.resolve("bin/busybox"), busybox);
        stage.resolve("bin/busybox").toFile().setExecutable(true, false);
        String init = """
                #!/bin/busybox sh
                /bin/busybox mount -t proc proc /proc
                /bin/busybox cat /usr/share/boot/* > /dev/null
                # lazyblock.syncloop=N on the kernel's command line: write and sync N files first,
                # each announced with its checksum once sync (an NBD FLUSH) has returned.
                n=$(/bin/busybox sed -n 's/.*lazyblock.syncloop=\\([0-9]*\\).*/\\1/p' /proc/cmdline)
                if [ -n "$n" ]; then
                    /bin/busybox mkdir -p %s
                    i=1
                    while [ $i -le $n ]; do
                        /bin/busybox dd if=/dev/urandom of=%s/f$i bs=64k count=4 2>/dev/null
                        /bin/busybox sync
                        echo "%s $i $(/bin/busybox md5sum %s/f$i | /bin/busybox cut -d' ' -f1)"
                        /bin/busybox usleep 100000
                        i=$((i+1))
                    done
                fi
                echo "%s $(/bin/busybox cat /proc/sys/kernel/random/boot_id)" > %s
                /bin/busybox sync
                # Read-only before power-off: the journal is checkpointed, so the exported layer holds
                # the file in place (tools that do not replay a journal see it too).
                /bin/busybox mount -o remount,ro /
                echo %s
                /bin/busybox poweroff -f
                """.formatted(SYNCED_DIR, SYNCED_DIR, SYNCED, SYNCED_DIR, GUEST_TEXT, GUEST_FILE, MARKER);
        Files.writeString(stage.resolve("sbin/init"), init);
        stage.resolve("sbin/init").toFile().setExecutable(true, false);
        Files.writeString(stage.resolve("etc/hostname"), "lazyblock-guest\n");
        SplittableRandom random = new SplittableRandom(20261125);
        byte[] buf = new byte[1 << 20];
        long bootFiles = bootSetBytes / BOOT_FILE;
        for (int i = 0; i < bootFiles; i++) {
            writeRandom(stage.resolve(String.format("usr/share/boot/lib%04d.so", i)), BOOT_FILE, random, buf);
        }
        // Leave ~12% for ext4's metadata and the journal.
        long fill = imageBytes * 88 / 100 - bootFiles * BOOT_FILE - busybox.length;
        for (int i = 0; fill > 0; i++) {
            long n = Math.min(fill, FILL_FILE);
            writeRandom(stage.resolve(String.format("data/fill%04d", i)), n, random, buf);
            fill -= n;
        }
        Files.deleteIfExists(rootfs);
        run(List.of("mkfs.ext4", "-q", "-F", "-L", "lazyroot", "-E", "root_owner=0:0", "-d", stage.toString(),
                rootfs.toString(), Long.toString(imageBytes / 1024) + "k"));
        deleteTree(stage);
        log.info("built {}: {} bytes, boot set {} bytes", rootfs, Files.size(rootfs), bootFiles * BOOT_FILE);
    }

    private static void writeRandom(Path file, long n, SplittableRandom random, byte[] buf) throws IOException {
        try (OutputStream out = Files.newOutputStream(file)) {
            for (long done = 0; done < n; ) {
                int len = (int) Math.min(buf.length, n - done);
                for (int i = 0; i < len; i += 8) {
                    long v = random.nextLong();
                    for (int j = 0; j < 8 && i + j < len; j++) {
                        buf[i + j] = (byte) (v >>> (8 * j));
                    }
                }
                out.write(buf, 0, len);
                done += len;
            }
        }
    }

    static void run(List<String> command) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(10, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            throw new IOException(command.getFirst() + " did not finish in 10 minutes");
        }
        if (p.exitValue() != 0) {
            throw new IOException(String.join(" ", command) + " exited with " + p.exitValue() + ": "
                    + new String(out, StandardCharsets.UTF_8).strip());
        }
    }

    static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }
}
