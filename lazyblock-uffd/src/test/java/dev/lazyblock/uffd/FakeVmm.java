package dev.lazyblock.uffd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/** Builds src/test/c/fake_vmm.c (the test VMM that plays Firecracker's part) with gcc. */
final class FakeVmm {
    private FakeVmm() {}

    /** The binary, compiled into {@code dir}. */
    static Path build(Path dir) throws Exception {
        Path vmm = dir.resolve("fake_vmm");
        Process cc = new ProcessBuilder("gcc", "-O2", "-Wall", "-pthread", "-o", vmm.toString(),
                Path.of("src/test/c/fake_vmm.c").toAbsolutePath().toString()).redirectErrorStream(true).start();
        String out = new String(cc.getInputStream().readAllBytes());
        assertTrue(cc.waitFor(60, TimeUnit.SECONDS), "gcc finished");
        assertEquals(0, cc.exitValue(), "gcc failed: " + out);
        return vmm;
    }
}
