package dev.lazyblock.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

class DemoCommandTest {
    @Test
    void demoReadsVerifiedBlocksAndReportsTheCache() {
        PrintStream saved = System.out;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int code;
        try {
            System.setOut(new PrintStream(out, true));
            code = new CommandLine(new Main()).execute("demo", "--image-mib", "16", "--reads", "20");
        } finally {
            System.setOut(saved);
        }
        String text = out.toString();
        assertEquals(0, code, text);
        assertEquals(20, text.lines().filter(l -> l.endsWith("  yes")).count(), text);
        assertFalse(text.contains("  NO"), text);
        assertTrue(text.contains("20 reads:"), text);
        assertTrue(text.contains("cache holds"), text);
    }
}
