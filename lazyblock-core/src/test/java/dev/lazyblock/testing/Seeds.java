package dev.lazyblock.testing;

import java.util.stream.LongStream;

/**
 * Seeds for randomized tests: fixed, so a failure replays; override with -Dlazyblock.seed=N.
 * Shared by every package's randomized tests.
 */
public final class Seeds {
    private Seeds() {}

    public static LongStream seeds(int count) {
        String fixed = System.getProperty("lazyblock.seed");
        if (fixed != null) {
            return LongStream.of(Long.parseLong(fixed));
        }
        return LongStream.range(0, count).map(i -> 0x9E3779B97F4A7C15L * (i + 1));
    }

    /** Runs {@code body}, and on failure says which seed replays it. */
    public static void replayable(long seed, ThrowingRunnable body) throws Exception {
        try {
            body.run();
        } catch (AssertionError | RuntimeException e) {
            throw new AssertionError("failed with seed " + seed
                    + " (replay: -Dlazyblock.seed=" + seed + "): " + e.getMessage(), e);
        }
    }

    public interface ThrowingRunnable {
        void run() throws Exception;
    }
}
