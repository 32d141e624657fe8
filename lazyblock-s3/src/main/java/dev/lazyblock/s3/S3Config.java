package dev.lazyblock.s3;

import dev.lazyblock.upstream.ConfigValues;
import java.net.URI;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Properties;
import software.amazon.awssdk.auth.credentials.AnonymousCredentialsProvider;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.AwsCredentialsProvider;
import software.amazon.awssdk.auth.credentials.AwsSessionCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.awscore.retry.AwsRetryStrategy;
import software.amazon.awssdk.core.exception.SdkClientException;
import software.amazon.awssdk.http.apache5.Apache5HttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.retries.api.BackoffStrategy;
import software.amazon.awssdk.regions.providers.DefaultAwsRegionProviderChain;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.S3ClientBuilder;

/**
 * How lazyblock talks to S3 or an S3-compatible store: where (endpoint, region, path-style
 * addressing), as whom (credentials), how long it waits and how often it retries, and how it
 * uploads large files. Immutable; {@link #newClient()} builds a synchronous {@link S3Client} on
 * Apache HttpClient 5.
 *
 * <p>Defaults: the SDK's region and credentials provider chains ({@code AWS_REGION},
 * {@code AWS_ACCESS_KEY_ID}/{@code AWS_SECRET_ACCESS_KEY}, profiles, instance roles); the
 * region falls back to {@code us-east-1} when an endpoint is given and the chain finds none.
 * Every request has an attempt timeout and a call timeout; failed attempts are retried by the
 * SDK's standard strategy (at most {@link #maxAttempts()} attempts) on throttling, 5xx answers
 * and I/O errors, never on other 4xx answers. Its back-off is exponential with "half" jitter:
 * before retry {@code n} (1, 2, ...) it waits between {@code d/2} and {@code d}, where
 * {@code d = min(base * 2^(n-1), 20 s)} and {@code base} is {@link #retryBaseDelay()} (100 ms),
 * or {@link #throttleBaseDelay()} (1 s) when S3 throttles (503 SlowDown, 429...). Half jitter
 * rather than the SDK's full jitter: a throttled store never sees an immediate retry, and many
 * clients retrying together still spread out.
 *
 * <p>{@link #toString()} and every message this module writes leave secrets out.
 */
public final class S3Config {
    public static final Duration DEFAULT_CONNECT_TIMEOUT = Duration.ofSeconds(10);
    public static final Duration DEFAULT_SOCKET_TIMEOUT = Duration.ofSeconds(30);
    public static final Duration DEFAULT_ATTEMPT_TIMEOUT = Duration.ofSeconds(30);
    public static final Duration DEFAULT_CALL_TIMEOUT = Duration.ofSeconds(60);
    public static final Duration DEFAULT_UPLOAD_ATTEMPT_TIMEOUT = Duration.ofMinutes(5);
    public static final int DEFAULT_MAX_ATTEMPTS = 4;
    /** First retry after an error waits 50-100 ms; each later one twice as long. */
    public static final Duration DEFAULT_RETRY_BASE_DELAY = Duration.ofMillis(100);
    /** First retry after throttling (503 SlowDown) waits 0.5-1 s: the SDK's throttled base. */
    public static final Duration DEFAULT_THROTTLE_BASE_DELAY = Duration.ofSeconds(1);
    /** No back-off is longer than this (the SDK's cap). */
    public static final Duration MAX_BACKOFF = Duration.ofSeconds(20);
    public static final int DEFAULT_MAX_CONNECTIONS = 64;
    public static final long DEFAULT_PART_SIZE = 16L << 20;
    public static final long DEFAULT_MULTIPART_THRESHOLD = 16L << 20;
    public static final int DEFAULT_UPLOAD_CONCURRENCY = 4;
    /** S3's smallest part (all but the last). */
    public static final long MIN_PART_SIZE = 5L << 20;
    /** S3's largest part. */
    public static final long MAX_PART_SIZE = 5L << 30;
    /** S3's most parts in one upload. */
    public static final int MAX_PARTS = 10_000;
    /** The region used with an endpoint override when the SDK's chain finds none. */
    public static final Region FALLBACK_REGION = Region.US_EAST_1;

    private final URI endpoint;
    private final String region;
    private final boolean pathStyle;
    private final AwsCredentialsProvider credentials;
    private final String credentialsKind;
    private final List<String> secrets;
    private final Duration connectTimeout;
    private final Duration socketTimeout;
    private final Duration apiCallAttemptTimeout;
    private final Duration apiCallTimeout;
    private final Duration uploadAttemptTimeout;
    private final int maxAttempts;
    private final Duration retryBaseDelay;
    private final Duration throttleBaseDelay;
    private final int maxConnections;
    private final long partSize;
    private final long multipartThreshold;
    private final int uploadConcurrency;

    private S3Config(Builder b) {
        this.endpoint = b.endpoint;
        this.region = b.region;
        this.pathStyle = b.pathStyle;
        this.credentials = b.credentials;
        this.credentialsKind = b.credentialsKind;
        this.secrets = List.copyOf(b.secrets);
        this.connectTimeout = b.connectTimeout;
        this.socketTimeout = b.socketTimeout;
        this.apiCallAttemptTimeout = b.apiCallAttemptTimeout;
        this.apiCallTimeout = b.apiCallTimeout;
        this.uploadAttemptTimeout = b.uploadAttemptTimeout;
        this.maxAttempts = b.maxAttempts;
        this.retryBaseDelay = b.retryBaseDelay;
        this.throttleBaseDelay = b.throttleBaseDelay;
        this.maxConnections = b.maxConnections;
        this.partSize = b.partSize;
        this.multipartThreshold = b.multipartThreshold;
        this.uploadConcurrency = b.uploadConcurrency;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Every default: AWS S3, the SDK's region and credentials chains. */
    public static S3Config defaults() {
        return builder().build();
    }

    /**
     * The configuration the process's environment describes: each setting from a system
     * property ({@code -Dlazyblock.s3.region=...}) or, if that is not set, an environment
     * variable ({@code LAZYBLOCK_S3_REGION}); see {@link Setting}. Credentials are the SDK's
     * business: {@code AWS_ACCESS_KEY_ID}, {@code AWS_SECRET_ACCESS_KEY},
     * {@code AWS_SESSION_TOKEN}, {@code AWS_PROFILE}, {@code aws.accessKeyId}... are read by
     * its default provider chain when the first request is signed.
     *
     * @throws IllegalArgumentException naming the variable whose value is not valid
     */
    public static S3Config fromEnvironment() {
        return fromEnvironment(System.getenv(), System.getProperties());
    }

    /** {@link #fromEnvironment()} over given variables and properties (properties win). */
    public static S3Config fromEnvironment(Map<String, String> env, Properties props) {
        Builder b = builder();
        for (Setting s : Setting.values()) {
            ConfigValues.Found f = ConfigValues.find(env, props, s.property, s.variable);
            if (f != null) {
                f.applyTo(v -> s.apply(b, v));
            }
        }
        return b.build();
    }

    /**
     * The settings {@link #fromEnvironment()} reads: a system property and an environment
     * variable each. Durations are seconds ({@code 30}), or with a unit ({@code 500ms},
     * {@code 30s}, {@code 2m}), or ISO-8601 ({@code PT30S}); sizes are bytes, or with a binary
     * unit ({@code 16MiB}, {@code 16M}).
     */
    public enum Setting {
        /** Endpoint override: {@code http(s)://host[:port]} of an S3-compatible store. */
        ENDPOINT("lazyblock.s3.endpoint", "LAZYBLOCK_S3_ENDPOINT") {
            @Override
            void apply(Builder b, String v) {
                b.endpoint(ConfigValues.uri(v));
            }
        },
        /** Region, e.g. {@code eu-west-1}. */
        REGION("lazyblock.s3.region", "LAZYBLOCK_S3_REGION") {
            @Override
            void apply(Builder b, String v) {
                b.region(v);
            }
        },
        /** {@code true}: path-style URLs ({@code endpoint/bucket/key}), as MinIO and S3Proxy want. */
        PATH_STYLE("lazyblock.s3.pathStyle", "LAZYBLOCK_S3_PATH_STYLE") {
            @Override
            void apply(Builder b, String v) {
                b.pathStyle(ConfigValues.bool(v));
            }
        },
        /** {@code true}: unsigned requests, for public buckets. */
        ANONYMOUS("lazyblock.s3.anonymous", "LAZYBLOCK_S3_ANONYMOUS") {
            @Override
            void apply(Builder b, String v) {
                if (ConfigValues.bool(v)) {
                    b.anonymous();
                }
            }
        },
        MAX_ATTEMPTS("lazyblock.s3.maxAttempts", "LAZYBLOCK_S3_MAX_ATTEMPTS") {
            @Override
            void apply(Builder b, String v) {
                b.maxAttempts(ConfigValues.wholeNumber(v));
            }
        },
        /** Back-off base after an error (a reset, a 500); doubles per retry. */
        RETRY_BASE_DELAY("lazyblock.s3.retryBaseDelay", "LAZYBLOCK_S3_RETRY_BASE_DELAY") {
            @Override
            void apply(Builder b, String v) {
                b.retryBaseDelay(ConfigValues.duration(v));
            }
        },
        /** Back-off base after throttling (503 SlowDown); doubles per retry. */
        THROTTLE_BASE_DELAY("lazyblock.s3.throttleBaseDelay", "LAZYBLOCK_S3_THROTTLE_BASE_DELAY") {
            @Override
            void apply(Builder b, String v) {
                b.throttleBaseDelay(ConfigValues.duration(v));
            }
        },
        MAX_CONNECTIONS("lazyblock.s3.maxConnections", "LAZYBLOCK_S3_MAX_CONNECTIONS") {
            @Override
            void apply(Builder b, String v) {
                b.maxConnections(ConfigValues.wholeNumber(v));
            }
        },
        CONNECT_TIMEOUT("lazyblock.s3.connectTimeout", "LAZYBLOCK_S3_CONNECT_TIMEOUT") {
            @Override
            void apply(Builder b, String v) {
                b.connectTimeout(ConfigValues.duration(v));
            }
        },
        SOCKET_TIMEOUT("lazyblock.s3.socketTimeout", "LAZYBLOCK_S3_SOCKET_TIMEOUT") {
            @Override
            void apply(Builder b, String v) {
                b.socketTimeout(ConfigValues.duration(v));
            }
        },
        ATTEMPT_TIMEOUT("lazyblock.s3.attemptTimeout", "LAZYBLOCK_S3_ATTEMPT_TIMEOUT") {
            @Override
            void apply(Builder b, String v) {
                b.apiCallAttemptTimeout(ConfigValues.duration(v));
            }
        },
        CALL_TIMEOUT("lazyblock.s3.callTimeout", "LAZYBLOCK_S3_CALL_TIMEOUT") {
            @Override
            void apply(Builder b, String v) {
                b.apiCallTimeout(ConfigValues.duration(v));
            }
        },
        UPLOAD_ATTEMPT_TIMEOUT("lazyblock.s3.uploadAttemptTimeout", "LAZYBLOCK_S3_UPLOAD_ATTEMPT_TIMEOUT") {
            @Override
            void apply(Builder b, String v) {
                b.uploadAttemptTimeout(ConfigValues.duration(v));
            }
        },
        PART_SIZE("lazyblock.s3.partSize", "LAZYBLOCK_S3_PART_SIZE") {
            @Override
            void apply(Builder b, String v) {
                b.partSize(ConfigValues.size(v));
            }
        },
        MULTIPART_THRESHOLD("lazyblock.s3.multipartThreshold", "LAZYBLOCK_S3_MULTIPART_THRESHOLD") {
            @Override
            void apply(Builder b, String v) {
                b.multipartThreshold(ConfigValues.size(v));
            }
        },
        UPLOAD_CONCURRENCY("lazyblock.s3.uploadConcurrency", "LAZYBLOCK_S3_UPLOAD_CONCURRENCY") {
            @Override
            void apply(Builder b, String v) {
                b.uploadConcurrency(ConfigValues.wholeNumber(v));
            }
        };

        private final String property;
        private final String variable;

        Setting(String property, String variable) {
            this.property = property;
            this.variable = variable;
        }

        public String property() {
            return property;
        }

        public String variable() {
            return variable;
        }

        abstract void apply(Builder b, String value);
    }

    /**
     * A new client for this configuration. The caller closes it (which closes its HTTP client).
     *
     * @throws IllegalStateException if no endpoint is given and no region can be found
     */
    public S3Client newClient() {
        S3ClientBuilder b = S3Client.builder()
                .httpClientBuilder(Apache5HttpClient.builder()
                        .connectionTimeout(connectTimeout)
                        .socketTimeout(socketTimeout)
                        .maxConnections(maxConnections))
                .region(resolveRegion())
                .forcePathStyle(pathStyle)
                .overrideConfiguration(o -> o
                        .apiCallAttemptTimeout(apiCallAttemptTimeout)
                        .apiCallTimeout(apiCallTimeout)
                        .retryStrategy(AwsRetryStrategy.standardRetryStrategy().toBuilder()
                                .maxAttempts(maxAttempts)
                                .backoffStrategy(backoff())
                                .throttlingBackoffStrategy(throttlingBackoff())
                                .build()));
        if (endpoint != null) {
            b.endpointOverride(endpoint);
        } else {
            // AWS itself: a bucket in another region answers 301; follow it rather than fail.
            b.crossRegionAccessEnabled(true);
        }
        if (credentials != null) {
            b.credentialsProvider(credentials);
        }
        return b.build();
    }

    /** Back-off before a retry after an error: see the class comment. */
    BackoffStrategy backoff() {
        return BackoffStrategy.exponentialDelayHalfJitter(retryBaseDelay, MAX_BACKOFF);
    }

    /** Back-off before a retry after throttling: see the class comment. */
    BackoffStrategy throttlingBackoff() {
        return BackoffStrategy.exponentialDelayHalfJitter(throttleBaseDelay, MAX_BACKOFF);
    }

    /** The configured region, else the SDK chain's, else us-east-1 if an endpoint is given. */
    Region resolveRegion() {
        if (region != null) {
            return Region.of(region);
        }
        try {
            return new DefaultAwsRegionProviderChain().getRegion();
        } catch (SdkClientException e) {
            if (endpoint != null) {
                return FALLBACK_REGION;
            }
            throw new IllegalStateException("no AWS region configured: set " + Setting.REGION.variable
                    + " (or AWS_REGION, or a profile's region)", e);
        }
    }

    /** Null for AWS itself. */
    public URI endpoint() {
        return endpoint;
    }

    /** Null if the SDK's region chain decides. */
    public String region() {
        return region;
    }

    public boolean pathStyle() {
        return pathStyle;
    }

    public Duration connectTimeout() {
        return connectTimeout;
    }

    /** Longest wait for bytes on an open connection (a stalled body fails after it). */
    public Duration socketTimeout() {
        return socketTimeout;
    }

    /** Longest time for one attempt of a request (for a ranged read, until its body is read). */
    public Duration apiCallAttemptTimeout() {
        return apiCallAttemptTimeout;
    }

    /** Longest time for a request with all its retries. */
    public Duration apiCallTimeout() {
        return apiCallTimeout;
    }

    /** Attempt timeout of an upload (a whole small object, or one part of a multipart upload). */
    public Duration uploadAttemptTimeout() {
        return uploadAttemptTimeout;
    }

    /**
     * Attempts per request, the first included; also the most times a range stream is opened
     * (the first time included) when its connection drops mid-body.
     */
    public int maxAttempts() {
        return maxAttempts;
    }

    /** Back-off base after an error: retry n waits between base*2^(n-1)/2 and base*2^(n-1). */
    public Duration retryBaseDelay() {
        return retryBaseDelay;
    }

    /** Back-off base after throttling (503 SlowDown, 429). */
    public Duration throttleBaseDelay() {
        return throttleBaseDelay;
    }

    public int maxConnections() {
        return maxConnections;
    }

    public long partSize() {
        return partSize;
    }

    /** Files of more bytes than this are uploaded in parts. */
    public long multipartThreshold() {
        return multipartThreshold;
    }

    /** Parts of one multipart upload in flight at once. */
    public int uploadConcurrency() {
        return uploadConcurrency;
    }

    /** Secret strings to keep out of messages (an explicit secret key, a session token). */
    List<String> secrets() {
        return secrets;
    }

    @Override
    public String toString() {
        return "S3Config[endpoint=" + (endpoint == null ? "AWS" : endpoint)
                + ", region=" + (region == null ? "(SDK chain)" : region)
                + ", pathStyle=" + pathStyle
                + ", credentials=" + credentialsKind
                + ", connectTimeout=" + connectTimeout
                + ", socketTimeout=" + socketTimeout
                + ", attemptTimeout=" + apiCallAttemptTimeout
                + ", callTimeout=" + apiCallTimeout
                + ", uploadAttemptTimeout=" + uploadAttemptTimeout
                + ", maxAttempts=" + maxAttempts
                + ", retryBaseDelay=" + retryBaseDelay
                + ", throttleBaseDelay=" + throttleBaseDelay
                + ", maxConnections=" + maxConnections
                + ", partSize=" + partSize
                + ", multipartThreshold=" + multipartThreshold
                + ", uploadConcurrency=" + uploadConcurrency + "]";
    }

    /** Builds an {@link S3Config}; every setting has a default. */
    public static final class Builder {
        private URI endpoint;
        private String region;
        private boolean pathStyle;
        private AwsCredentialsProvider credentials;
        private String credentialsKind = "SDK default chain";
        private final List<String> secrets = new ArrayList<>();
        private Duration connectTimeout = DEFAULT_CONNECT_TIMEOUT;
        private Duration socketTimeout = DEFAULT_SOCKET_TIMEOUT;
        private Duration apiCallAttemptTimeout = DEFAULT_ATTEMPT_TIMEOUT;
        private Duration apiCallTimeout = DEFAULT_CALL_TIMEOUT;
        private Duration uploadAttemptTimeout = DEFAULT_UPLOAD_ATTEMPT_TIMEOUT;
        private int maxAttempts = DEFAULT_MAX_ATTEMPTS;
        private Duration retryBaseDelay = DEFAULT_RETRY_BASE_DELAY;
        private Duration throttleBaseDelay = DEFAULT_THROTTLE_BASE_DELAY;
        private int maxConnections = DEFAULT_MAX_CONNECTIONS;
        private long partSize = DEFAULT_PART_SIZE;
        private long multipartThreshold = DEFAULT_MULTIPART_THRESHOLD;
        private int uploadConcurrency = DEFAULT_UPLOAD_CONCURRENCY;

        private Builder() {}

        /**
         * An S3-compatible store at {@code http(s)://host[:port]}; null for AWS itself.
         *
         * @throws IllegalArgumentException for another scheme, no host, user info, a query or a
         *                                  fragment (none of which is repeated in the message)
         */
        public Builder endpoint(URI endpoint) {
            if (endpoint != null) {
                String scheme = endpoint.getScheme() == null ? "" : endpoint.getScheme().toLowerCase(Locale.ROOT);
                if (!scheme.equals("http") && !scheme.equals("https")) {
                    throw new IllegalArgumentException("endpoint must be an http:// or https:// URL, scheme is '"
                            + scheme + "'");
                }
                if (endpoint.getRawUserInfo() != null) {
                    throw new IllegalArgumentException("endpoint must not carry user info: give credentials through"
                            + " the SDK's variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)");
                }
                if (endpoint.getRawQuery() != null || endpoint.getRawFragment() != null) {
                    throw new IllegalArgumentException("endpoint must not have a query string or fragment");
                }
                if (endpoint.getHost() == null) {
                    throw new IllegalArgumentException("endpoint has no host");
                }
            }
            this.endpoint = endpoint;
            return this;
        }

        /** A region name such as {@code eu-west-1}; null to ask the SDK's chain. */
        public Builder region(String region) {
            if (region != null && !region.matches("[a-z0-9-]{1,64}")) {
                throw new IllegalArgumentException("region '" + region
                        + "' is not a region name (lowercase letters, digits and '-')");
            }
            this.region = region;
            return this;
        }

        public Builder pathStyle(boolean pathStyle) {
            this.pathStyle = pathStyle;
            return this;
        }

        /** Fixed credentials instead of the SDK's chain. */
        public Builder credentials(String accessKeyId, String secretAccessKey) {
            Objects.requireNonNull(accessKeyId, "accessKeyId");
            Objects.requireNonNull(secretAccessKey, "secretAccessKey");
            this.credentials = StaticCredentialsProvider.create(AwsBasicCredentials.create(accessKeyId, secretAccessKey));
            this.credentialsKind = "static";
            this.secrets.clear();
            addSecret(secretAccessKey);
            return this;
        }

        /** Fixed temporary credentials instead of the SDK's chain. */
        public Builder credentials(String accessKeyId, String secretAccessKey, String sessionToken) {
            Objects.requireNonNull(accessKeyId, "accessKeyId");
            Objects.requireNonNull(secretAccessKey, "secretAccessKey");
            Objects.requireNonNull(sessionToken, "sessionToken");
            this.credentials = StaticCredentialsProvider.create(
                    AwsSessionCredentials.create(accessKeyId, secretAccessKey, sessionToken));
            this.credentialsKind = "static session";
            this.secrets.clear();
            addSecret(secretAccessKey);
            addSecret(sessionToken);
            return this;
        }

        private void addSecret(String s) {
            if (!s.isEmpty()) {
                secrets.add(s);
            }
        }

        /** A provider of the caller's choice; the caller closes it if it needs closing. */
        public Builder credentialsProvider(AwsCredentialsProvider provider) {
            this.credentials = Objects.requireNonNull(provider, "provider");
            this.credentialsKind = "provider " + provider.getClass().getSimpleName();
            this.secrets.clear();
            return this;
        }

        /** Unsigned requests: public buckets only. */
        public Builder anonymous() {
            this.credentials = AnonymousCredentialsProvider.create();
            this.credentialsKind = "anonymous";
            this.secrets.clear();
            return this;
        }

        public Builder connectTimeout(Duration d) {
            this.connectTimeout = ConfigValues.positive("connect timeout", d);
            return this;
        }

        public Builder socketTimeout(Duration d) {
            this.socketTimeout = ConfigValues.positive("socket timeout", d);
            return this;
        }

        public Builder apiCallAttemptTimeout(Duration d) {
            this.apiCallAttemptTimeout = ConfigValues.positive("attempt timeout", d);
            return this;
        }

        public Builder apiCallTimeout(Duration d) {
            this.apiCallTimeout = ConfigValues.positive("call timeout", d);
            return this;
        }

        public Builder uploadAttemptTimeout(Duration d) {
            this.uploadAttemptTimeout = ConfigValues.positive("upload attempt timeout", d);
            return this;
        }

        /** Attempts per request, the first included (1 = no retries), at most 10. */
        public Builder maxAttempts(int n) {
            if (n < 1 || n > 10) {
                throw new IllegalArgumentException("max attempts must be 1 to 10, got " + n);
            }
            this.maxAttempts = n;
            return this;
        }

        /** Back-off base after an error; 1 ms to 20 s. */
        public Builder retryBaseDelay(Duration d) {
            this.retryBaseDelay = backoffBase(d, "retry base delay");
            return this;
        }

        /** Back-off base after throttling; 1 ms to 20 s. */
        public Builder throttleBaseDelay(Duration d) {
            this.throttleBaseDelay = backoffBase(d, "throttle base delay");
            return this;
        }

        public Builder maxConnections(int n) {
            if (n < 1) {
                throw new IllegalArgumentException("max connections must be positive, got " + n);
            }
            this.maxConnections = n;
            return this;
        }

        /** Bytes per part of a multipart upload: 5 MiB to 5 GiB (S3's limits). */
        public Builder partSize(long bytes) {
            if (bytes < MIN_PART_SIZE || bytes > MAX_PART_SIZE) {
                throw new IllegalArgumentException("part size must be 5 MiB to 5 GiB, got " + bytes + " bytes");
            }
            this.partSize = bytes;
            return this;
        }

        /** Files of more bytes than this are uploaded in parts; at least 5 MiB, at most 5 GiB. */
        public Builder multipartThreshold(long bytes) {
            if (bytes < MIN_PART_SIZE || bytes > MAX_PART_SIZE) {
                throw new IllegalArgumentException("multipart threshold must be 5 MiB to 5 GiB, got " + bytes
                        + " bytes");
            }
            this.multipartThreshold = bytes;
            return this;
        }

        public Builder uploadConcurrency(int n) {
            if (n < 1 || n > 64) {
                throw new IllegalArgumentException("upload concurrency must be 1 to 64, got " + n);
            }
            this.uploadConcurrency = n;
            return this;
        }

        public S3Config build() {
            if (apiCallTimeout.compareTo(apiCallAttemptTimeout) < 0) {
                throw new IllegalArgumentException("call timeout (" + apiCallTimeout
                        + ") is shorter than the attempt timeout (" + apiCallAttemptTimeout + ")");
            }
            if (maxConnections < uploadConcurrency) {
                throw new IllegalArgumentException("max connections (" + maxConnections
                        + ") below the upload concurrency (" + uploadConcurrency + ")");
            }
            return new S3Config(this);
        }
    }

    private static Duration backoffBase(Duration d, String what) {
        // The SDK computes delays in whole milliseconds: below 1 ms would be no back-off at all.
        if (d == null || d.toMillis() < 1 || d.compareTo(MAX_BACKOFF) > 0) {
            throw new IllegalArgumentException(what + " must be 1 ms to " + MAX_BACKOFF.toSeconds() + " s, got " + d);
        }
        return d;
    }

}
