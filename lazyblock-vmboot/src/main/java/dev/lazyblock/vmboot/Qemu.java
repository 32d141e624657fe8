package dev.lazyblock.vmboot;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Boots {@code qemu-system-x86_64} on a {@link BootImage}'s kernel and initramfs with the root
 * disk given as a {@code -drive} spec (an NBD URI or a local file), and times the guest's marker
 * line on its serial console.
 */
public final class Qemu {
    private static final Logger log = LoggerFactory.getLogger(Qemu.class);
    private static final Duration PROBE = Duration.ofSeconds(20);

    /** How the guest runs, and why. */
    public record Accel(String name, String why) {
        @Override
        public String toString() {
            return name + " (" + why + ")";
        }
    }

    /** One boot: nanoseconds from starting qemu to the marker (-1 if it never came), and the console. */
    public record Boot(long nanosToMarker, int exit, String console) {
        public boolean reachedMarker() {
            return nanosToMarker >= 0;
        }

        public double seconds() {
            return nanosToMarker / 1e9;
        }
    }

    private static Accel accel;

    private Qemu() {}

    /**
     * KVM when {@code /dev/kvm} opens and a guest kernel actually runs on it (prints its banner
     * within 20 s), TCG otherwise. Some hosts expose a /dev/kvm that cannot run an ordinary
     * kernel (nested "PVM" KVM runs only kernels built for it): the probe catches that.
     */
    public static synchronized Accel accel(BootImage image) throws IOException, InterruptedException {
        if (accel != null) {
            return accel;
        }
        Path kvm = Path.of("/dev/kvm");
        if (!Files.isReadable(kvm) || !Files.isWritable(kvm)) {
            accel = new Accel("TCG", "/dev/kvm is missing or not usable");
        } else {
            List<String> cmd = base(image, "kvm", "console=ttyS0 earlyprintk=ttyS0 panic=-1");
            Boot probe = run(cmd, "Linux version", PROBE, true);
            accel = probe.reachedMarker()
                    ? new Accel("KVM", "a kernel booted on /dev/kvm")
                    : new Accel("TCG", "/dev/kvm opens but the kernel printed nothing on it in " + PROBE.toSeconds()
                            + " s (nested KVM that cannot run this kernel)");
        }
        log.info("guests run under {}", accel);
        return accel;
    }

    private static List<String> base(BootImage image, String accelName, String append) {
        List<String> cmd = new ArrayList<>(List.of("qemu-system-x86_64", "-accel", accelName, "-m", "512",
                "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
                "-no-reboot", "-kernel", image.kernel().toString(), "-initrd", image.initrd().toString(),
                "-append", append));
        return cmd;
    }

    /**
     * Boots the image with its root disk at {@code drive} (a qemu -drive spec without {@code if}),
     * returning when the guest powered off, or killing it at {@code timeout}.
     */
    public static Boot boot(BootImage image, String drive, Duration timeout) throws IOException, InterruptedException {
        return boot(image, drive, "", timeout, line -> {});
    }

    /**
     * {@link #boot(BootImage, String, Duration)} with {@code append} added to the kernel's command
     * line (e.g. {@code lazyblock.syncloop=20}), each console line given to {@code onLine} as it comes.
     */
    public static Boot boot(BootImage image, String drive, String append, Duration timeout,
                            java.util.function.Consumer<String> onLine) throws IOException, InterruptedException {
        Accel a = accel(image);
        List<String> cmd = base(image, a.name().toLowerCase(java.util.Locale.ROOT),
                ("console=ttyS0 panic=-1 quiet " + append).strip());
        cmd.addAll(List.of("-drive", drive + ",if=virtio"));
        return run(cmd, BootImage.MARKER, timeout, false, onLine);
    }

    private static Boot run(List<String> cmd, String marker, Duration timeout, boolean killAtMarker)
            throws IOException, InterruptedException {
        return run(cmd, marker, timeout, killAtMarker, line -> {});
    }

    private static Boot run(List<String> cmd, String marker, Duration timeout, boolean killAtMarker,
                            java.util.function.Consumer<String> onLine) throws IOException, InterruptedException {
        long t0 = System.nanoTime();
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        StringBuilder console = new StringBuilder();
        long[] at = {-1};
        Thread reader = Thread.ofPlatform().daemon().name("qemu-console").start(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null; ) {
                    synchronized (console) {
                        if (at[0] < 0 && line.contains(marker)) {
                            at[0] = System.nanoTime() - t0;
                            if (killAtMarker) {
                                p.destroyForcibly();
                            }
                        }
                        console.append(line).append('\n');
                    }
                    onLine.accept(line);
                }
            } catch (IOException e) {
                // qemu is gone
            }
        });
        if (!p.waitFor(timeout.toNanos(), TimeUnit.NANOSECONDS)) {
            log.warn("qemu still running after {} s: killed", timeout.toSeconds());
            p.destroyForcibly();
            p.waitFor(10, TimeUnit.SECONDS);
        }
        reader.join(TimeUnit.SECONDS.toMillis(10));
        synchronized (console) {
            return new Boot(at[0], p.isAlive() ? -1 : p.exitValue(), console.toString());
        }
    }
}
