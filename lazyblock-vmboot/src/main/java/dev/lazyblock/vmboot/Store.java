package dev.lazyblock.vmboot;

import dev.lazyblock.s3.S3Config;
import dev.lazyblock.s3.S3ObjectStore;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Properties;
import org.gaul.s3proxy.BlobStores;
import org.gaul.s3proxy.S3Proxy;
import org.gaul.s3proxy.auth.AuthenticationType;
import org.gaul.s3proxy.blobstore.BlobStore;

/**
 * The bucket the VM images live in: S3Proxy on loopback, blobs in files under a directory, with
 * two front doors on the same blobs: the S3 API with signed requests (what {@code lazyblock
 * serve s3://...} uses) and anonymous plain HTTP GETs of {@code /bucket/key} (what nbdkit's curl
 * plugin uses, since it cannot sign). Each sits behind its own {@link DelayProxy}, so every reader
 * pays the same latency model.
 */
public final class Store implements AutoCloseable {
    public static final String BUCKET = "vm-images";
    static final String ACCESS_KEY = "AKIDLAZYBLOCKVMBOOT";
    /** Fake: S3Proxy checks signatures against it; it guards nothing. */
    static final String SECRET = "lzb-vmboot/Secret+5e1f0c";

    private final Path dir;
    private final S3Proxy signed;
    private final S3Proxy anonymous;
    private final DelayProxy s3Door;
    private final DelayProxy httpDoor;

    private Store(Path dir, S3Proxy signed, S3Proxy anonymous) throws IOException {
        this.dir = dir;
        this.signed = signed;
        this.anonymous = anonymous;
        this.s3Door = new DelayProxy(URI.create("http://127.0.0.1:" + signed.getPort()));
        this.httpDoor = new DelayProxy(URI.create("http://127.0.0.1:" + anonymous.getPort()), true);
    }

    /** Starts both servers over blobs kept in {@code dir}, and creates the bucket. */
    public static Store start(Path dir) throws Exception {
        Files.createDirectories(dir);
        Properties p = new Properties();
        p.setProperty("jclouds.filesystem.basedir", dir.toAbsolutePath().toString());
        p.setProperty("jclouds.identity", ACCESS_KEY);
        p.setProperty("jclouds.credential", SECRET);
        BlobStore blobs = BlobStores.create("filesystem", p);
        S3Proxy signed = S3Proxy.builder().blobStore(blobs).endpoint(URI.create("http://127.0.0.1:0"))
                .awsAuthentication(AuthenticationType.AWS_V2_OR_V4, ACCESS_KEY, SECRET).build();
        S3Proxy anonymous = S3Proxy.builder().blobStore(blobs).endpoint(URI.create("http://127.0.0.1:0"))
                .awsAuthentication(AuthenticationType.NONE, null, null).build();
        signed.start();
        anonymous.start();
        awaitStarted(signed);
        awaitStarted(anonymous);
        Store s = new Store(dir, signed, anonymous);
        try (var client = s.config(URI.create("http://127.0.0.1:" + signed.getPort())).newClient()) {
            if (client.listBuckets().buckets().stream().noneMatch(b -> b.name().equals(BUCKET))) {
                client.createBucket(b -> b.bucket(BUCKET));
            }
        }
        return s;
    }

    private static void awaitStarted(S3Proxy proxy) throws InterruptedException {
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (!"STARTED".equals(proxy.getState())) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("S3Proxy did not start in 30 s: " + proxy.getState());
            }
            Thread.sleep(10);
        }
    }

    private S3Config config(URI endpoint) {
        return S3Config.builder().endpoint(endpoint).region("us-east-1").pathStyle(true)
                .credentials(ACCESS_KEY, SECRET).build();
    }

    /** An object store on the bucket, straight to the server (uploads do not pay the model). */
    public S3ObjectStore objects() {
        return S3ObjectStore.open(config(URI.create("http://127.0.0.1:" + signed.getPort())), BUCKET, "");
    }

    /** Uploads {@code file} as {@code key}, unless an object of its size is there already. */
    public void putIfAbsent(String key, Path file) throws IOException {
        try (S3ObjectStore store = objects()) {
            try (var up = store.open(key)) {
                if (up.size() == Files.size(file)) {
                    return;
                }
            } catch (IOException missing) {
                // upload below
            }
            store.put(key, file);
        }
    }

    /** The S3 door (behind its delay proxy): for {@code lazyblock serve s3://}. */
    public DelayProxy s3() {
        return s3Door;
    }

    /** The anonymous HTTP door (behind its delay proxy): {@code http://.../bucket/key} for curl. */
    public DelayProxy http() {
        return httpDoor;
    }

    public URI httpUrl(String key) {
        return httpDoor.uri().resolve("/" + BUCKET + "/" + key);
    }

    /** Both doors' latency model. */
    public void model(DelayProxy.Model m) {
        s3Door.model(m);
        httpDoor.model(m);
    }

    /** Requests and bytes through both doors since the last {@link #reset}. */
    public DelayProxy.Counts counts() {
        DelayProxy.Counts a = s3Door.counts();
        DelayProxy.Counts b = httpDoor.counts();
        return new DelayProxy.Counts(a.requests() + b.requests(), a.responseBytes() + b.responseBytes(),
                a.rangeBytes() + b.rangeBytes());
    }

    public void reset() {
        s3Door.reset();
        httpDoor.reset();
    }

    /** Environment for a {@code lazyblock} process reading this store's S3 door. */
    public Map<String, String> environment() {
        return Map.of("LAZYBLOCK_S3_ENDPOINT", s3Door.uri().toString(), "LAZYBLOCK_S3_REGION", "us-east-1",
                "LAZYBLOCK_S3_PATH_STYLE", "true", "AWS_ACCESS_KEY_ID", ACCESS_KEY, "AWS_SECRET_ACCESS_KEY", SECRET);
    }

    public Path dir() {
        return dir;
    }

    @Override
    public void close() throws Exception {
        s3Door.close();
        httpDoor.close();
        signed.stop();
        anonymous.stop();
    }
}
