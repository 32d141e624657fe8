package dev.lazyblock.cli;

import dev.lazyblock.content.ContentCollector;
import dev.lazyblock.content.ContentLocks;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.upstream.ConfigValues;
import dev.lazyblock.upstream.ObjectStore;
import dev.lazyblock.upstream.UpstreamProvider;
import dev.lazyblock.upstream.Upstreams;
import java.time.Duration;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** Deletes the content-addressed chunks under a layer directory that no header there references. */
@Command(name = "gc", mixinStandardHelpOptions = true,
        description = {"Deletes the content-addressed chunks under DIR (DIR/chunks/) that no header in DIR",
                "references and that are older than --grace. Safe beside exports to DIR from any host:",
                "it takes a lock in DIR and gives up (exit 3, nothing deleted) while an export holds one,",
                "and exports wait while it runs. Nothing is deleted if a header in DIR does not parse."},
        footer = {"", "Examples:", "  lazyblock gc /srv/layers --dry-run", "  lazyblock gc s3://bucket/images --grace 2h"})
final class GcCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "DIR", description = "A layer directory: a path or s3://bucket/prefix.")
    String dir;

    @Option(names = "--grace", defaultValue = "1h", description = "Keep unreferenced chunks younger than this "
            + "(default ${DEFAULT-VALUE}).")
    String grace;

    @Option(names = "--dry-run", description = "Say what would be deleted; delete nothing.")
    boolean dryRun;

    @Override
    public Integer call() throws Exception {
        Duration g;
        try {
            g = ConfigValues.duration(grace);
        } catch (IllegalArgumentException e) {
            System.err.println("lazyblock gc: " + e.getMessage());
            return 2;
        }
        String base = dir.endsWith("/") ? dir.substring(0, dir.length() - 1) : dir;
        UpstreamProvider.StoreAndKey at;
        try {
            at = Upstreams.store(base + "/layer.header");
        } catch (IllegalArgumentException e) {
            System.err.println("lazyblock gc: " + e.getMessage());
            return 2;
        }
        try (ObjectStore store = at.store()) {
            ContentCollector.Result r = ContentCollector.collect(store, LayeredImage.dirOf(at.key()), g,
                    ContentLocks.DEFAULT_TTL, dryRun);
            System.out.println("gc " + store.name() + ": " + r);
            return 0;
        } catch (ContentCollector.BusyException e) {
            System.err.println("lazyblock gc: " + e.getMessage());
            return 3;
        } catch (UnsupportedOperationException e) {
            System.err.println("lazyblock gc: " + e.getMessage() + "; garbage collection needs a store that lists");
            return 2;
        }
    }
}
