package dev.lazyblock.s3;

import dev.lazyblock.upstream.ObjectKeys;
import dev.lazyblock.upstream.ObjectStore;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import software.amazon.awssdk.awscore.AwsRequestOverrideConfiguration;
import software.amazon.awssdk.awscore.exception.AwsServiceException;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.http.ContentStreamProvider;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.model.ChecksumAlgorithm;
import software.amazon.awssdk.services.s3.model.CompletedPart;
import software.amazon.awssdk.services.s3.model.UploadPartResponse;

/**
 * A bucket, with an optional key prefix, as an {@link ObjectStore}: layers and headers are
 * written here and read back as {@link S3Upstream}s.
 *
 * <p>A file larger than the multipart threshold is uploaded in parts (several in flight, each
 * read straight from the file, each with a CRC32 checksum S3 verifies); if any part fails after
 * the SDK's retries, or the thread is interrupted, the upload is aborted, so neither an object
 * nor a pending upload (whose parts S3 would keep billing) is left behind. Smaller files and
 * byte arrays are one {@code PutObject}. Keys are validated before any request.
 */
public final class S3ObjectStore implements ObjectStore {
    private static final Logger log = LoggerFactory.getLogger(S3ObjectStore.class);
    private static final AtomicInteger UPLOAD_THREADS = new AtomicInteger();

    private final S3Client s3;
    private final boolean ownsClient;
    private final String bucket;
    private final String prefix;
    private final String name;
    private final long partSize;
    private final long multipartThreshold;
    private final int uploadConcurrency;
    private final AwsRequestOverrideConfiguration uploadTimeouts;
    private final S3Errors errors;
    /** Kept for the upstreams {@link #open(String)} makes (their resume settings). */
    private final S3Config config;

    /**
     * A store over {@code s3}, a client the caller keeps and closes, with {@code config}'s
     * upload settings.
     *
     * @param prefix "" for the bucket's root, else a key prefix ({@code images/prod}) under which
     *               every key lives
     */
    public S3ObjectStore(S3Client s3, String bucket, String prefix, S3Config config) {
        this(s3, false, bucket, prefix, config);
    }

    private S3ObjectStore(S3Client s3, boolean ownsClient, String bucket, String prefix, S3Config config) {
        this.s3 = Objects.requireNonNull(s3, "s3");
        this.ownsClient = ownsClient;
        this.bucket = S3Location.validateBucket(bucket);
        Objects.requireNonNull(prefix, "prefix");
        if (!prefix.isEmpty()) {
            try {
                ObjectKeys.validate(prefix);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("key prefix: " + e.getMessage(), e);
            }
        }
        this.prefix = prefix;
        this.name = "s3://" + bucket + (prefix.isEmpty() ? "" : "/" + prefix);
        this.partSize = config.partSize();
        this.multipartThreshold = config.multipartThreshold();
        this.uploadConcurrency = config.uploadConcurrency();
        Duration attempt = config.uploadAttemptTimeout();
        this.uploadTimeouts = AwsRequestOverrideConfiguration.builder()
                .apiCallAttemptTimeout(attempt)
                .apiCallTimeout(attempt.multipliedBy(config.maxAttempts()).plus(config.apiCallTimeout()))
                .build();
        this.errors = new S3Errors(config.secrets());
        this.config = config;
    }

    /** A store with a client of its own, built from {@code config}, closed by {@link #close()}. */
    public static S3ObjectStore open(S3Config config, String bucket, String prefix) {
        S3Location.validateBucket(bucket);
        S3Client client = config.newClient();
        try {
            return new S3ObjectStore(client, true, bucket, prefix, config);
        } catch (RuntimeException e) {
            client.close();
            throw e;
        }
    }

    /** {@code s3://bucket} or {@code s3://bucket/prefix}. */
    @Override
    public String name() {
        return name;
    }

    public String bucket() {
        return bucket;
    }

    public String prefix() {
        return prefix;
    }

    /** Where {@code key} lives: validated, under the prefix. */
    public S3Location locate(String key) {
        try {
            ObjectKeys.validate(key);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("key for " + name + ": " + e.getMessage(), e);
        }
        return new S3Location(bucket, prefix.isEmpty() ? key : prefix + "/" + key);
    }

    /** Makes no request: a missing object fails at the first {@code size} or read. */
    @Override
    public S3Upstream open(String key) {
        return new S3Upstream(s3, false, locate(key), config, errors);
    }

    @Override
    public void put(String key, Path file) throws IOException {
        S3Location at = locate(key);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size > multipartThreshold) {
                putMultipart(at, ch, size);
            } else {
                putWhole(at, RequestBody.fromContentProvider(new FileRange(ch, 0, size), size,
                        "application/octet-stream"));
            }
        }
    }

    @Override
    public void put(String key, byte[] bytes) throws IOException {
        putWhole(locate(key), RequestBody.fromBytes(bytes));
    }

    private void putWhole(S3Location at, RequestBody body) throws IOException {
        try {
            s3.putObject(b -> b.bucket(at.bucket()).key(at.key())
                    .checksumAlgorithm(ChecksumAlgorithm.CRC32)
                    .overrideConfiguration(uploadTimeouts), body);
        } catch (RuntimeException e) {
            throw errors.store("putting " + at, e);
        }
        log.debug("{}: stored", at);
    }

    private void putMultipart(S3Location at, FileChannel ch, long size) throws IOException {
        // S3 allows 10,000 parts: a file too large for the configured part size gets larger parts.
        long part = Math.max(partSize, ceilDiv(size, S3Config.MAX_PARTS));
        int parts = (int) ceilDiv(size, part);
        String uploadId;
        try {
            uploadId = s3.createMultipartUpload(b -> b.bucket(at.bucket()).key(at.key())
                    .checksumAlgorithm(ChecksumAlgorithm.CRC32)).uploadId();
        } catch (RuntimeException e) {
            throw errors.store("starting a multipart upload of " + at, e);
        }
        log.debug("{}: multipart upload {} of {} bytes in {} parts of {}", at, uploadId, size, parts, part);
        try {
            List<CompletedPart> done = uploadParts(at, uploadId, ch, size, part, parts);
            s3.completeMultipartUpload(b -> b.bucket(at.bucket()).key(at.key()).uploadId(uploadId)
                    .multipartUpload(m -> m.parts(done)));
        } catch (Throwable t) {
            IOException failure = t instanceof IOException io ? io
                    : errors.store("putting " + at + " (multipart upload of " + parts + " parts)", t);
            abort(at, uploadId, failure);
            throw failure;
        }
        log.debug("{}: multipart upload {} complete", at, uploadId);
    }

    /** Uploads every part, at most {@code uploadConcurrency} at once; the first failure stops the rest. */
    private List<CompletedPart> uploadParts(S3Location at, String uploadId, FileChannel ch, long size, long part,
                                            int parts) throws IOException, InterruptedException {
        ThreadFactory threads = r -> {
            Thread t = new Thread(r, "lazyblock-s3-upload-" + UPLOAD_THREADS.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
        ExecutorService pool = Executors.newFixedThreadPool(Math.min(uploadConcurrency, parts), threads);
        List<Future<CompletedPart>> futures = new ArrayList<>(parts);
        try {
            for (int i = 0; i < parts; i++) {
                int number = i + 1;
                long off = i * part;
                long len = Math.min(part, size - off);
                futures.add(pool.submit(() -> uploadPart(at, uploadId, ch, number, off, len)));
            }
            List<CompletedPart> done = new ArrayList<>(parts);
            for (Future<CompletedPart> f : futures) {
                try {
                    done.add(f.get());
                } catch (ExecutionException e) {
                    Throwable cause = e.getCause();
                    throw cause instanceof IOException io ? io
                            : errors.store("putting " + at + " (multipart upload of " + parts + " parts)", cause);
                }
            }
            done.sort(Comparator.comparingInt(CompletedPart::partNumber));
            return done;
        } finally {
            // Parts still in flight must end before the upload is aborted: S3 may keep a part
            // that completes after the abort.
            for (Future<CompletedPart> f : futures) {
                f.cancel(true);
            }
            pool.shutdownNow();
            boolean interrupted = Thread.interrupted();
            try {
                while (!pool.awaitTermination(1, TimeUnit.MINUTES)) {
                    log.warn("{}: waiting for part uploads of {} to end", at, uploadId);
                }
            } catch (InterruptedException e) {
                interrupted = true;
            } finally {
                if (interrupted) {
                    Thread.currentThread().interrupt();
                }
            }
        }
    }

    private CompletedPart uploadPart(S3Location at, String uploadId, FileChannel ch, int number, long off, long len)
            throws IOException {
        UploadPartResponse r;
        try {
            r = s3.uploadPart(b -> b.bucket(at.bucket()).key(at.key()).uploadId(uploadId)
                            .partNumber(number).contentLength(len)
                            .checksumAlgorithm(ChecksumAlgorithm.CRC32)
                            .overrideConfiguration(uploadTimeouts),
                    RequestBody.fromContentProvider(new FileRange(ch, off, len), len, "application/octet-stream"));
        } catch (RuntimeException e) {
            throw errors.store("putting " + at + ": part " + number + " (bytes " + off + "-" + (off + len - 1) + ")", e);
        }
        return CompletedPart.builder().partNumber(number).eTag(r.eTag()).checksumCRC32(r.checksumCRC32()).build();
    }

    /** Aborts the upload, with the interrupt flag set aside so the request can be made. */
    private void abort(S3Location at, String uploadId, IOException failure) {
        boolean interrupted = Thread.interrupted();
        try {
            s3.abortMultipartUpload(b -> b.bucket(at.bucket()).key(at.key()).uploadId(uploadId));
            log.debug("{}: multipart upload {} aborted", at, uploadId);
        } catch (AwsServiceException e) {
            if (e.statusCode() != 404) { // 404 NoSuchUpload: completed or aborted already
                failure.addSuppressed(errors.store("aborting multipart upload " + uploadId + " of " + at, e));
                log.warn("{}: could not abort multipart upload {}: {}", at, uploadId, errors.scrub(e.getMessage()));
            }
        } catch (RuntimeException e) {
            failure.addSuppressed(errors.store("aborting multipart upload " + uploadId + " of " + at, e));
            log.warn("{}: could not abort multipart upload {}: {}", at, uploadId, errors.scrub(e.getMessage()));
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    @Override
    public List<Listed> list(String keyPrefix) throws IOException {
        String full = prefix.isEmpty() ? keyPrefix : prefix + "/" + keyPrefix;
        List<Listed> out = new ArrayList<>();
        try {
            for (var o : s3.listObjectsV2Paginator(b -> b.bucket(bucket).prefix(full)).contents()) {
                String key = prefix.isEmpty() ? o.key() : o.key().substring(prefix.length() + 1);
                out.add(new Listed(key, o.size(), o.lastModified()));
            }
        } catch (RuntimeException e) {
            throw errors.store("listing s3://" + bucket + "/" + full, e);
        }
        return out;
    }

    @Override
    public boolean exists(String key) throws IOException {
        S3Location at = locate(key);
        try {
            s3.headObject(b -> b.bucket(at.bucket()).key(at.key()));
            return true;
        } catch (AwsServiceException e) {
            if (e.statusCode() == 404) {
                return false;
            }
            throw errors.store("looking for " + at, e);
        } catch (RuntimeException e) {
            throw errors.store("looking for " + at, e);
        }
    }

    @Override
    public void delete(String key) throws IOException {
        S3Location at = locate(key);
        try {
            s3.deleteObject(b -> b.bucket(at.bucket()).key(at.key()));
        } catch (AwsServiceException e) {
            if (e.statusCode() != 404) { // S3 answers 204 for a missing key; some stores say 404
                throw errors.store("deleting " + at, e);
            }
        } catch (RuntimeException e) {
            throw errors.store("deleting " + at, e);
        }
    }

    /** Closes the client if this store built it; upstreams opened from it stop working then. */
    @Override
    public void close() {
        if (ownsClient) {
            s3.close();
        }
    }

    @Override
    public String toString() {
        return "S3ObjectStore[" + name + "]";
    }

    private static long ceilDiv(long a, long b) {
        return (a + b - 1) / b;
    }

    /**
     * {@code [off, off + len)} of a file as a request body: a fresh stream per attempt (the SDK
     * retries), positional reads on the shared channel, no buffering of the part in memory. A
     * file that ends early (truncated during the upload) is an error, never a short part.
     */
    private record FileRange(FileChannel ch, long off, long len) implements ContentStreamProvider {
        @Override
        public InputStream newStream() {
            return new InputStream() {
                private long pos = off;
                private final long end = off + len;

                @Override
                public int read() throws IOException {
                    byte[] one = new byte[1];
                    int n = read(one, 0, 1);
                    return n < 0 ? -1 : one[0] & 0xff;
                }

                @Override
                public int read(byte[] b, int from, int n) throws IOException {
                    Objects.checkFromIndexSize(from, n, b.length);
                    if (pos == end) {
                        return -1;
                    }
                    if (n == 0) {
                        return 0;
                    }
                    int want = (int) Math.min(n, end - pos);
                    int got = ch.read(ByteBuffer.wrap(b, from, want), pos);
                    if (got < 0) {
                        throw new IOException("the file ended at byte " + pos + " while uploading bytes " + off + "-"
                                + (end - 1) + ": it was truncated during the upload");
                    }
                    pos += got;
                    return got;
                }

                @Override
                public int available() {
                    return (int) Math.min(Integer.MAX_VALUE, end - pos);
                }
            };
        }
    }
}
