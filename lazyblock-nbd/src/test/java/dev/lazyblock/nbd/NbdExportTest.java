package dev.lazyblock.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class NbdExportTest {
    @Test
    void validNames() {
        for (String ok : new String[] {"", "rootfs", "images/vm1/rootfs.ext4", "a..b", "..a", "日本語", "with space",
            "x".repeat(4096)}) {
            assertNull(NbdExport.invalidNameReason(ok), ok);
        }
    }

    @Test
    void invalidNames() {
        for (String bad : new String[] {"..", "/..", "a/../b", "a/..", "nul\0", "tab\t", "bell\u0007", "del\u007f",
            "line\u2028sep", "x".repeat(4097), "é".repeat(2049), "lone\ud800surrogate"}) {
            assertThrows(IllegalArgumentException.class, () -> NbdExport.validateName(bad), bad);
        }
    }

    @Test
    void wireNamesAreStrictUtf8() throws Exception {
        byte[] ok = "vm/日本".getBytes(StandardCharsets.UTF_8);
        assertEquals("vm/日本", NbdExport.decodeName(ok, 0, ok.length));
        byte[] bad = {'a', (byte) 0xc3, '('};
        var e = assertThrows(NbdExport.InvalidNameException.class, () -> NbdExport.decodeName(bad, 0, bad.length));
        assertTrue(e.getMessage().contains("UTF-8"));
    }

    @Test
    void aWritableExportNeedsAnOverlay() {
        GatedDevice d = new GatedDevice(new byte[10], -1);
        assertThrows(IllegalArgumentException.class, () -> new NbdExport("x", d, true, ""));
    }

    @Test
    void urisEncodeTheName() {
        assertEquals("vm1/root%20fs%25", NbdServer.encodePath("vm1/root fs%"));
    }
}
