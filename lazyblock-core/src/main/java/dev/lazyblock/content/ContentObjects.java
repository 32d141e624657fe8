package dev.lazyblock.content;

import dev.lazyblock.upstream.ObjectStore;
import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.UpstreamException;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * The chunk objects of one content-addressed build seen as one address space, so a chunker
 * reads them like any stored object: chunk {@code i}'s object lies at
 * {@code [i * chunkSize, +storedSize(i))}, the rest of its slot is a gap no read may touch.
 * Each read opens the chunk's object ({@link ObjectStore#open}: no request until the read),
 * reads, and closes it, so a build of thousands of chunks holds no descriptor or connection of
 * its own between reads.
 */
public final class ContentObjects implements Upstream {
    private final ObjectStore store;
    private final String dir;
    private final ContentTable table;
    private final String name;

    /** @param dir the store prefix the chunks live under (the header's directory) */
    public ContentObjects(ObjectStore store, String dir, ContentTable table) {
        this.store = store;
        this.dir = dir;
        this.table = table;
        this.name = store.name() + "/" + (dir.isEmpty() ? "" : dir + "/") + ContentKey.CHUNKS;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public long size() {
        return (long) table.chunks() * table.chunkSize();
    }

    /** The object key of the chunk whose slot holds {@code [off, off + len)}, checked to lie in its object. */
    private String keyOf(long off, long len) throws UpstreamException {
        long slot = off / table.chunkSize();
        long within = off - slot * table.chunkSize();
        if (off < 0 || len < 0 || slot >= table.chunks() || within + len > table.storedSize((int) slot)
                || table.isZero((int) slot)) {
            throw new UpstreamException(name, off, len, "the range is not inside one chunk object (chunk " + slot
                    + (slot < table.chunks() ? " stores " + table.storedSize((int) slot) + " bytes" : " does not exist")
                    + ")");
        }
        return table.key((int) slot).objectKey(dir);
    }

    @Override
    public void readFully(long off, ByteBuffer dst) throws IOException {
        String key = keyOf(off, dst.remaining());
        try (Upstream object = store.open(key)) {
            object.readFully(off % table.chunkSize(), dst);
        }
    }

    @Override
    public RangeStream openRange(long off, long len) throws IOException {
        String key = keyOf(off, len);
        Upstream object = store.open(key);
        RangeStream in;
        try {
            in = object.openRange(off % table.chunkSize(), len);
        } catch (IOException | RuntimeException e) {
            try {
                object.close();
            } catch (IOException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
        return new RangeStream() {
            @Override
            public int read(ByteBuffer dst) throws IOException {
                return in.read(dst);
            }

            @Override
            public void close() throws IOException {
                try {
                    in.close();
                } finally {
                    object.close();
                }
            }
        };
    }

    @Override
    public void close() {}

    @Override
    public String toString() {
        return "ContentObjects[" + name + ", " + table + "]";
    }
}
