package dev.lazyblock.cache;

import java.nio.file.Path;

/**
 * A process that opens a persistent cache, writes junk over a block an earlier run left present,
 * says "ready" and waits to be killed: what a crash mid-run leaves behind, for
 * {@link PersistentCacheTest}.
 */
public final class CrashingCacheUser {
    private CrashingCacheUser() {}

    public static void main(String[] args) throws Exception {
        PersistentCache.Opened opened = PersistentCache.open(Path.of(args[0]), args[1], Long.parseLong(args[2]));
        byte[] junk = new byte[SparseCache.DEFAULT_BLOCK_SIZE];
        java.util.Arrays.fill(junk, (byte) 0x5a);
        opened.cache().writeAt(junk, 0, junk.length, 0);
        opened.cache().setIsCached(0, junk.length);
        System.out.println("ready " + opened.restoredBytes());
        System.out.flush();
        System.in.read(); // until killed; never closes the cache
        Runtime.getRuntime().halt(3);
    }
}
