package dev.lazyblock.content;

import dev.lazyblock.upstream.DirectoryStore;
import dev.lazyblock.upstream.ObjectStore;
import dev.lazyblock.upstream.Upstream;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A real directory store that counts what the content tests need counted (chunk fetches, uploads, lock
 * listings) and can hold a chunk upload or delete at a gate, so a test can stage a race at an exact point.
 */
final class ObservedStore implements ObjectStore {
    private static final String CHUNKS = "/" + ContentKey.CHUNKS + "/";

    final DirectoryStore real;
    final AtomicInteger chunkOpens = new AtomicInteger();
    /** Uploads of chunks and headers; the export's and collection's lock objects are not counted. */
    final AtomicInteger puts = new AtomicInteger();
    final AtomicInteger lockListings = new AtomicInteger();
    /** Set by the test before the race; read by the store's callers' threads. */
    volatile CountDownLatch putGate;
    volatile CountDownLatch deleteGate;
    final CountDownLatch putHeld = new CountDownLatch(1);
    final CountDownLatch deleteHeld = new CountDownLatch(1);

    ObservedStore(Path root) {
        real = new DirectoryStore(root);
    }

    private static void pass(CountDownLatch gate, CountDownLatch held) throws IOException {
        if (gate == null) {
            return;
        }
        held.countDown();
        try {
            if (!gate.await(30, TimeUnit.SECONDS)) {
                throw new IOException("test gate not opened in 30 s");
            }
        } catch (InterruptedException e) {
            throw new InterruptedIOException();
        }
    }

    @Override public String name() { return real.name(); }

    @Override public Upstream open(String key) throws IOException {
        if (key.contains(CHUNKS)) {
            chunkOpens.incrementAndGet();
        }
        return real.open(key);
    }

    private void countPut(String key) {
        if (!key.contains("/" + ContentLocks.LOCKS + "/")) {
            puts.incrementAndGet();
        }
    }

    @Override public void put(String key, Path file) throws IOException {
        countPut(key);
        real.put(key, file);
    }

    @Override public void put(String key, byte[] bytes) throws IOException {
        countPut(key);
        if (key.contains(CHUNKS)) {
            pass(putGate, putHeld);
        }
        real.put(key, bytes);
    }

    @Override public boolean exists(String key) throws IOException { return real.exists(key); }

    @Override public void delete(String key) throws IOException {
        if (key.contains(CHUNKS)) {
            pass(deleteGate, deleteHeld);
        }
        real.delete(key);
    }

    @Override public List<Listed> list(String prefix) throws IOException {
        if (prefix.endsWith("/" + ContentLocks.LOCKS + "/")) {
            lockListings.incrementAndGet();
        }
        return real.list(prefix);
    }

    @Override public void close() { }
}
