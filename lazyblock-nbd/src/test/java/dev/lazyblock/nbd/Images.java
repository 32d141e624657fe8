package dev.lazyblock.nbd;

import dev.lazyblock.device.LayerHeader;
import dev.lazyblock.device.LayerHeader.Build;
import dev.lazyblock.device.LayerHeader.Mapping;
import dev.lazyblock.device.LayeredImage;
import dev.lazyblock.upstream.ObjectStore;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.UUID;

/** Test images: raw bytes, and a layered image whose header maps zero ranges. */
final class Images {
    static final int B = 4096;
    static final int CHUNK = 4 << 20;
    static final int MIB = 1 << 20;

    private Images() {}

    /** Random bytes, with MiB 2 all zeros (a zero run the chunker still reports as data). */
    static byte[] random(long seed, int size) {
        byte[] b = new byte[size];
        new SplittableRandom(seed).nextBytes(b);
        if (size > 3 * MIB) {
            Arrays.fill(b, 2 * MIB, 3 * MIB, (byte) 0);
        }
        return b;
    }

    /** A layered image in a store: its header key, header and the bytes it reads as. */
    record Layered(String headerKey, LayerHeader header, byte[] image) {}

    /** Size of {@link #layered}'s image: four chunks and three blocks. */
    static final int LAYERED_SIZE = 4 * CHUNK + 3 * B;

    /**
     * One build and five mappings: data [0, 4M), zeros [4M, 6M), data [6M, 12M), zeros
     * [12M, 12M + 64K), data to the end.
     */
    static Layered layered(ObjectStore store, String dir, long seed) throws IOException {
        int size = LAYERED_SIZE;
        int tail = size - (12 * MIB + 64 * 1024);
        byte[] diff = new byte[10 * MIB + tail];
        new SplittableRandom(seed).nextBytes(diff);
        UUID id = UUID.randomUUID();
        List<Mapping> mappings = List.of(
                new Mapping(0, 4 * MIB, 0, 0),
                Mapping.zero(4 * MIB, 2 * MIB),
                new Mapping(6 * MIB, 6 * MIB, 0, 4 * MIB),
                Mapping.zero(12 * MIB, 64 * 1024),
                new Mapping(12 * MIB + 64 * 1024, tail, 0, 10 * MIB));
        LayerHeader header = new LayerHeader(size, B, id, null, 0,
                List.of(new Build(id, diff.length, sha256(diff))), mappings);
        byte[] image = new byte[size];
        for (Mapping m : mappings) {
            if (!m.isZero()) {
                System.arraycopy(diff, (int) m.buildOffset(), image, (int) m.offset(), (int) m.length());
            }
        }
        Path tmp = Files.createTempFile("lazyblock-diff-", ".diff");
        try {
            Files.write(tmp, diff);
            store.put(LayeredImage.diffKey(dir, id), tmp);
        } finally {
            Files.deleteIfExists(tmp);
        }
        String headerKey = LayeredImage.headerKey(dir, id);
        store.put(headerKey, header.toBytes());
        return new Layered(headerKey, header, image);
    }

    static byte[] sha256(byte[] b) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(b);
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }
}
