package dev.lazyblock.cli;

import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.Upstreams;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.BitSet;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * Downloads a whole image to a file, chunks in parallel, resumably: chunks already written are
 * recorded in a {@code OUT.lazyblock-get} file next to it, and a rerun fetches only the rest.
 */
@Command(name = "get", mixinStandardHelpOptions = true,
        description = {"Materializes an image (path, https or s3 URL) into a local file, fetching chunks in",
                "parallel; an interrupted get resumes where it stopped. Shows progress on a terminal.",
                "With --compress zstd|lz4, OUT is a layer destination (a directory or",
                "s3://bucket/prefix) and the image is published there as a compressed base layer."},
        footer = {"", "Examples:", "  lazyblock get https://example.com/rootfs.ext4 rootfs.ext4",
                "  lazyblock get s3://bucket/images/mem.img mem.img --parallel 16",
                "  lazyblock get https://example.com/rootfs.ext4 s3://bucket/images/vm1 --compress zstd"})
final class GetCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "IMAGE", description = "Path or URL of the image.")
    String image;

    @Parameters(index = "1", paramLabel = "OUT", description = "The file to write (with --compress: a directory "
            + "or s3://bucket/prefix to publish a layer in).")
    String target;

    /** Where the image is downloaded: OUT, or with --compress a scratch file. */
    Path out;

    @Option(names = "--compress", paramLabel = "CODEC", defaultValue = "none",
            description = "none (default): OUT is the raw image. zstd or lz4: publish the image in OUT as a base layer "
                    + "stored in compressed 2 MiB frames.")
    String compress;

    @Option(names = "--block-size", paramLabel = "BYTES", defaultValue = "4096",
            description = "With --compress: the layer's block size (default ${DEFAULT-VALUE}).")
    int blockSize;

    @Option(names = "--content-addressed", description = "With --compress: publish as content-addressed chunks, "
            + "uploading only the chunks OUT lacks (see `export --help`).")
    boolean contentAddressed;

    @Option(names = "--chunk-kib", paramLabel = "KIB", defaultValue = "4096",
            description = "With --content-addressed: KiB per chunk (default ${DEFAULT-VALUE}).")
    int chunkKib;

    @Option(names = "--encrypt", description = "With --content-addressed: encrypt each chunk convergently with the "
            + "tenant secret in $" + ExportCommand.SECRET_ENV + " (see `export --help`).")
    boolean encrypt;

    @Option(names = "--parallel", defaultValue = "8", description = "Chunks in flight (default ${DEFAULT-VALUE}).")
    int parallel;

    @Option(names = "--chunk-mib", defaultValue = "4", description = "Chunk size in MiB (default ${DEFAULT-VALUE}).")
    int chunkMib;

    /** Stops after this many chunks (tests simulate an interruption); -1 for no limit. */
    int stopAfterChunks = -1;

    @Override
    public Integer call() throws Exception {
        if (parallel < 1 || chunkMib < 1) {
            System.err.println("lazyblock get: --parallel and --chunk-mib must be at least 1");
            return 2;
        }
        dev.lazyblock.device.LayerExporter.Compression compression;
        try {
            compression = ExportCommand.compression(compress, null);
        } catch (IllegalArgumentException e) {
            System.err.println("lazyblock get: --compress: " + e.getMessage());
            return 2;
        }
        dev.lazyblock.device.LayerExporter.ContentAddressing content;
        try {
            content = ExportCommand.contentAddressing(contentAddressed, chunkKib, blockSize);
        } catch (IllegalArgumentException e) {
            System.err.println("lazyblock get: --chunk-kib: " + e.getMessage());
            return 2;
        }
        try {
            content = ExportCommand.encrypted(encrypt, content);
        } catch (IllegalArgumentException e) {
            System.err.println("lazyblock get: " + e.getMessage());
            return 2;
        }
        if (!compression.enabled() && content.enabled()) {
            System.err.println("lazyblock get: --content-addressed needs --compress (zstd, lz4): without it OUT is a file");
            return 2;
        }
        if (!compression.enabled()) {
            out = Path.of(target);
            return download();
        }
        // Download to scratch (resumable there), then publish compressed; the raw copy goes.
        Path scratch = compression.scratch().resolve("lazyblock-get-" + Integer.toHexString(image.hashCode()) + ".raw");
        out = scratch;
        int code = download();
        if (code != 0) {
            return code;
        }
        try {
            return ExportCommand.publish("get", scratch, target, blockSize, compression, content);
        } finally {
            Files.deleteIfExists(scratch);
        }
    }

    private int download() throws Exception {
        long chunk = (long) chunkMib << 20;
        Path state = out.resolveSibling(out.getFileName() + ".lazyblock-get");
        try (Upstream up = Upstreams.open(image)) {
            long size = up.size();
            int chunks = (int) ((size + chunk - 1) / chunk);
            // Chunks written by an earlier run are kept only for the same object at the same version.
            String identity = up.name() + "\n" + up.version();
            BitSet done = resumeState(state, identity, size, chunk, chunks);
            long already = 0;
            for (int c = done.nextSetBit(0); c >= 0; c = done.nextSetBit(c + 1)) {
                already += Math.min(chunk, size - c * chunk);
            }
            Progress progress = Progress.onTerminal(System.err, "get " + up.name(), size);
            progress.skip(already);
            AtomicInteger fetched = new AtomicInteger();
            try (FileChannel file = FileChannel.open(out, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
                 ExecutorService pool = Executors.newFixedThreadPool(parallel,
                         Thread.ofPlatform().daemon().name("lazyblock-get-", 0).factory())) {
                if (file.size() != size) {
                    file.truncate(size);
                    if (file.size() < size) {
                        file.write(ByteBuffer.wrap(new byte[1]), size - 1); // extend, sparse
                    }
                }
                java.util.List<Future<?>> work = new java.util.ArrayList<>();
                for (int c = done.nextClearBit(0); c < chunks; c = done.nextClearBit(c + 1)) {
                    int index = c;
                    work.add(pool.submit(() -> {
                        if (stopAfterChunks >= 0 && fetched.get() >= stopAfterChunks) {
                            return null;
                        }
                        long off = index * chunk;
                        int len = (int) Math.min(chunk, size - off);
                        ByteBuffer buf = ByteBuffer.allocateDirect(len);
                        up.readFully(off, buf);
                        buf.flip();
                        while (buf.hasRemaining()) {
                            file.write(buf, off + buf.position());
                        }
                        synchronized (done) {
                            done.set(index);
                        }
                        fetched.incrementAndGet();
                        progress.add(len);
                        return null;
                    }));
                }
                IOException failure = null;
                for (Future<?> f : work) {
                    try {
                        f.get();
                    } catch (java.util.concurrent.ExecutionException e) {
                        failure = e.getCause() instanceof IOException io ? io : new IOException(e.getCause());
                    }
                }
                file.force(true);
                synchronized (done) {
                    saveState(state, identity, size, chunk, done);
                }
                progress.finish();
                if (failure != null) {
                    System.err.println("lazyblock get: " + failure.getMessage() + "; " + done.cardinality() + " of "
                            + chunks + " chunks are saved, rerun to resume");
                    return 1;
                }
                if (done.cardinality() < chunks) {
                    System.err.println("lazyblock get: stopped with " + done.cardinality() + " of " + chunks
                            + " chunks; rerun to resume");
                    return 1;
                }
            }
            Files.deleteIfExists(state);
            System.out.printf("%s: %,d bytes in %d chunks (%d fetched now, %d from an earlier run)%n", out, size, chunks,
                    fetched.get(), chunks - fetched.get());
            return 0;
        }
    }

    private static final long STATE_MAGIC = 0x4c42474554303032L; // "LBGET002"

    /**
     * The chunks an earlier run finished, if its state names this object, version, size and chunk
     * size; otherwise none (the object was replaced, or OUT was another image's): start over.
     */
    private BitSet resumeState(Path state, String identity, long size, long chunk, int chunks) throws IOException {
        if (!Files.exists(state) || !Files.exists(out)) {
            return new BitSet(chunks);
        }
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(state));
        byte[] id = identity.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        if (b.remaining() < 28 || b.getLong() != STATE_MAGIC || b.getLong() != size || b.getLong() != chunk
                || b.getInt() != id.length || b.remaining() < id.length) {
            System.err.println("lazyblock get: " + state + " describes another image or chunk size: starting over");
            return new BitSet(chunks);
        }
        byte[] saved = new byte[id.length];
        b.get(saved);
        if (!java.util.Arrays.equals(saved, id)) {
            System.err.println("lazyblock get: the image changed since the interrupted run (" + state
                    + " was saved for another version): starting over");
            return new BitSet(chunks);
        }
        return BitSet.valueOf(b.slice());
    }

    private static void saveState(Path state, String identity, long size, long chunk, BitSet done) throws IOException {
        byte[] bits = done.toByteArray();
        byte[] id = identity.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(28 + id.length + bits.length).putLong(STATE_MAGIC).putLong(size)
                .putLong(chunk).putInt(id.length).put(id).put(bits);
        Path tmp = state.resolveSibling(state.getFileName() + ".tmp");
        Files.write(tmp, b.array());
        Files.move(tmp, state, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }
}
