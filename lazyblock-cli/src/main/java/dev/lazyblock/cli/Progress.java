package dev.lazyblock.cli;

import java.io.PrintStream;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A one-line progress display for long work: bytes done of the total, rate and ETA, redrawn at
 * most every 200 ms. Silent when the output is not a terminal (logs and pipes get no carriage
 * returns); {@link #finish} always prints one summary line.
 */
final class Progress {
    private final PrintStream out;
    private final String what;
    private final long total;
    private final boolean live;
    private final long started = System.nanoTime();
    private final AtomicLong done = new AtomicLong();
    /** Bytes done before this run (resumed, already cached): counted as done, not in the rate. */
    private final AtomicLong skipped = new AtomicLong();
    private volatile long lastDraw;

    Progress(PrintStream out, String what, long total, boolean live) {
        this.out = out;
        this.what = what;
        this.total = total;
        this.live = live;
    }

    /** Live only on a terminal. */
    static Progress onTerminal(PrintStream out, String what, long total) {
        return new Progress(out, what, total, System.console() != null && System.console().isTerminal());
    }

    void add(long bytes) {
        long d = done.addAndGet(bytes);
        long now = System.nanoTime();
        if (live && now - lastDraw > 200_000_000L) {
            lastDraw = now;
            synchronized (this) {
                out.print("\r" + line(d, now) + "   ");
                out.flush();
            }
        }
    }

    /** Counts {@code bytes} as done without doing them now: they do not raise the rate. */
    void skip(long bytes) {
        skipped.addAndGet(bytes);
        done.addAndGet(bytes);
    }

    long done() {
        return done.get();
    }

    String line(long d, long now) {
        double secs = Math.max(1e-3, (now - started) / 1e9);
        double rate = Math.max(0, d - skipped.get()) / secs;
        String eta = rate > 0 && d < total ? String.format("ETA %.0f s", (total - d) / rate) : "";
        return String.format("%s: %s of %s (%.0f%%), %s/s %s", what, human(d), human(total),
                total == 0 ? 100.0 : 100.0 * d / total, human((long) rate), eta).trim();
    }

    void finish() {
        synchronized (this) {
            out.print((live ? "\r" : "") + line(done.get(), System.nanoTime()) + (live ? "   " : "") + System.lineSeparator());
            out.flush();
        }
    }

    static String human(long bytes) {
        if (bytes < 1024) {
            return bytes + " B";
        }
        String units = "KMGTPE";
        int u = (63 - Long.numberOfLeadingZeros(bytes)) / 10;
        return String.format("%.1f %siB", bytes / (double) (1L << (10 * u)), units.charAt(u - 1));
    }
}
