package dev.lazyblock.cli;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.content.ContentCache;
import dev.lazyblock.content.ContentIndex;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.device.LayerExporter.ContentAddressing;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.upstream.DirectoryStore;
import dev.lazyblock.upstream.SimulatedUpstream.LatencyModel;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * What content addressing saves: a base root image, derived images (the base with different
 * package sets written into it), and two memory snapshots of one guest, each published as its own
 * image, then all booted on one host; stored bytes and bytes fetched, with one diff object per
 * image against content-addressed chunks, at two chunk sizes.
 */
@Command(name = "dedup", mixinStandardHelpOptions = true,
        description = {"Stored bytes, and bytes a host fetches booting every image, for a base ext4 image",
                "(mkfs.ext4 -d of real files), derived images (the base plus a package set each,",
                "written with debugfs) and two memory snapshots of one guest (synthetic: page-cache",
                "pages of real files, anonymous and zero pages; the second after the guest ran on):",
                "one diff object per image against content-addressed chunks, at each chunk size."},
        footer = {"", "Examples:", "  lazyblock bench dedup", "  lazyblock bench dedup --chunk-kib 4096,512,128"})
final class DedupBenchCommand implements Callable<Integer> {
    @Option(names = "--image-mib", defaultValue = "256", description = "Disk image size (default ${DEFAULT-VALUE}).")
    int imageMib;

    @Option(names = "--base-from", split = ",", defaultValue = "/usr/lib/python3.11,/usr/share/perl",
            description = "Directories the base image is built from (default ${DEFAULT-VALUE}).")
    List<Path> baseFrom;

    @Option(names = "--packages-from", split = ",", defaultValue = "/usr/share/man,/usr/share/doc,/usr/share/locale",
            description = "One directory per derived image: its files are the package set (default ${DEFAULT-VALUE}).")
    List<Path> packagesFrom;

    @Option(names = "--package-mib", defaultValue = "24", description = "Bytes taken from each package directory "
            + "(default ${DEFAULT-VALUE} MiB).")
    int packageMib;

    @Option(names = "--memory-mib", defaultValue = "128", description = "Guest memory size (default ${DEFAULT-VALUE}).")
    int memoryMib;

    @Option(names = "--chunk-kib", split = ",", defaultValue = "4096,512",
            description = "Chunk sizes compared (default ${DEFAULT-VALUE}).")
    List<Integer> chunkKib;

    @Option(names = "--boot-percent", defaultValue = "5",
            description = "Share of each image's extents a boot reads, its non-zero blocks (default ${DEFAULT-VALUE}).")
    int bootPercent;

    @Option(names = "--boot-extent-kib", defaultValue = "256",
            description = "A boot reads whole extents of this size, as a boot reads files (default ${DEFAULT-VALUE}).")
    int bootExtentKib;

    @Option(names = "--dir", description = "Work directory (default: the temp directory).")
    Path dir;

    static final int BLOCK = 4096;

    record Image(String name, Path file) {}

    /**
     * @param held   bytes this host's disk holds for the booted images: the builds' cache files
     *               (allocated blocks) and the content cache's chunk files
     * @param copies what it would hold if each build kept its own copy of what it read
     */
    record Row(String layout, long stored, long nonZero, long fetched, long requests, long held, long copies) {}

    @Override
    public Integer call() throws Exception {
        for (int kib : chunkKib) {
            try {
                ContentAddressing.of(kib << 10);
            } catch (IllegalArgumentException e) {
                System.err.println("lazyblock bench dedup: --chunk-kib: " + e.getMessage());
                return 2;
            }
        }
        Path work = Files.createTempDirectory(dir == null ? Path.of(System.getProperty("java.io.tmpdir")) : dir,
                "lazyblock-dedup-");
        try {
            List<Image> images = images(work);
            List<Row> rows = new ArrayList<>();
            for (int kib : chunkKib) {
                rows.add(row(work, images, kib << 10, false));
                rows.add(row(work, images, kib << 10, true));
            }
            long logical = 0;
            for (Image i : images) {
                logical += Files.size(i.file());
            }
            System.out.printf("%n%d images, %,d bytes in all; a boot reads the non-zero blocks of %d%% of each image's "
                    + "%d KiB extents, the same extents in every image%n%n", images.size(), logical, bootPercent,
                    bootExtentKib);
            System.out.println("| layout | stored bytes | vs one object per image | stored / non-zero chunks | fetched "
                    + "booting all | vs one object per image | store requests | held on the host | vs a copy per "
                    + "build |");
            System.out.println("|---|---|---|---|---|---|---|---|---|");
            Row ref = rows.getFirst();
            for (Row r : rows) {
                Row same = rows.get(rows.indexOf(r) & ~1); // the diff-object row of the same chunk size
                System.out.printf("| %s | %,d | %.2fx | %s | %,d | %.2fx | %,d | %,d | %.2fx |%n", r.layout(),
                        r.stored(), (double) r.stored() / same.stored(), r.nonZero() == 0 ? "-"
                                : String.format("%.2fx", (double) r.stored() / r.nonZero()), r.fetched(),
                        (double) r.fetched() / same.fetched(), r.requests(), r.held(),
                        (double) r.held() / r.copies());
            }
            Row best = rows.stream().filter(r -> r.layout().startsWith("content")).min(
                    java.util.Comparator.comparingLong(Row::stored)).orElseThrow();
            System.out.printf("%nbest content-addressed layout (%s) stores %.2fx and fetches %.2fx of %s%n",
                    best.layout(), (double) best.stored() / ref.stored(), (double) best.fetched() / ref.fetched(),
                    ref.layout());
            return 0;
        } finally {
            TiersBenchCommand.deleteTree(work);
        }
    }

    /** Publishes every image into a fresh store in one layout, then boots them all on one host. */
    private Row row(Path work, List<Image> images, int chunk, boolean content) throws Exception {
        String layout = (content ? "content-addressed, " : "one object per image, ") + (chunk >> 10) + " KiB chunks";
        Path root = work.resolve("store-" + (content ? "cas-" : "obj-") + chunk);
        Path caches = Files.createDirectories(work.resolve("caches-" + (content ? "cas-" : "obj-") + chunk));
        try (TiersBenchCommand.ModelStore store = new TiersBenchCommand.ModelStore(new DirectoryStore(root), LatencyModel.NONE)) {
            List<String> headers = new ArrayList<>();
            long nonZero = 0; // what the content-addressed layout would store without sharing a chunk
            for (Image i : images) {
                LayerExporter.Layer l = LayerExporter.publishBase(i.file(), BLOCK, store, "fleet", n -> { },
                        LayerExporter.Compression.NONE, content ? ContentAddressing.of(chunk) : ContentAddressing.NONE);
                headers.add(l.headerKey());
                if (l.content() != null) {
                    nonZero += l.content().table().storedBytes();
                }
            }
            long stored = treeBytes(root);
            ChunkerOptions options = ChunkerOptions.DEFAULTS.withChunkSize(chunk).withContentIndex(new ContentIndex());
            List<LayeredImage> open = new ArrayList<>();
            long held = 0;
            long copies = 0;
            try (ContentCache files = content ? new ContentCache(caches.resolve("content"), Long.MAX_VALUE) : null) {
                if (files != null) {
                    options = options.withContentCache(files);
                }
                try {
                    for (int k = 0; k < images.size(); k++) {
                        LayeredImage img = LayeredImage.open(store, headers.get(k), ChunkerKind.FULL_FETCH, options,
                                (id, size, bs) -> SparseCache.create(caches.resolve(UUID.randomUUID() + ".cache"), size,
                                        bs, bs), null);
                        open.add(img);
                        boot(img, images.get(k).file());
                    }
                    for (LayeredImage img : open) {
                        for (Chunker c : img.chunkers()) {
                            held += c.cache().fileSize();
                            copies += c.cache().presence().cardinality() * c.cache().granularity();
                        }
                    }
                    held += files == null ? 0 : files.bytes();
                } finally {
                    open.forEach(LayeredImage::close);
                }
            }
            System.out.printf("%s: stored %,d bytes, fetched %,d in %,d requests, held %,d on the host (%,d as a copy "
                    + "per build)%n", layout, stored, store.bytes(), store.requests(), held, copies);
            TiersBenchCommand.deleteTree(root);
            TiersBenchCommand.deleteTree(caches);
            return new Row(layout, stored, nonZero, store.bytes(), store.requests(), held, copies);
        }
    }

    /**
     * Reads the boot set: the non-zero blocks of the chosen extents, the same extents in every
     * image (a derived image boots like its base).
     */
    private void boot(LayeredImage img, Path file) throws IOException {
        byte[] block = new byte[BLOCK];
        ByteBuffer src = ByteBuffer.allocate(BLOCK);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long blocks = img.size() / BLOCK;
            long perExtent = Math.max(1, ((long) bootExtentKib << 10) / BLOCK);
            for (long b = 0; b < blocks; b++) {
                if (Long.remainderUnsigned(mix(b / perExtent), 100) >= bootPercent || img.isZero(b * BLOCK, BLOCK)) {
                    continue;
                }
                src.clear();
                ch.read(src, b * BLOCK);
                if (isZero(src.array())) {
                    continue;
                }
                img.readAt(block, 0, BLOCK, b * BLOCK);
                if (!java.util.Arrays.equals(block, src.array())) {
                    throw new IOException("block " + b + " of " + file + " read back wrong");
                }
            }
        }
    }

    private static long mix(long x) {
        x = (x ^ (x >>> 33)) * 0xff51afd7ed558ccdL;
        x = (x ^ (x >>> 33)) * 0xc4ceb9fe1a85ec53L;
        return x ^ (x >>> 33);
    }

    private static boolean isZero(byte[] b) {
        for (byte x : b) {
            if (x != 0) {
                return false;
            }
        }
        return true;
    }

    private static long treeBytes(Path root) throws IOException {
        try (Stream<Path> s = Files.walk(root)) {
            long sum = 0;
            for (Path p : s.filter(Files::isRegularFile).toList()) {
                sum += Files.size(p);
            }
            return sum;
        }
    }

    // ------------------------------------------------------------------ the images

    private List<Image> images(Path work) throws Exception {
        List<Image> out = new ArrayList<>();
        Path stage = Files.createDirectories(work.resolve("stage"));
        long budget = (long) imageMib << 20;
        copyFiles(baseFrom, stage, budget * 6 / 10);
        Path base = work.resolve("base.ext4");
        String uuid = "11111111-2222-3333-4444-555555555555";
        exec(List.of("mkfs.ext4", "-q", "-F", "-b", "4096", "-U", uuid, "-E", "hash_seed=" + uuid + ",root_owner=0:0",
                "-d", stage.toString(), base.toString(), imageMib + "M"), "mkfs.ext4 -d (is e2fsprogs installed? "
                + "bin/install-tools)");
        TiersBenchCommand.deleteTree(stage);
        out.add(new Image("base", base));
        for (int k = 0; k < packagesFrom.size(); k++) {
            Path derived = Files.copy(base, work.resolve("derived-" + k + ".ext4"));
            List<String> cmds = new ArrayList<>();
            cmds.add("mkdir pkg" + k);
            long used = 0;
            for (Path f : files(packagesFrom.get(k))) {
                long size = Files.size(f);
                if (used + size > ((long) packageMib << 20)) {
                    break;
                }
                String name = f.toString().substring(1).replace('/', '_');
                if (name.matches(".*[\\s\"'].*")) {
                    continue;
                }
                cmds.add("write " + f + " pkg" + k + "/" + name);
                used += size;
            }
            Path script = Files.write(work.resolve("debugfs-" + k), cmds);
            exec(List.of("debugfs", "-w", "-f", script.toString(), derived.toString()), "debugfs write");
            out.add(new Image("base + " + packagesFrom.get(k), derived));
            System.out.printf("derived image %d: base + %,d bytes of %s%n", k, used, packagesFrom.get(k));
        }
        Path[] snaps = memorySnapshots(work);
        out.add(new Image("memory snapshot 1", snaps[0]));
        out.add(new Image("memory snapshot 2", snaps[1]));
        return out;
    }

    /**
     * Guest memory, synthetic: 40% zero pages, 40% page-cache pages (pages of real files), 20%
     * anonymous (random); the second snapshot after the guest ran on: 10% of its non-zero pages
     * rewritten, 5% of its zero pages filled.
     */
    private Path[] memorySnapshots(Path work) throws IOException {
        int pages = (int) (((long) memoryMib << 20) / BLOCK);
        List<Path> sources = files(Path.of("/usr/bin"));
        SplittableRandom r = new SplittableRandom(2026);
        Path one = work.resolve("memory-1.snap");
        Path two = work.resolve("memory-2.snap");
        byte[] page = new byte[BLOCK];
        try (FileChannel a = FileChannel.open(one, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
             FileChannel b = FileChannel.open(two, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            a.truncate((long) pages * BLOCK);
            b.truncate((long) pages * BLOCK);
            for (int p = 0; p < pages; p++) {
                int kind = r.nextInt(10);
                boolean zero = kind < 4;
                if (!zero) {
                    if (kind < 8 && !sources.isEmpty()) {
                        Path f = sources.get(r.nextInt(sources.size()));
                        try (FileChannel src = FileChannel.open(f, StandardOpenOption.READ)) {
                            long n = Math.max(1, src.size() / BLOCK);
                            java.util.Arrays.fill(page, (byte) 0);
                            src.read(ByteBuffer.wrap(page), r.nextLong(n) * BLOCK);
                        }
                    } else {
                        r.nextBytes(page);
                    }
                    a.write(ByteBuffer.wrap(page), (long) p * BLOCK);
                }
                boolean changed = zero ? r.nextInt(20) == 0 : r.nextInt(10) == 0;
                if (changed) {
                    byte[] other = new byte[BLOCK];
                    r.nextBytes(other);
                    b.write(ByteBuffer.wrap(other), (long) p * BLOCK);
                } else if (!zero) {
                    b.write(ByteBuffer.wrap(page), (long) p * BLOCK);
                }
            }
        }
        return new Path[] {one, two};
    }

    /** Regular files under {@code root}, sorted by path. */
    private static List<Path> files(Path root) throws IOException {
        if (!Files.isDirectory(root)) {
            return List.of();
        }
        try (Stream<Path> s = Files.walk(root)) {
            return s.filter(Files::isRegularFile).filter(p -> !Files.isSymbolicLink(p)).sorted().toList();
        }
    }

    /** Copies regular files from {@code dirs} (flattened names) into {@code stage}, up to {@code budget} bytes. */
    private static void copyFiles(List<Path> dirs, Path stage, long budget) throws IOException {
        long used = 0;
        for (Path d : dirs) {
            for (Path f : files(d)) {
                long size = Files.size(f);
                if (used + size > budget) {
                    return;
                }
                Files.copy(f, stage.resolve(f.toString().substring(1).replace('/', '_')));
                used += size;
            }
        }
    }

    private static void exec(List<String> cmd, String what) throws Exception {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD)
                .start();
        if (!p.waitFor(10, java.util.concurrent.TimeUnit.MINUTES) || p.exitValue() != 0) {
            p.destroyForcibly();
            throw new IOException(what + " failed: " + cmd);
        }
    }
}
