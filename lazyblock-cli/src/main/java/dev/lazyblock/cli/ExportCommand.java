package dev.lazyblock.cli;

import dev.lazyblock.upstream.UpstreamProvider;
import dev.lazyblock.upstream.Upstreams;
import dev.lazyblock.device.LayerExporter;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.frame.FrameCodec;
import dev.lazyblock.frame.FrameCodecs;
import dev.lazyblock.frame.FrameTable;
import dev.lazyblock.upstream.ObjectStore;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * Publishes a raw image file as a base layer: the start of a layered image, which serve reads
 * lazily and {@code serve --writable --export-layer} stacks layers on.
 */
@Command(name = "export", mixinStandardHelpOptions = true,
        description = {"Publishes a raw image FILE as a base layer in DEST.",
                "FILE becomes the diff of a new build and a header maps the whole image",
                "to it (diff first, header last). DEST: a directory, or s3://bucket/prefix (credentials from",
                "the environment). Serve it with `lazyblock serve DEST/<build>.header`;",
                "layers on top come from `serve --writable --export-layer`. Progress on a",
                "terminal, else one summary line. --compress zstd|lz4 stores the diff in",
                "independently compressed, checksummed 2 MiB frames (header version 2).",
                "--content-addressed stores it as chunks named by their SHA-256 under DEST/chunks/,",
                "uploading only those DEST lacks: images built from the same files share them",
                "(header version 3; with --compress, each chunk is compressed on its own)."},
        footer = {"", "Examples:",
                "  lazyblock export rootfs.ext4 /srv/layers/vm1",
                "  lazyblock export rootfs.ext4 s3://bucket/images/vm1 --compress zstd",
                "  lazyblock export rootfs.ext4 s3://bucket/images --content-addressed --chunk-kib 512",
                "  lazyblock serve /srv/layers/vm1/<build>.header --writable --export-layer"})
final class ExportCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "FILE", description = "The raw image file to publish.")
    Path file;

    @Parameters(index = "1", paramLabel = "DEST", description = "A directory, or s3://bucket/prefix.")
    String dest;

    @Option(names = "--block-size", paramLabel = "BYTES", defaultValue = "4096",
            description = "The layer's block size: a power of two (default ${DEFAULT-VALUE}).")
    int blockSize;

    @Option(names = "--compress", paramLabel = "CODEC", defaultValue = "none",
            description = "How the diff is stored: zstd, lz4 or none (default ${DEFAULT-VALUE}: raw, header version 1).")
    String compress;

    @Option(names = "--frame-kib", paramLabel = "KIB", defaultValue = "2048",
            description = "With --compress: uncompressed KiB per frame, a power of two (default ${DEFAULT-VALUE}); "
                    + "smaller frames make a miss cheaper and the ratio worse.")
    int frameKib;

    @Option(names = "--content-addressed", description = "Store the image as content-addressed chunks, uploading "
            + "only the chunks DEST lacks.")
    boolean contentAddressed;

    @Option(names = "--encrypt", description = "With --content-addressed: encrypt each chunk convergently with the "
            + "tenant secret in $" + SECRET_ENV + " (at least 16 bytes; never logged or stored): a tenant's images still "
            + "share chunks, another tenant's do not, and serve needs the same variable to read them.")
    boolean encrypt;

    /** Where the tenant secret for convergent encryption comes from: the environment only, never a flag. */
    static final String SECRET_ENV = "LAZYBLOCK_CONTENT_SECRET";

    /** What serve and warm need for content-addressed layers: the content cache's bound (0: none) and the cipher. */
    record ContentSettings(long cacheBytes, dev.lazyblock.content.ContentCipher cipher) {
        /** @throws IllegalArgumentException saying which option or variable is wrong, and how */
        static ContentSettings parse(String cacheSize) {
            long bytes;
            try {
                bytes = dev.lazyblock.upstream.ConfigValues.size(cacheSize);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("--content-cache: " + e.getMessage(), e);
            }
            try {
                return new ContentSettings(bytes, contentCipherFromEnv());
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("$" + SECRET_ENV + ": " + e.getMessage(), e);
            }
        }
    }

    /** The cipher of the tenant secret in {@link #SECRET_ENV}, or null when it is not set. */
    static dev.lazyblock.content.ContentCipher contentCipherFromEnv() {
        String s = System.getenv(SECRET_ENV);
        return s == null || s.isEmpty() ? null
                : dev.lazyblock.content.ContentCipher.fromSecret(s.getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }

    @Option(names = "--chunk-kib", paramLabel = "KIB", defaultValue = "4096",
            description = "With --content-addressed: KiB per chunk, a power of two from 64 to 65536 (default "
                    + "${DEFAULT-VALUE}); smaller chunks share more between images and cost more requests.")
    int chunkKib;

    @Override
    public Integer call() throws Exception {
        if (!Files.isRegularFile(file)) {
            System.err.println("lazyblock export: " + file + " is not a regular file");
            return 2;
        }
        if (blockSize < 512 || Integer.bitCount(blockSize) != 1) {
            System.err.println("lazyblock export: --block-size must be a power of two of at least 512, got " + blockSize);
            return 2;
        }
        LayerExporter.Compression compression;
        try {
            compression = compression(compress, file.toAbsolutePath().getParent(), frameKib);
        } catch (IllegalArgumentException e) {
            System.err.println("lazyblock export: --compress: " + e.getMessage());
            return 2;
        }
        LayerExporter.ContentAddressing content;
        try {
            content = contentAddressing(contentAddressed, chunkKib, blockSize);
        } catch (IllegalArgumentException e) {
            System.err.println("lazyblock export: --chunk-kib: " + e.getMessage());
            return 2;
        }
        try {
            content = encrypted(encrypt, content);
        } catch (IllegalArgumentException e) {
            System.err.println("lazyblock export: " + e.getMessage());
            return 2;
        }
        return publish("export", file, dest, blockSize, compression, content);
    }

    /**
     * {@code content} encrypted with the tenant secret in {@link #SECRET_ENV} if {@code encrypt}
     * (export's and get's {@code --encrypt}), else as it is.
     *
     * @throws IllegalArgumentException saying what is missing: content addressing, the variable, or a long enough secret
     */
    static LayerExporter.ContentAddressing encrypted(boolean encrypt, LayerExporter.ContentAddressing content) {
        if (!encrypt) {
            return content;
        }
        if (!content.enabled()) {
            throw new IllegalArgumentException("--encrypt needs --content-addressed");
        }
        dev.lazyblock.content.ContentCipher cipher;
        try {
            cipher = contentCipherFromEnv();
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("$" + SECRET_ENV + ": " + e.getMessage(), e);
        }
        if (cipher == null) {
            throw new IllegalArgumentException("--encrypt needs the tenant secret in $" + SECRET_ENV);
        }
        return content.encrypted(cipher);
    }

    /** What {@code --content-addressed} and {@code --chunk-kib} ask for. */
    static LayerExporter.ContentAddressing contentAddressing(boolean on, int chunkKib, int blockSize) {
        if (!on) {
            return LayerExporter.ContentAddressing.NONE;
        }
        long bytes = (long) chunkKib << 10;
        if (chunkKib <= 0 || bytes > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("must be a power of two from 64 to 65536, got " + chunkKib);
        }
        if (bytes % blockSize != 0) {
            throw new IllegalArgumentException(chunkKib + " KiB is not a multiple of the block size " + blockSize);
        }
        return LayerExporter.ContentAddressing.of((int) bytes);
    }

    /** Publishes {@code file} as a base layer in {@code dest}; prints what it did; the exit code. */
    static int publish(String command, Path file, String dest, int blockSize, LayerExporter.Compression compression,
                       LayerExporter.ContentAddressing content) throws java.io.IOException {
        String scheme = dest.contains("://") ? dest.substring(0, dest.indexOf("://")).toLowerCase(Locale.ROOT) : "file";
        if (scheme.equals("http") || scheme.equals("https")) {
            System.err.println("lazyblock " + command + ": cannot write to " + scheme + "://; DEST is a directory or "
                    + "s3://bucket/prefix");
            return 2;
        }
        // The store a layer key under DEST lives in, and DEST's directory in it.
        String base = dest.endsWith("/") ? dest.substring(0, dest.length() - 1) : dest;
        if (scheme.equals("file")) {
            Files.createDirectories(base.startsWith("file:") ? Path.of(java.net.URI.create(base)) : Path.of(base));
        }
        UpstreamProvider.StoreAndKey at = Upstreams.store(base + "/layer.header");
        String dir = LayeredImage.dirOf(at.key());
        try (ObjectStore store = at.store()) {
            long size = Files.size(file);
            // Hashing reads the file once, compressing (or chunking) once more.
            Progress progress = Progress.onTerminal(System.err, command + " " + file.getFileName(),
                    compression.enabled() || content.enabled() ? 2 * size : size);
            LayerExporter.Layer layer = LayerExporter.publishBase(file, blockSize, store, dir, progress::add,
                    compression, content);
            progress.finish();
            System.out.printf("exported %s as base layer %s: %,d bytes, block %,d%s%s; header %s%n", file,
                    layer.header().buildId(), size, blockSize, compressionSummary(compression, layer),
                    layer.content() == null ? "" : "; " + layer.content(), store.name() + "/" + layer.headerKey());
            return 0;
        }
    }

    /** The compression {@code name} asks for, staging compressed frames in the temp directory (or {@code near}). */
    static LayerExporter.Compression compression(String name, Path near) {
        return compression(name, near, FrameTable.DEFAULT_FRAME_SIZE >> 10);
    }

    /** {@link #compression(String, Path)} with frames of {@code frameKib} KiB (a power of two). */
    static LayerExporter.Compression compression(String name, Path near, int frameKib) {
        FrameCodec codec = FrameCodecs.byName(name);
        long frame = (long) frameKib << 10;
        if (frameKib <= 0 || Long.bitCount(frame) != 1 || frame > FrameTable.MAX_FRAME_SIZE || frame < 4096) {
            throw new IllegalArgumentException("--frame-kib must be a power of two from 4 to "
                    + (FrameTable.MAX_FRAME_SIZE >> 10) + ", got " + frameKib);
        }
        Path scratch = Path.of(System.getProperty("java.io.tmpdir"));
        if (!Files.isWritable(scratch) && near != null) {
            scratch = near;
        }
        LayerExporter.Compression c = LayerExporter.Compression.of(codec, scratch);
        return c.enabled() ? new LayerExporter.Compression(c.codec(), (int) frame, c.threads(), scratch) : c;
    }

    static String compressionSummary(LayerExporter.Compression c, LayerExporter.Layer layer) {
        if (!c.enabled()) {
            return "";
        }
        return String.format(", %s: %,d bytes stored (%.1f%%)", c.codec().name(), layer.storedBytes(),
                layer.diffBytes() == 0 ? 100.0 : 100.0 * layer.storedBytes() / layer.diffBytes());
    }
}
