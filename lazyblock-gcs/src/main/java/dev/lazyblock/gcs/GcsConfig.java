package dev.lazyblock.gcs;

import dev.lazyblock.upstream.ConfigValues;
import com.google.api.gax.retrying.RetrySettings;
import com.google.auth.Credentials;
import com.google.auth.oauth2.GoogleCredentials;
import com.google.cloud.NoCredentials;
import com.google.cloud.http.HttpTransportOptions;
import com.google.cloud.storage.Storage;
import com.google.cloud.storage.StorageOptions;
import dev.lazyblock.s3.S3Config;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;

/**
 * How lazyblock talks to Google Cloud Storage, through one of its two APIs:
 *
 * <ul>
 *   <li>{@link Api#JSON} (the default): Google's {@code google-cloud-storage} client over HTTP,
 *       with Application Default Credentials (or a service-account key file, or none for an
 *       emulator or a public bucket), a project, and an endpoint override for emulators.
 *       Retries: the client's default strategy (idempotent calls on 429, 5xx and I/O errors,
 *       never other 4xx), exponential back-off from {@link #retryBaseDelay()} with jitter, at
 *       most {@link #maxAttempts()} attempts, all within {@link #callTimeout()}. Connect and read
 *       timeouts on every request.</li>
 *   <li>{@link Api#XML}: GCS's S3-interoperable XML API with HMAC keys, spoken by lazyblock-s3
 *       (endpoint {@code https://storage.googleapis.com}, path style, SigV4, region {@code auto}),
 *       with the same retry and timeout settings.</li>
 * </ul>
 *
 * <p>{@link #toString()} shows no secret.
 */
public final class GcsConfig {
    /** Which of GCS's APIs to speak. */
    public enum Api { JSON, XML }

    public static final URI XML_ENDPOINT = URI.create("https://storage.googleapis.com");
    public static final Duration DEFAULT_CONNECT_TIMEOUT = Duration.ofSeconds(10);
    public static final Duration DEFAULT_READ_TIMEOUT = Duration.ofSeconds(30);
    public static final Duration DEFAULT_CALL_TIMEOUT = Duration.ofSeconds(60);
    public static final int DEFAULT_MAX_ATTEMPTS = 4;
    public static final Duration DEFAULT_RETRY_BASE_DELAY = Duration.ofMillis(100);
    public static final Duration MAX_RETRY_DELAY = Duration.ofSeconds(20);
    /** Resumable upload chunk: a multiple of 256 KiB. */
    public static final int DEFAULT_UPLOAD_CHUNK_SIZE = 16 << 20;

    private final Api api;
    private final String project;
    private final URI endpoint;
    private final Path credentialsFile;
    private final boolean anonymous;
    private final String hmacAccessId;
    private final String hmacSecret;
    private final Duration connectTimeout;
    private final Duration readTimeout;
    private final Duration callTimeout;
    private final int maxAttempts;
    private final Duration retryBaseDelay;
    private final int uploadChunkSize;

    private GcsConfig(Builder b) {
        this.api = b.api;
        this.project = b.project;
        this.endpoint = b.endpoint;
        this.credentialsFile = b.credentialsFile;
        this.anonymous = b.anonymous;
        this.hmacAccessId = b.hmacAccessId;
        this.hmacSecret = b.hmacSecret;
        this.connectTimeout = b.connectTimeout;
        this.readTimeout = b.readTimeout;
        this.callTimeout = b.callTimeout;
        this.maxAttempts = b.maxAttempts;
        this.retryBaseDelay = b.retryBaseDelay;
        this.uploadChunkSize = b.uploadChunkSize;
        if (api == Api.XML && !anonymous && (hmacAccessId == null || hmacSecret == null)) {
            throw new IllegalArgumentException("the XML API needs an HMAC key: LAZYBLOCK_GCS_HMAC_ACCESS_ID and"
                    + " LAZYBLOCK_GCS_HMAC_SECRET (or LAZYBLOCK_GCS_ANONYMOUS=true for a public bucket)");
        }
    }

    public static Builder builder() {
        return new Builder();
    }

    /** From system properties, else environment variables (see {@link Setting}). */
    public static GcsConfig fromEnvironment() {
        return fromEnvironment(System.getenv(), System.getProperties());
    }

    /** {@link #fromEnvironment()} over given variables and properties (properties win). */
    public static GcsConfig fromEnvironment(Map<String, String> env, Properties props) {
        Builder b = builder();
        for (Setting s : Setting.values()) {
            ConfigValues.Found f = ConfigValues.find(env, props, s.property, s.variable, s.googleVariable);
            if (f != null) {
                f.applyTo(v -> s.apply(b, v));
            }
        }
        try {
            return b.build();
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("GCS configuration: " + e.getMessage(), e);
        }
    }

    /** The settings {@link #fromEnvironment()} reads: a system property and a variable each. */
    public enum Setting {
        API("lazyblock.gcs.api", "LAZYBLOCK_GCS_API", null) {
            @Override
            void apply(Builder b, String v) {
                try {
                    b.api(Api.valueOf(v.toUpperCase(Locale.ROOT)));
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("'" + v + "' is not an API: json or xml");
                }
            }
        },
        PROJECT("lazyblock.gcs.project", "LAZYBLOCK_GCS_PROJECT", "GOOGLE_CLOUD_PROJECT") {
            @Override
            void apply(Builder b, String v) {
                b.project(v);
            }
        },
        /** JSON API: {@code http(s)://host[:port]} of an emulator; XML API: the XML endpoint. */
        ENDPOINT("lazyblock.gcs.endpoint", "LAZYBLOCK_GCS_ENDPOINT", null) {
            @Override
            void apply(Builder b, String v) {
                b.endpoint(ConfigValues.uri(v));
            }
        },
        CREDENTIALS("lazyblock.gcs.credentials", "LAZYBLOCK_GCS_CREDENTIALS", null) {
            @Override
            void apply(Builder b, String v) {
                b.credentialsFile(Path.of(v));
            }
        },
        ANONYMOUS("lazyblock.gcs.anonymous", "LAZYBLOCK_GCS_ANONYMOUS", null) {
            @Override
            void apply(Builder b, String v) {
                b.anonymous(ConfigValues.bool(v));
            }
        },
        HMAC_ACCESS_ID("lazyblock.gcs.hmacAccessId", "LAZYBLOCK_GCS_HMAC_ACCESS_ID", null) {
            @Override
            void apply(Builder b, String v) {
                b.hmacAccessId = v;
            }
        },
        HMAC_SECRET("lazyblock.gcs.hmacSecret", "LAZYBLOCK_GCS_HMAC_SECRET", null) {
            @Override
            void apply(Builder b, String v) {
                b.hmacSecret = v;
            }
        },
        MAX_ATTEMPTS("lazyblock.gcs.maxAttempts", "LAZYBLOCK_GCS_MAX_ATTEMPTS", null) {
            @Override
            void apply(Builder b, String v) {
                try {
                    b.maxAttempts(Integer.parseInt(v));
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("'" + v + "' is not a whole number");
                }
            }
        },
        RETRY_BASE_DELAY("lazyblock.gcs.retryBaseDelay", "LAZYBLOCK_GCS_RETRY_BASE_DELAY", null) {
            @Override
            void apply(Builder b, String v) {
                b.retryBaseDelay(ConfigValues.duration(v));
            }
        },
        CONNECT_TIMEOUT("lazyblock.gcs.connectTimeout", "LAZYBLOCK_GCS_CONNECT_TIMEOUT", null) {
            @Override
            void apply(Builder b, String v) {
                b.connectTimeout(ConfigValues.duration(v));
            }
        },
        READ_TIMEOUT("lazyblock.gcs.readTimeout", "LAZYBLOCK_GCS_READ_TIMEOUT", null) {
            @Override
            void apply(Builder b, String v) {
                b.readTimeout(ConfigValues.duration(v));
            }
        },
        CALL_TIMEOUT("lazyblock.gcs.callTimeout", "LAZYBLOCK_GCS_CALL_TIMEOUT", null) {
            @Override
            void apply(Builder b, String v) {
                b.callTimeout(ConfigValues.duration(v));
            }
        },
        UPLOAD_CHUNK_SIZE("lazyblock.gcs.uploadChunkSize", "LAZYBLOCK_GCS_UPLOAD_CHUNK_SIZE", null) {
            @Override
            void apply(Builder b, String v) {
                long n = ConfigValues.size(v);
                if (n > Integer.MAX_VALUE) {
                    throw new IllegalArgumentException("'" + v + "' is more than 2 GiB");
                }
                b.uploadChunkSize((int) n);
            }
        };

        private final String property;
        private final String variable;
        private final String googleVariable;

        Setting(String property, String variable, String googleVariable) {
            this.property = property;
            this.variable = variable;
            this.googleVariable = googleVariable;
        }

        public String property() {
            return property;
        }

        public String variable() {
            return variable;
        }

        abstract void apply(Builder b, String v);
    }

    /**
     * A JSON-API client: the endpoint override or Google's, the credentials (none when anonymous,
     * the key file when given, else Application Default Credentials), retries within the call
     * timeout, connect and read timeouts.
     *
     * @throws IOException if the credentials cannot be loaded
     */
    public Storage newJsonClient() throws IOException {
        HttpTransportOptions transport = HttpTransportOptions.newBuilder()
                .setConnectTimeout((int) connectTimeout.toMillis())
                .setReadTimeout((int) readTimeout.toMillis())
                .build();
        RetrySettings retries = RetrySettings.newBuilder()
                .setMaxAttempts(maxAttempts)
                .setInitialRetryDelayDuration(retryBaseDelay)
                .setRetryDelayMultiplier(2.0)
                .setMaxRetryDelayDuration(MAX_RETRY_DELAY)
                .setTotalTimeoutDuration(callTimeout)
                .setInitialRpcTimeoutDuration(readTimeout)
                .setRpcTimeoutMultiplier(1.0)
                .setMaxRpcTimeoutDuration(readTimeout)
                .setJittered(true)
                .build();
        var b = StorageOptions.http()
                .setTransportOptions(transport)
                .setRetrySettings(retries)
                .setCredentials(credentials());
        if (project != null) {
            b.setProjectId(project);
        }
        if (endpoint != null) {
            b.setHost(endpoint.toString());
        }
        return b.build().getService();
    }

    private Credentials credentials() throws IOException {
        if (anonymous) {
            return NoCredentials.getInstance();
        }
        if (credentialsFile != null) {
            try (InputStream in = Files.newInputStream(credentialsFile)) {
                return GoogleCredentials.fromStream(in)
                        .createScoped("https://www.googleapis.com/auth/devstorage.read_write");
            } catch (IOException e) {
                // The message names the file, never its contents.
                throw new IOException("reading GCS credentials from " + credentialsFile + ": "
                        + e.getClass().getSimpleName(), null);
            }
        }
        try {
            return GoogleCredentials.getApplicationDefault()
                    .createScoped("https://www.googleapis.com/auth/devstorage.read_write");
        } catch (IOException e) {
            throw new IOException("no Google credentials: set GOOGLE_APPLICATION_CREDENTIALS or"
                    + " LAZYBLOCK_GCS_CREDENTIALS to a key file, run 'gcloud auth application-default login', or"
                    + " set LAZYBLOCK_GCS_ANONYMOUS=true for a public bucket or an emulator ("
                    + e.getMessage() + ")", e);
        }
    }

    /** The XML API as lazyblock-s3 speaks it: the endpoint, path style, HMAC key, the same timeouts. */
    public S3Config xmlConfig() {
        S3Config.Builder b = S3Config.builder()
                .endpoint(endpoint != null ? endpoint : XML_ENDPOINT)
                .region(endpoint != null ? "us-east-1" : "auto")
                .pathStyle(true)
                .maxAttempts(maxAttempts)
                .retryBaseDelay(retryBaseDelay)
                .connectTimeout(connectTimeout)
                .socketTimeout(readTimeout)
                .apiCallAttemptTimeout(readTimeout.compareTo(callTimeout) < 0 ? readTimeout : callTimeout)
                .apiCallTimeout(callTimeout);
        if (anonymous) {
            b.anonymous();
        } else {
            b.credentials(hmacAccessId, hmacSecret);
        }
        return b.build();
    }

    public Api api() {
        return api;
    }

    public String project() {
        return project;
    }

    public URI endpoint() {
        return endpoint;
    }

    public Duration callTimeout() {
        return callTimeout;
    }

    public Duration readTimeout() {
        return readTimeout;
    }

    public int maxAttempts() {
        return maxAttempts;
    }

    public int uploadChunkSize() {
        return uploadChunkSize;
    }

    @Override
    public String toString() {
        return "GcsConfig[api=" + api + ", project=" + project + ", endpoint=" + (endpoint == null ? "(Google's)"
                : endpoint) + ", credentials=" + (anonymous ? "none" : api == Api.XML ? "HMAC key " + hmacAccessId
                : credentialsFile != null ? "key file " + credentialsFile : "application default")
                + ", maxAttempts=" + maxAttempts + ", retryBaseDelay=" + retryBaseDelay + ", connectTimeout="
                + connectTimeout + ", readTimeout=" + readTimeout + ", callTimeout=" + callTimeout
                + ", uploadChunkSize=" + uploadChunkSize + "]";
    }

    public static final class Builder {
        private Api api = Api.JSON;
        private String project;
        private URI endpoint;
        private Path credentialsFile;
        private boolean anonymous;
        private String hmacAccessId;
        private String hmacSecret;
        private Duration connectTimeout = DEFAULT_CONNECT_TIMEOUT;
        private Duration readTimeout = DEFAULT_READ_TIMEOUT;
        private Duration callTimeout = DEFAULT_CALL_TIMEOUT;
        private int maxAttempts = DEFAULT_MAX_ATTEMPTS;
        private Duration retryBaseDelay = DEFAULT_RETRY_BASE_DELAY;
        private int uploadChunkSize = DEFAULT_UPLOAD_CHUNK_SIZE;

        private Builder() {}

        public Builder api(Api api) {
            this.api = api;
            return this;
        }

        public Builder project(String project) {
            this.project = project;
            return this;
        }

        public Builder endpoint(URI endpoint) {
            if (endpoint != null) {
                String scheme = endpoint.getScheme();
                if (scheme == null || !(scheme.equalsIgnoreCase("http") || scheme.equalsIgnoreCase("https"))
                        || endpoint.getHost() == null || endpoint.getRawUserInfo() != null
                        || endpoint.getRawQuery() != null) {
                    throw new IllegalArgumentException("endpoint must be http(s)://host[:port], without user info or"
                            + " query");
                }
            }
            this.endpoint = endpoint;
            return this;
        }

        public Builder credentialsFile(Path file) {
            this.credentialsFile = file;
            return this;
        }

        public Builder anonymous(boolean anonymous) {
            this.anonymous = anonymous;
            return this;
        }

        /** An HMAC key for the XML API. */
        public Builder hmacKey(String accessId, String secret) {
            this.hmacAccessId = accessId;
            this.hmacSecret = secret;
            return this;
        }

        public Builder connectTimeout(Duration d) {
            this.connectTimeout = ConfigValues.positive("connect timeout", d);
            return this;
        }

        public Builder readTimeout(Duration d) {
            this.readTimeout = ConfigValues.positive("read timeout", d);
            return this;
        }

        public Builder callTimeout(Duration d) {
            this.callTimeout = ConfigValues.positive("call timeout", d);
            return this;
        }

        public Builder maxAttempts(int n) {
            if (n < 1 || n > 10) {
                throw new IllegalArgumentException("max attempts must be 1-10, got " + n);
            }
            this.maxAttempts = n;
            return this;
        }

        public Builder retryBaseDelay(Duration d) {
            ConfigValues.positive("retry base delay", d);
            if (d.compareTo(MAX_RETRY_DELAY) > 0) {
                throw new IllegalArgumentException("retry base delay must be at most 20 s, got " + d);
            }
            this.retryBaseDelay = d;
            return this;
        }

        public Builder uploadChunkSize(int bytes) {
            if (bytes < (256 << 10) || bytes % (256 << 10) != 0) {
                throw new IllegalArgumentException("upload chunk size must be a multiple of 256 KiB, got " + bytes);
            }
            this.uploadChunkSize = bytes;
            return this;
        }

        public GcsConfig build() {
            return new GcsConfig(this);
        }
    }

}
