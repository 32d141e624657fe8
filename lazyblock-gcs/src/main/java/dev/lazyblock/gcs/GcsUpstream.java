package dev.lazyblock.gcs;

import com.google.cloud.ReadChannel;
import com.google.cloud.storage.Blob;
import com.google.cloud.storage.BlobId;
import com.google.cloud.storage.Storage;
import com.google.cloud.storage.Storage.BlobField;
import com.google.cloud.storage.Storage.BlobGetOption;
import com.google.cloud.storage.Storage.BlobSourceOption;
import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.UpstreamException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Ranged reads of one GCS object through the JSON API ({@code google-cloud-storage}).
 *
 * <p>The object's generation is learned by the first request (its metadata) and pinned: every
 * read carries {@code ifGenerationMatch}, so an object replaced while it is being read fails
 * with "the object changed" instead of mixing two versions' bytes. Reads are the client's read
 * channel positioned at the range ({@code seek}, {@code limit}) without a buffer of its own
 * ({@code chunkSize 0}): the bytes stream as they arrive, and the client resumes a dropped
 * connection from the first byte not received. Retries, back-off and timeouts are
 * {@link GcsConfig}'s.
 */
public final class GcsUpstream implements Upstream {
    private final Storage storage;
    private final boolean ownsClient;
    private final GcsLocation location;
    private final String name;
    private final int maxAttempts;
    private volatile long size = -1;
    private volatile long generation = -1;

    GcsUpstream(Storage storage, boolean ownsClient, GcsLocation location, int maxAttempts) {
        this.storage = Objects.requireNonNull(storage, "storage");
        this.ownsClient = ownsClient;
        this.location = Objects.requireNonNull(location, "location");
        this.name = location.url();
        this.maxAttempts = maxAttempts;
    }

    /** Reads through {@code storage}, a client the caller keeps and closes. */
    public GcsUpstream(Storage storage, GcsLocation location) {
        this(storage, false, location, GcsConfig.DEFAULT_MAX_ATTEMPTS);
    }

    /** Reads through a JSON client of its own, built from {@code config}, closed by {@link #close()}. */
    public static GcsUpstream open(GcsConfig config, GcsLocation location) throws IOException {
        return new GcsUpstream(config.newJsonClient(), true, location, config.maxAttempts());
    }

    public GcsLocation location() {
        return location;
    }

    @Override
    public String name() {
        return name;
    }

    /** From the object's metadata (size and generation), once; cached. */
    @Override
    public long size() throws IOException {
        long known = size;
        if (known >= 0) {
            return known;
        }
        Blob b;
        try {
            b = storage.get(BlobId.of(location.bucket(), location.object()),
                    BlobGetOption.fields(BlobField.SIZE, BlobField.GENERATION));
        } catch (RuntimeException e) {
            throw GcsErrors.read(name, 0, 0, e, maxAttempts);
        }
        if (b == null) {
            throw new UpstreamException(name, 0, 0, "no such object (status 404)");
        }
        if (generation < 0 && b.getGeneration() != null) {
            generation = b.getGeneration();
        }
        size = b.getSize();
        return b.getSize();
    }

    /** The generation every read is pinned to, learned with the size. */
    @Override
    public String version() throws IOException {
        size();
        long g = generation;
        return g < 0 ? null : "generation " + g;
    }

    @Override
    public void readFully(long off, ByteBuffer dst) throws IOException {
        int len = dst.remaining();
        if (len == 0) {
            checkRange(off, 0);
            return;
        }
        int start = dst.position();
        try (RangeStream s = openRange(off, len)) {
            while (dst.hasRemaining()) {
                if (s.read(dst) < 0) {
                    dst.position(start);
                    throw new UpstreamException(name, off, len, "body ended early: expected " + len + " bytes, got "
                            + (dst.position() - start));
                }
            }
        }
    }

    @Override
    public RangeStream openRange(long off, long len) throws IOException {
        checkRange(off, len);
        if (len == 0) {
            return EMPTY;
        }
        long total = size();
        if (off + len > total) {
            throw new UpstreamException(name, off, len, "the range runs past the end of the object (" + total
                    + " bytes)");
        }
        ReadChannel ch;
        try {
            ch = storage.reader(BlobId.of(location.bucket(), location.object()),
                    BlobSourceOption.generationMatch(generation));
            ch.setChunkSize(0);
            ch.seek(off);
            ch = ch.limit(off + len);
        } catch (IOException | RuntimeException e) {
            throw GcsErrors.read(name, off, len, e, maxAttempts);
        }
        return new GcsRangeStream(ch, off, len);
    }

    @Override
    public void close() throws IOException {
        if (ownsClient) {
            try {
                storage.close();
            } catch (Exception e) {
                throw new IOException("closing the GCS client of " + name, e);
            }
        }
    }

    @Override
    public String toString() {
        return "GcsUpstream[" + name + "]";
    }

    private static void checkRange(long off, long len) {
        if (off < 0 || len < 0 || off + len < 0) {
            throw new IllegalArgumentException("bad range: offset " + off + ", length " + len);
        }
    }

    private static final RangeStream EMPTY = new RangeStream() {
        @Override
        public int read(ByteBuffer dst) {
            return -1;
        }

        @Override
        public void close() {}
    };

    /** The read channel, limited to the range; the bytes of the range and no more. */
    private final class GcsRangeStream implements RangeStream {
        private final ReadChannel ch;
        private final long off;
        private final long len;
        private final AtomicBoolean closed = new AtomicBoolean();
        private long done;

        GcsRangeStream(ReadChannel ch, long off, long len) {
            this.ch = ch;
            this.off = off;
            this.len = len;
        }

        @Override
        public int read(ByteBuffer dst) throws IOException {
            if (closed.get()) {
                throw new UpstreamException(name, off, len, "range stream closed after " + done + " of " + len
                        + " bytes");
            }
            if (done == len) {
                return -1;
            }
            int want = (int) Math.min(dst.remaining(), len - done);
            if (want == 0) {
                return 0;
            }
            ByteBuffer window = dst.slice(dst.position(), want);
            int n;
            try {
                do {
                    n = ch.read(window);
                } while (n == 0);
            } catch (IOException | RuntimeException e) {
                if (closed.get()) {
                    throw new UpstreamException(name, off, len, "range stream closed after " + done + " of " + len
                            + " bytes", e);
                }
                UpstreamException u = GcsErrors.read(name, off, len, e, maxAttempts);
                throw new UpstreamException(name, off, len, "body failed after " + done + " of " + len + " bytes: "
                        + GcsErrors.describe(e, maxAttempts), u.getCause());
            }
            if (n < 0) {
                throw new UpstreamException(name, off, len, "body ended early: expected " + len + " bytes, got "
                        + done);
            }
            dst.position(dst.position() + n);
            done += n;
            return n;
        }

        @Override
        public void close() {
            if (closed.compareAndSet(false, true)) {
                ch.close();
            }
        }
    }
}
