package dev.lazyblock.nbd;

import dev.lazyblock.cache.SparseCache;
import dev.lazyblock.chunker.Chunker;
import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.chunker.ChunkerOptions;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.device.Overlay;
import dev.lazyblock.upstream.DirectoryStore;
import dev.lazyblock.upstream.FileUpstream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.UUID;

/**
 * A server on 127.0.0.1, port 0, with four exports:
 * <ul>
 *   <li>{@code raw}: a request-first chunker over a file (unaligned size, read-only);</li>
 *   <li>{@code layered}: a layered image with zero mappings (read-only);</li>
 *   <li>{@code rw}: an overlay over that same layered image (writable);</li>
 *   <li>{@code ro}: the layered image again under another name (read-only), to check that
 *       writes to {@code rw} never reach the base.</li>
 * </ul>
 */
final class Fixture implements AutoCloseable {
    static final int RAW_SIZE = 3 * Images.CHUNK + 5 * Images.B + 123;

    final Path dir;
    final byte[] raw;
    final Path rawFile;
    final Images.Layered layered;
    final Path layeredFile;
    final Chunker rawChunker;
    final FileUpstream rawUpstream;
    final LayeredImage layeredImage;
    final Overlay overlay;
    final NbdServer server;

    private Fixture(Path dir, NbdServer.Builder tweaks) throws IOException {
        this.dir = dir;
        raw = Images.random(42, RAW_SIZE);
        rawFile = dir.resolve("raw.img");
        Files.write(rawFile, raw);
        Path caches = Files.createDirectories(dir.resolve("caches"));
        rawUpstream = new FileUpstream(rawFile);
        rawChunker = ChunkerKind.REQUEST_FIRST.create(rawUpstream,
                SparseCache.create(caches.resolve("raw-" + UUID.randomUUID()), RAW_SIZE), ChunkerOptions.DEFAULTS);
        DirectoryStore store = new DirectoryStore(dir.resolve("store"));
        layered = Images.layered(store, "images/vm1", 7);
        layeredFile = dir.resolve("layered.img");
        Files.write(layeredFile, layered.image());
        layeredImage = LayeredImage.open(store, layered.headerKey(), caches, ChunkerKind.STREAMING, ChunkerOptions.DEFAULTS);
        overlay = new Overlay(layeredImage, SparseCache.create(caches.resolve("overlay-" + UUID.randomUUID()),
                layeredImage.size(), Images.B, Images.B));
        server = tweaks
                .export(NbdExport.readOnly("raw", rawChunker).withDescription("raw test image"))
                .export(NbdExport.readOnly("layered", layeredImage))
                .export(NbdExport.writable("rw", overlay))
                .export(NbdExport.readOnly("ro", layeredImage))
                .listen(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))
                .start();
    }

    static Fixture start(Path dir) throws IOException {
        return new Fixture(dir, NbdServer.builder());
    }

    static Fixture start(Path dir, NbdServer.Builder tweaks) throws IOException {
        return new Fixture(dir, tweaks);
    }

    String uri(String export) {
        return server.uri(export);
    }

    int port() {
        return server.port();
    }

    @Override
    public void close() throws IOException {
        server.close();
        overlay.close();
        layeredImage.close();
        rawChunker.close();
        rawUpstream.close();
    }
}
