package dev.lazyblock.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * bench nbd on a small image against the real tools (nbdcopy, nbdkit, dd, fio): every table comes
 * out with figures in it and the work directory is removed. Figures are not judged here.
 */
class NbdBenchCommandTest {
    @TempDir
    Path dir;

    @Test
    void printsThroughputBesideNbdkitAndDdAndIopsAtBothQueueDepths() throws Exception {
        WarmCommandTest.Run r = WarmCommandTest.run(new Main(), "bench", "nbd", "--image-mib", "16", "--rounds", "1",
                "--no-cold", "--iops-seconds", "1", "--dir", dir.toString());
        assertEquals(0, r.exit(), r.err());
        assertTrue(Pattern.compile("(?m)^median +[\\d,]+ +[\\d,]+ +[\\d.]+$").matcher(r.out()).find(), r.out());
        assertTrue(Pattern.compile("dd if=<our cache file>.*median [\\d,]+ MiB/s").matcher(r.out()).find(), r.out());
        for (String row : new String[] {"lazyblock serve \\(nbd engine\\)", "nbdkit file \\(nbd engine\\)",
                "cache file \\((psync|io_uring)\\)"}) {
            for (int qd : new int[] {1, 32}) {
                assertTrue(Pattern.compile("(?m)^" + row + " +" + qd + " +[\\d,]+ +[\\d.]+ +[\\d.]+ +[\\d.]+$")
                        .matcher(r.out()).find(), row + " at QD" + qd + ": " + r.out());
            }
        }
        try (var left = Files.list(dir)) {
            assertEquals(0, left.count(), "the bench's work directory is removed");
        }
    }

    @Test
    void readsFiosTerseLine() throws Exception {
        StringBuilder line = new StringBuilder("3;fio-3.33;randread;0;0;193596;96749;24187;2001;0;0;0.0;0.0;19;2945;"
                + "40.758336;18.697037");
        String[] pct = {"1.000000%=35", "5.000000%=36", "99.000000%=64", "99.500000%=72"};
        for (int i = 0; i < 20; i++) {
            line.append(';').append(i < pct.length ? pct[i] : "0%=0");
        }
        line.append(";19;2945;40.797545;18.699526;91064");
        IopsRun.Result r = IopsRun.parseTerse("fio: connected to NBD server\n" + line + "\n");
        assertEquals(24187, r.iops());
        assertEquals(40.758336, r.meanMicros());
        assertEquals(64, r.p99Micros());
    }
}
