package dev.lazyblock.gcs;

import dev.lazyblock.s3.S3Location;
import dev.lazyblock.s3.S3Upstream;
import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.UpstreamException;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * A GCS object read through the S3-interoperable XML API: lazyblock-s3's {@link S3Upstream}
 * (ranged GETs, ETag pinned with If-Match, a dropped stream resumed from the first byte not
 * received, retries with back-off and jitter), named {@code gs://bucket/object} in every name and
 * message.
 */
public final class GcsXmlUpstream implements Upstream {
    private final Upstream inner;
    private final String name;
    private final String innerName;

    GcsXmlUpstream(Upstream inner, GcsLocation location) {
        this.inner = inner;
        this.name = location.url();
        this.innerName = inner.name();
    }

    /** Reads {@code location} through the XML API with {@code config}'s HMAC key and settings. */
    public static GcsXmlUpstream open(GcsConfig config, GcsLocation location) {
        return new GcsXmlUpstream(S3Upstream.open(config.xmlConfig(),
                new S3Location(location.bucket(), location.object())), location);
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public long size() throws IOException {
        try {
            return inner.size();
        } catch (UpstreamException e) {
            throw rename(e);
        }
    }

    @Override
    public String version() throws IOException {
        try {
            return inner.version();
        } catch (UpstreamException e) {
            throw rename(e);
        }
    }

    @Override
    public void readFully(long off, ByteBuffer dst) throws IOException {
        try {
            inner.readFully(off, dst);
        } catch (UpstreamException e) {
            throw rename(e);
        }
    }

    @Override
    public RangeStream openRange(long off, long len) throws IOException {
        RangeStream s;
        try {
            s = inner.openRange(off, len);
        } catch (UpstreamException e) {
            throw rename(e);
        }
        return new RangeStream() {
            @Override
            public int read(ByteBuffer dst) throws IOException {
                try {
                    return s.read(dst);
                } catch (UpstreamException e) {
                    throw rename(e);
                }
            }

            @Override
            public void close() throws IOException {
                s.close();
            }
        };
    }

    @Override
    public void close() throws IOException {
        inner.close();
    }

    @Override
    public String toString() {
        return "GcsXmlUpstream[" + name + "]";
    }

    /** The same error, naming {@code gs://...} and saying GCS where lazyblock-s3 said S3. */
    private UpstreamException rename(UpstreamException e) {
        String m = e.getMessage();
        String marker = innerName + ": ";
        int at = m.indexOf(marker);
        String what = at < 0 ? m : m.substring(at + marker.length());
        UpstreamException r = new UpstreamException(name, e.offset(), e.length(), gcsWords(what), e.getCause());
        r.setStackTrace(e.getStackTrace());
        return r;
    }

    static String gcsWords(String what) {
        return what.replace("S3 is throttling", "GCS is throttling").replace("s3://", "gs://");
    }
}
