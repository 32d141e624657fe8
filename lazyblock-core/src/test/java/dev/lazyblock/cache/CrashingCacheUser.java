package dev.lazyblock.cache;

import java.io.RandomAccessFile;
import java.nio.file.Path;

/**
 * A process that opens a persistent cache and leaves it as a crash mid-fetch would: one block
 * fetched, marked and flushed, the next written with junk (a fetch in flight, never marked); says
 * "ready" with the bytes it restored and waits to be killed. For {@link PersistentCacheTest}.
 *
 * <p>Arguments: cache dir, identity, size, image file, offset of the first block to write.
 */
public final class CrashingCacheUser {
    private CrashingCacheUser() {}

    public static void main(String[] args) throws Exception {
        PersistentCache.Opened opened = PersistentCache.open(Path.of(args[0]), args[1], Long.parseLong(args[2]));
        long at = Long.parseLong(args[4]);
        byte[] good = new byte[SparseCache.DEFAULT_BLOCK_SIZE];
        try (RandomAccessFile image = new RandomAccessFile(args[3], "r")) {
            image.seek(at);
            image.readFully(good);
        }
        opened.cache().writeAt(good, 0, good.length, at);
        opened.cache().setIsCached(at, good.length);
        opened.cache().flush();
        byte[] junk = new byte[SparseCache.DEFAULT_BLOCK_SIZE];
        java.util.Arrays.fill(junk, (byte) 0x5a);
        opened.cache().writeAt(junk, 0, junk.length, at + junk.length);
        opened.cache().flush(); // the junk is durable too, but nothing vouches for it
        System.out.println("ready " + opened.restoredBytes());
        System.out.flush();
        System.in.read(); // until killed; never closes the cache
        Runtime.getRuntime().halt(3);
    }
}
