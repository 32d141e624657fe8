package dev.lazyblock.cli;

import dev.lazyblock.upstream.UpstreamProvider;
import dev.lazyblock.upstream.Upstreams;
import dev.lazyblock.device.LayerHeader;
import dev.lazyblock.device.LayerHeader.Build;
import dev.lazyblock.device.LayerHeader.Mapping;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.frame.FrameCodecs;
import dev.lazyblock.frame.FrameTable;
import dev.lazyblock.content.ContentTable;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** Prints a layer header: identity, builds, and what each range of the image maps to. */
@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = {"Prints a layered image's header: its build and parent, the builds it references",
                "(size, stored size and compression ratio, SHA-256, bytes mapped), and its",
                "mappings (range -> build + offset, or zeros). With a second header OTHER, also",
                "the stored bytes the two share and those unique to each: content-addressed",
                "chunks by their hash, other builds by their id."},
        footer = {"", "Examples:", "  lazyblock inspect images/vm1/3f2c...header",
                "  lazyblock inspect images/a/3f2c...header images/b/91d0...header",
                "  lazyblock inspect s3://bucket/images/vm1/3f2c...header --mappings 20"})
final class InspectCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "HEADER", description = "Path or URL (file, https, s3) of a layer header.")
    String header;

    @Parameters(index = "1", arity = "0..1", paramLabel = "OTHER",
            description = "A second header to compare with: shared and unique stored bytes.")
    String other;

    @Option(names = "--mappings", defaultValue = "50", description = "Mappings to list, -1 for all (default ${DEFAULT-VALUE}).")
    int mappings;

    @Override
    public Integer call() throws Exception {
        UpstreamProvider.StoreAndKey sk;
        try {
            sk = Upstreams.store(header);
        } catch (IllegalArgumentException e) {
            System.err.println("lazyblock inspect: " + e.getMessage());
            return 2;
        }
        LayerHeader h;
        try (var store = sk.store()) {
            h = LayeredImage.readHeader(store, sk.key());
        } catch (LayerHeader.HeaderFormatException e) {
            System.err.println("lazyblock inspect: " + e.getMessage());
            return 1;
        }
        LayerHeader o = null;
        if (other != null) {
            UpstreamProvider.StoreAndKey osk;
            try {
                osk = Upstreams.store(other);
            } catch (IllegalArgumentException e) {
                System.err.println("lazyblock inspect: " + e.getMessage());
                return 2;
            }
            try (var store = osk.store()) {
                o = LayeredImage.readHeader(store, osk.key());
            } catch (LayerHeader.HeaderFormatException e) {
                System.err.println("lazyblock inspect: " + other + ": " + e.getMessage());
                return 1;
            }
        }
        System.out.printf("layer %s%n  parent     %s%n  generation %d%n  image      %,d bytes, %,d-byte blocks%n",
                h.buildId(), h.hasParent() ? h.parentId() : "(none: a base image)", h.generation(), h.imageSize(),
                h.blockSize());
        long[] mapped = new long[h.builds().size()];
        long zeros = 0;
        for (Mapping m : h.mappings()) {
            if (m.isZero()) {
                zeros += m.length();
            } else {
                mapped[m.build()] += m.length();
            }
        }
        System.out.printf("  header     version %d%n", h.version());
        System.out.printf("%n  %-36s %15s %15s %15s %-28s  %s%n", "build", "diff bytes", "stored bytes", "bytes mapped",
                "compression", "sha-256");
        long raw = 0;
        long stored = 0;
        for (int i = 0; i < h.builds().size(); i++) {
            Build b = h.builds().get(i);
            raw += b.size();
            stored += b.storedSize();
            String how = "none";
            if (b.compressed()) {
                FrameTable t = b.frames();
                String codec;
                try {
                    codec = FrameCodecs.byId(t.codec()).name();
                } catch (IllegalArgumentException e) {
                    codec = "codec " + t.codec();
                }
                how = String.format("%s %.2fx, %,d x %d KiB", codec, ratio(b.size(), b.storedSize()), t.frames(),
                        t.frameSize() >> 10);
            } else if (b.contentAddressed()) {
                ContentTable t = b.content();
                how = String.format("chunks %s%,d x %d KiB, %,d distinct", t.codec() == 0 ? "" : codecName(t.codec()) + " ",
                        t.chunks(), t.chunkSize() >> 10, stored(h, i).size());
            }
            System.out.printf("  %-36s %,15d %,15d %,15d %-28s  %s%s%n", b.id(), b.size(), b.storedSize(), mapped[i], how,
                    HexFormat.of().formatHex(b.sha256()), b.id().equals(h.buildId()) ? "  (this layer)" : "");
        }
        System.out.printf("  %-36s %15s %15s %,15d%n", "zeros (stored nowhere)", "", "", zeros);
        System.out.printf("  %-36s %,15d %,15d %15s ratio %.2fx (%.1f%% of the diff bytes stored)%n", "all builds", raw,
                stored, "", ratio(raw, stored), raw == 0 ? 100.0 : 100.0 * stored / raw);
        if (o != null) {
            compare(h, o);
        }
        int n = mappings < 0 ? h.mappings().size() : Math.min(mappings, h.mappings().size());
        System.out.printf("%n  %,d mappings%s:%n", h.mappings().size(), n < h.mappings().size() ? ", the first " + n : "");
        for (int i = 0; i < n; i++) {
            Mapping m = h.mappings().get(i);
            System.out.printf("  [%,16d, %,16d)  %s%n", m.offset(), m.end(), m.isZero() ? "zeros"
                    : h.builds().get(m.build()).id() + " @ " + String.format("%,d", m.buildOffset()));
        }
        return 0;
    }

    /**
     * What build {@code i} of {@code h} stores, as units that two headers can share: each
     * distinct chunk object of a content-addressed build (by hash), else the build's one diff
     * object (by id); the value is its stored bytes.
     */
    static Map<Object, Long> stored(LayerHeader h, int i) {
        Map<Object, Long> units = new HashMap<>();
        Build b = h.builds().get(i);
        if (b.contentAddressed()) {
            ContentTable t = b.content();
            for (int c = 0; c < t.chunks(); c++) {
                if (!t.isZero(c)) {
                    units.put(t.key(c), (long) t.storedSize(c));
                }
            }
        } else if (b.size() > 0) {
            units.put(b.id(), b.storedSize());
        }
        return units;
    }

    static Map<Object, Long> stored(LayerHeader h) {
        Map<Object, Long> all = new HashMap<>();
        for (int i = 0; i < h.builds().size(); i++) {
            all.putAll(stored(h, i));
        }
        return all;
    }

    /** Shared and unique stored bytes of two headers. */
    private static void compare(LayerHeader a, LayerHeader b) {
        Map<Object, Long> ua = stored(a);
        Map<Object, Long> ub = stored(b);
        long shared = 0;
        long onlyA = 0;
        long sharedUnits = 0;
        for (Map.Entry<Object, Long> e : ua.entrySet()) {
            if (ub.containsKey(e.getKey())) {
                shared += e.getValue();
                sharedUnits++;
            } else {
                onlyA += e.getValue();
            }
        }
        long onlyB = 0;
        for (Map.Entry<Object, Long> e : ub.entrySet()) {
            if (!ua.containsKey(e.getKey())) {
                onlyB += e.getValue();
            }
        }
        long total = shared + onlyA + onlyB;
        System.out.printf("%n  compared with layer %s (stored bytes, each object once)%n", b.buildId());
        System.out.printf("  %-36s %,15d  %,d objects%n", "shared", shared, sharedUnits);
        System.out.printf("  %-36s %,15d  %,d objects%n", "only in this layer", onlyA, ua.size() - sharedUnits);
        System.out.printf("  %-36s %,15d  %,d objects%n", "only in the other", onlyB, ub.size() - sharedUnits);
        System.out.printf("  %-36s %,15d  %.1f%% of the two shared (%,d bytes if stored apart)%n", "both, stored once",
                total, total == 0 ? 0.0 : 100.0 * shared / total, total + shared);
    }

    private static String codecName(int id) {
        try {
            return FrameCodecs.byId(id).name();
        } catch (IllegalArgumentException e) {
            return "codec " + id;
        }
    }

    private static double ratio(long raw, long stored) {
        return stored == 0 ? 1.0 : (double) raw / stored;
    }
}
