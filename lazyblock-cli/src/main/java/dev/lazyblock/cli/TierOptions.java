package dev.lazyblock.cli;

import dev.lazyblock.chunker.ChunkTier;
import dev.lazyblock.chunker.DiskBudget;
import dev.lazyblock.upstream.ConfigValues;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import picocli.CommandLine.Option;

/** The shared chunk tier's options, the same for every command that reads images (a picocli mixin). */
final class TierOptions {
    @Option(names = "--tier", paramLabel = "DIR",
            description = "A chunk cache shared by hosts (an NFS directory): misses read it before the store, "
                    + "fetched chunks are written to it in the background. Chunks are then fetched whole. "
                    + "A plain image's chunks are keyed by its name and version (ETag, generation, file mtime).")
    Path dir;

    @Option(names = "--tier-budget", paramLabel = "SIZE",
            description = "With --tier: bytes the tier and this host's open caches may use together (e.g. 200G); "
                    + "least recently used builds are evicted, never an open one.")
    String budget;

    @Option(names = "--tier-floor", paramLabel = "SIZE",
            description = "With --tier: free space to keep on the tier's file system (e.g. 10G).")
    String floor;

    /**
     * Puts {@code caches} behind the tier, if one was asked for.
     *
     * @return the tier, to close after the images (it waits for its queued writes), or null
     * @throws IllegalArgumentException naming the option whose value is not a size
     */
    ChunkTier open(Caches caches) throws IOException {
        if (dir == null) {
            return null;
        }
        long max = budget == null ? Long.MAX_VALUE : size("--tier-budget", budget);
        long min = floor == null ? 0 : size("--tier-floor", floor);
        ChunkTier t = new ChunkTier(dir);
        if (budget != null || floor != null) {
            DiskBudget b = new DiskBudget(max, min, t.dir());
            t.budget(b);
            b.rescanEvery(Duration.ofMinutes(1)); // other hosts write to the tier too
        }
        caches.useTier(t);
        return t;
    }

    private static long size(String option, String value) {
        try {
            return ConfigValues.size(value);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(option + ": " + e.getMessage(), e);
        }
    }
}
