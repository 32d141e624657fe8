package dev.lazyblock.s3;

import java.util.stream.LongStream;

/**
 * Seeds for randomized tests, as in core's tests: fixed, so a failure replays; override with
 * {@code -Dlazyblock.seed=N}.
 */
final class Seeds {
    private Seeds() {}

    static LongStream seeds(int count) {
        String fixed = System.getProperty("lazyblock.seed");
        if (fixed != null) {
            return LongStream.of(Long.parseLong(fixed));
        }
        return LongStream.range(0, count).map(i -> 0x9E3779B97F4A7C15L * (i + 1));
    }

    /** Runs {@code body}, and on failure says which seed replays it. */
    static void replayable(long seed, ThrowingRunnable body) throws Exception {
        try {
            body.run();
        } catch (AssertionError | RuntimeException e) {
            throw new AssertionError("failed with seed " + seed
                    + " (replay: -Dlazyblock.seed=" + seed + "): " + e.getMessage(), e);
        }
    }

    interface ThrowingRunnable {
        void run() throws Exception;
    }
}
