package dev.lazyblock.azure;

import dev.lazyblock.upstream.ConfigValues;
import com.azure.core.http.HttpClient;
import com.azure.core.http.jdk.httpclient.JdkHttpClientBuilder;
import com.azure.core.http.policy.HttpLogDetailLevel;
import com.azure.core.http.policy.HttpLogOptions;
import com.azure.storage.blob.BlobContainerAsyncClient;
import com.azure.storage.blob.BlobContainerClient;
import com.azure.storage.blob.BlobServiceClientBuilder;
import com.azure.storage.common.StorageSharedKeyCredential;
import com.azure.storage.common.policy.RequestRetryOptions;
import com.azure.storage.common.policy.RetryPolicyType;
import java.net.URI;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;

/**
 * How lazyblock talks to Azure Blob Storage: where (the account's blob endpoint, or an endpoint
 * override such as Azurite's), as whom (a shared key, a SAS token, a connection string, or
 * anonymously for public containers), how long it waits and how often it retries, and how it
 * uploads large files. Immutable; {@link #clients} builds the SDK's clients on the JDK's
 * {@code java.net.http} client (no Netty).
 *
 * <p>Every request has a connect, response (per attempt) and read timeout, and every call a call
 * timeout. Failed attempts are retried by the storage SDK's exponential policy (at most
 * {@link #maxAttempts()} attempts) on 429, 5xx (but 501 and 505) answers, timeouts and I/O
 * errors, never on other 4xx answers; retry {@code n} waits {@code (2^n - 1) * retryBaseDelay},
 * at most {@link #maxRetryDelay()}. A download whose connection drops mid-body is resumed by the
 * SDK from the first byte not received, conditional on the ETag of the first answer.
 *
 * <p>{@link #toString()} and every message this module writes leave secrets out.
 */
public final class AzureConfig {
    public static final Duration DEFAULT_CONNECT_TIMEOUT = Duration.ofSeconds(10);
    public static final Duration DEFAULT_READ_TIMEOUT = Duration.ofSeconds(30);
    public static final Duration DEFAULT_ATTEMPT_TIMEOUT = Duration.ofSeconds(30);
    public static final Duration DEFAULT_CALL_TIMEOUT = Duration.ofSeconds(60);
    public static final Duration DEFAULT_UPLOAD_TIMEOUT = Duration.ofMinutes(10);
    public static final int DEFAULT_MAX_ATTEMPTS = 4;
    public static final Duration DEFAULT_RETRY_BASE_DELAY = Duration.ofMillis(100);
    public static final Duration DEFAULT_MAX_RETRY_DELAY = Duration.ofSeconds(20);
    public static final long DEFAULT_BLOCK_SIZE = 16L << 20;
    public static final long DEFAULT_SINGLE_UPLOAD_THRESHOLD = 16L << 20;
    public static final int DEFAULT_UPLOAD_CONCURRENCY = 4;
    /** Azure's largest block (service version 2019-12-12 and later). */
    public static final long MAX_BLOCK_SIZE = 4000L << 20;

    private final String account;
    private final String key;
    private final String sasToken;
    private final URI endpoint;
    private final String endpointSuffix;
    private final Duration connectTimeout;
    private final Duration readTimeout;
    private final Duration attemptTimeout;
    private final Duration callTimeout;
    private final Duration uploadTimeout;
    private final int maxAttempts;
    private final Duration retryBaseDelay;
    private final Duration maxRetryDelay;
    private final long blockSize;
    private final long singleUploadThreshold;
    private final int uploadConcurrency;

    private AzureConfig(Builder b) {
        this.account = b.account;
        this.key = b.key;
        this.sasToken = b.sasToken;
        this.endpoint = b.endpoint;
        this.endpointSuffix = b.endpointSuffix;
        this.connectTimeout = b.connectTimeout;
        this.readTimeout = b.readTimeout;
        this.attemptTimeout = b.attemptTimeout;
        this.callTimeout = b.callTimeout;
        this.uploadTimeout = b.uploadTimeout;
        this.maxAttempts = b.maxAttempts;
        this.retryBaseDelay = b.retryBaseDelay;
        this.maxRetryDelay = b.maxRetryDelay;
        this.blockSize = b.blockSize;
        this.singleUploadThreshold = b.singleUploadThreshold;
        this.uploadConcurrency = b.uploadConcurrency;
        if (key != null && sasToken != null) {
            throw new IllegalArgumentException("both an account key and a SAS token are set: give one of them");
        }
        if (attemptTimeout.compareTo(callTimeout) > 0) {
            throw new IllegalArgumentException("attempt timeout (" + attemptTimeout + ") is longer than the call timeout ("
                    + callTimeout + ")");
        }
    }

    public static Builder builder() {
        return new Builder();
    }

    public static AzureConfig defaults() {
        return builder().build();
    }

    /** From system properties, else environment variables (see {@link Setting}). */
    public static AzureConfig fromEnvironment() {
        return fromEnvironment(System.getenv(), System.getProperties());
    }

    /** {@link #fromEnvironment()} over given variables and properties (properties win). */
    public static AzureConfig fromEnvironment(Map<String, String> env, Properties props) {
        Builder b = builder();
        for (Setting s : Setting.values()) {
            ConfigValues.Found f = ConfigValues.find(env, props, s.property, s.variable, s.azureVariable);
            if (f != null) {
                f.applyTo(v -> s.apply(b, v));
            }
        }
        try {
            return b.build();
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("Azure configuration: " + e.getMessage(), e);
        }
    }

    /**
     * The settings {@link #fromEnvironment()} reads: a system property, a lazyblock variable and,
     * for credentials and the account, the variable the Azure CLI reads. Durations are seconds
     * ({@code 30}), {@code 500ms}, {@code 30s}, {@code 2m} or ISO-8601; sizes bytes or
     * {@code 16MiB}.
     */
    public enum Setting {
        ACCOUNT("lazyblock.azure.account", "LAZYBLOCK_AZURE_ACCOUNT", "AZURE_STORAGE_ACCOUNT") {
            @Override
            void apply(Builder b, String v) {
                b.account(v);
            }
        },
        KEY("lazyblock.azure.key", "LAZYBLOCK_AZURE_KEY", "AZURE_STORAGE_KEY") {
            @Override
            void apply(Builder b, String v) {
                b.key(v);
            }
        },
        SAS_TOKEN("lazyblock.azure.sasToken", "LAZYBLOCK_AZURE_SAS_TOKEN", "AZURE_STORAGE_SAS_TOKEN") {
            @Override
            void apply(Builder b, String v) {
                b.sasToken(v);
            }
        },
        CONNECTION_STRING("lazyblock.azure.connectionString", "LAZYBLOCK_AZURE_CONNECTION_STRING",
                "AZURE_STORAGE_CONNECTION_STRING") {
            @Override
            void apply(Builder b, String v) {
                b.connectionString(v);
            }
        },
        /** Blob service endpoint: {@code http(s)://host[:port][/account]} (Azurite: {@code http://127.0.0.1:10000/devstoreaccount1}). */
        ENDPOINT("lazyblock.azure.endpoint", "LAZYBLOCK_AZURE_ENDPOINT", null) {
            @Override
            void apply(Builder b, String v) {
                b.endpoint(ConfigValues.uri(v));
            }
        },
        MAX_ATTEMPTS("lazyblock.azure.maxAttempts", "LAZYBLOCK_AZURE_MAX_ATTEMPTS", null) {
            @Override
            void apply(Builder b, String v) {
                b.maxAttempts(ConfigValues.wholeNumber(v));
            }
        },
        RETRY_BASE_DELAY("lazyblock.azure.retryBaseDelay", "LAZYBLOCK_AZURE_RETRY_BASE_DELAY", null) {
            @Override
            void apply(Builder b, String v) {
                b.retryBaseDelay(ConfigValues.duration(v));
            }
        },
        MAX_RETRY_DELAY("lazyblock.azure.maxRetryDelay", "LAZYBLOCK_AZURE_MAX_RETRY_DELAY", null) {
            @Override
            void apply(Builder b, String v) {
                b.maxRetryDelay(ConfigValues.duration(v));
            }
        },
        CONNECT_TIMEOUT("lazyblock.azure.connectTimeout", "LAZYBLOCK_AZURE_CONNECT_TIMEOUT", null) {
            @Override
            void apply(Builder b, String v) {
                b.connectTimeout(ConfigValues.duration(v));
            }
        },
        READ_TIMEOUT("lazyblock.azure.readTimeout", "LAZYBLOCK_AZURE_READ_TIMEOUT", null) {
            @Override
            void apply(Builder b, String v) {
                b.readTimeout(ConfigValues.duration(v));
            }
        },
        ATTEMPT_TIMEOUT("lazyblock.azure.attemptTimeout", "LAZYBLOCK_AZURE_ATTEMPT_TIMEOUT", null) {
            @Override
            void apply(Builder b, String v) {
                b.attemptTimeout(ConfigValues.duration(v));
            }
        },
        CALL_TIMEOUT("lazyblock.azure.callTimeout", "LAZYBLOCK_AZURE_CALL_TIMEOUT", null) {
            @Override
            void apply(Builder b, String v) {
                b.callTimeout(ConfigValues.duration(v));
            }
        },
        UPLOAD_TIMEOUT("lazyblock.azure.uploadTimeout", "LAZYBLOCK_AZURE_UPLOAD_TIMEOUT", null) {
            @Override
            void apply(Builder b, String v) {
                b.uploadTimeout(ConfigValues.duration(v));
            }
        },
        BLOCK_SIZE("lazyblock.azure.blockSize", "LAZYBLOCK_AZURE_BLOCK_SIZE", null) {
            @Override
            void apply(Builder b, String v) {
                b.blockSize(ConfigValues.size(v));
            }
        },
        SINGLE_UPLOAD_THRESHOLD("lazyblock.azure.singleUploadThreshold", "LAZYBLOCK_AZURE_SINGLE_UPLOAD_THRESHOLD",
                null) {
            @Override
            void apply(Builder b, String v) {
                b.singleUploadThreshold(ConfigValues.size(v));
            }
        },
        UPLOAD_CONCURRENCY("lazyblock.azure.uploadConcurrency", "LAZYBLOCK_AZURE_UPLOAD_CONCURRENCY", null) {
            @Override
            void apply(Builder b, String v) {
                b.uploadConcurrency(ConfigValues.wholeNumber(v));
            }
        };

        private final String property;
        private final String variable;
        private final String azureVariable;

        Setting(String property, String variable, String azureVariable) {
            this.property = property;
            this.variable = variable;
            this.azureVariable = azureVariable;
        }

        public String property() {
            return property;
        }

        public String variable() {
            return variable;
        }

        abstract void apply(Builder b, String v);
    }

    /** A container's clients, sync and async, over one HTTP client. */
    public record Clients(BlobContainerClient sync, BlobContainerAsyncClient async, String endpointForLogs) {}

    /**
     * The clients of {@code location}'s container: the endpoint override if one is set, else the
     * URL's account's (or the configured account's) {@code https://ACCOUNT.blob.core.windows.net}.
     *
     * @throws IllegalArgumentException if no account is known
     */
    public Clients clients(AzureLocation location) {
        return clients(location.account(), location.container());
    }

    /** The clients of a container in {@code urlAccount} (null: the configured account). */
    public Clients clients(String urlAccount, String container) {
        AzureLocation.validateContainer(container);
        String acct = urlAccount != null ? urlAccount : account;
        String ep;
        if (endpoint != null) {
            ep = endpoint.toString();
        } else if (acct != null) {
            ep = "https://" + acct + ".blob." + (endpointSuffix == null ? "core.windows.net" : endpointSuffix);
        } else {
            throw new IllegalArgumentException("no storage account for az://" + container + "/...: set"
                    + " LAZYBLOCK_AZURE_ACCOUNT or AZURE_STORAGE_ACCOUNT (or an endpoint, LAZYBLOCK_AZURE_ENDPOINT),"
                    + " or name the blob as https://ACCOUNT" + AzureLocation.BLOB_HOST_SUFFIX + "/" + container + "/...");
        }
        BlobServiceClientBuilder b = new BlobServiceClientBuilder()
                .endpoint(ep)
                .httpClient(httpClient())
                .retryOptions(new RequestRetryOptions(RetryPolicyType.EXPONENTIAL, maxAttempts, attemptTimeout,
                        retryBaseDelay, maxRetryDelay, null))
                // Never log requests: their URLs carry SAS tokens.
                .httpLogOptions(new HttpLogOptions().setLogLevel(HttpLogDetailLevel.NONE));
        if (key != null) {
            // A key signs for one account: the configured one, else the one the URL names.
            if (acct == null) {
                throw new IllegalArgumentException("an account key is set but no account name: set"
                        + " LAZYBLOCK_AZURE_ACCOUNT or AZURE_STORAGE_ACCOUNT, or name the blob as https://ACCOUNT"
                        + AzureLocation.BLOB_HOST_SUFFIX + "/" + container + "/...");
            }
            if (account != null && urlAccount != null && !urlAccount.equals(account)) {
                throw new IllegalArgumentException("the account key is for account '" + account + "' (the configured"
                        + " account), but the URL names account '" + urlAccount + "'");
            }
            b.credential(new StorageSharedKeyCredential(acct, key));
        } else if (sasToken != null) {
            b.sasToken(sasToken);
        }
        var service = b.buildClient();
        var asyncService = b.buildAsyncClient();
        return new Clients(service.getBlobContainerClient(container), asyncService.getBlobContainerAsyncClient(container),
                ep);
    }

    private HttpClient httpClient() {
        // HTTP/1.1: no h2c upgrade attempt on plain-http endpoints (Azurite); Azure Blob speaks 1.1.
        return new JdkHttpClientBuilder(java.net.http.HttpClient.newBuilder()
                .version(java.net.http.HttpClient.Version.HTTP_1_1))
                .connectionTimeout(connectTimeout)
                .responseTimeout(attemptTimeout)
                .readTimeout(readTimeout)
                .writeTimeout(readTimeout)
                .build();
    }

    /** The secrets to keep out of messages: the key and the SAS token (and its signature). */
    List<String> secrets() {
        List<String> s = new ArrayList<>();
        if (key != null) {
            s.add(key);
        }
        if (sasToken != null) {
            s.add(sasToken);
            for (String part : sasToken.replaceFirst("^\\?", "").split("&")) {
                if (part.startsWith("sig=") && part.length() > 4) {
                    s.add(part.substring(4));
                }
            }
        }
        return s;
    }

    public String account() {
        return account;
    }

    public URI endpoint() {
        return endpoint;
    }

    public Duration connectTimeout() {
        return connectTimeout;
    }

    public Duration readTimeout() {
        return readTimeout;
    }

    public Duration attemptTimeout() {
        return attemptTimeout;
    }

    public Duration callTimeout() {
        return callTimeout;
    }

    public Duration uploadTimeout() {
        return uploadTimeout;
    }

    public int maxAttempts() {
        return maxAttempts;
    }

    public Duration retryBaseDelay() {
        return retryBaseDelay;
    }

    public Duration maxRetryDelay() {
        return maxRetryDelay;
    }

    public long blockSize() {
        return blockSize;
    }

    public long singleUploadThreshold() {
        return singleUploadThreshold;
    }

    public int uploadConcurrency() {
        return uploadConcurrency;
    }

    /** What kind of credentials, never their value. */
    public String credentialsKind() {
        return key != null ? "shared key" : sasToken != null ? "SAS token" : "anonymous";
    }

    @Override
    public String toString() {
        return "AzureConfig[account=" + account + ", endpoint=" + (endpoint == null ? "(the account's)" : endpoint)
                + ", credentials=" + credentialsKind() + ", maxAttempts=" + maxAttempts + ", retryBaseDelay="
                + retryBaseDelay + ", connectTimeout=" + connectTimeout + ", readTimeout=" + readTimeout
                + ", attemptTimeout=" + attemptTimeout + ", callTimeout=" + callTimeout + ", uploadTimeout="
                + uploadTimeout + ", blockSize=" + blockSize + ", singleUploadThreshold=" + singleUploadThreshold
                + ", uploadConcurrency=" + uploadConcurrency + "]";
    }

    public static final class Builder {
        private String account;
        private String key;
        private String sasToken;
        private URI endpoint;
        private String endpointSuffix;
        private Duration connectTimeout = DEFAULT_CONNECT_TIMEOUT;
        private Duration readTimeout = DEFAULT_READ_TIMEOUT;
        private Duration attemptTimeout = DEFAULT_ATTEMPT_TIMEOUT;
        private Duration callTimeout = DEFAULT_CALL_TIMEOUT;
        private Duration uploadTimeout = DEFAULT_UPLOAD_TIMEOUT;
        private int maxAttempts = DEFAULT_MAX_ATTEMPTS;
        private Duration retryBaseDelay = DEFAULT_RETRY_BASE_DELAY;
        private Duration maxRetryDelay = DEFAULT_MAX_RETRY_DELAY;
        private long blockSize = DEFAULT_BLOCK_SIZE;
        private long singleUploadThreshold = DEFAULT_SINGLE_UPLOAD_THRESHOLD;
        private int uploadConcurrency = DEFAULT_UPLOAD_CONCURRENCY;

        private Builder() {}

        public Builder account(String account) {
            if (account != null && !account.matches("[a-z0-9]{3,24}")) {
                throw new IllegalArgumentException("storage account name '" + account
                        + "' is not valid: 3-24 lower-case letters and digits");
            }
            this.account = account;
            return this;
        }

        /** The account's shared key (base64), with {@link #account}. */
        public Builder key(String key) {
            this.key = key;
            return this;
        }

        /** A SAS token, with or without its leading {@code ?}. */
        public Builder sasToken(String sasToken) {
            this.sasToken = sasToken == null ? null : sasToken.replaceFirst("^\\?", "");
            return this;
        }

        /**
         * Account, key or SAS and endpoint from a connection string ({@code AccountName=...;
         * AccountKey=...;BlobEndpoint=...;EndpointSuffix=...;SharedAccessSignature=...}, or
         * {@code UseDevelopmentStorage=true} for Azurite on its default port). Settings given
         * separately are applied in {@link Setting} order, so an endpoint setting wins over the
         * connection string's.
         */
        public Builder connectionString(String cs) {
            Map<String, String> kv = new LinkedHashMap<>();
            for (String part : cs.split(";")) {
                if (part.isBlank()) {
                    continue;
                }
                int eq = part.indexOf('=');
                if (eq <= 0) {
                    // Never repeat the part: it may be a key.
                    throw new IllegalArgumentException("connection string has a part without 'name=value'");
                }
                kv.put(part.substring(0, eq).strip().toLowerCase(Locale.ROOT), part.substring(eq + 1).strip());
            }
            if ("true".equalsIgnoreCase(kv.get("usedevelopmentstorage"))) {
                account("devstoreaccount1");
                key(AZURITE_KEY);
                endpoint(URI.create("http://127.0.0.1:10000/devstoreaccount1"));
                return this;
            }
            if (kv.containsKey("accountname")) {
                account(kv.get("accountname"));
            }
            if (kv.containsKey("accountkey")) {
                key(kv.get("accountkey"));
            }
            if (kv.containsKey("sharedaccesssignature")) {
                sasToken(kv.get("sharedaccesssignature"));
            }
            if (kv.containsKey("blobendpoint")) {
                endpoint(ConfigValues.uri(kv.get("blobendpoint")));
            }
            if (kv.containsKey("endpointsuffix")) {
                endpointSuffix = kv.get("endpointsuffix");
            }
            if (account == null && endpoint == null && sasToken == null) {
                throw new IllegalArgumentException("connection string names neither an AccountName nor a BlobEndpoint");
            }
            return this;
        }

        public Builder endpoint(URI endpoint) {
            if (endpoint != null) {
                String scheme = endpoint.getScheme();
                if (scheme == null || !(scheme.equalsIgnoreCase("http") || scheme.equalsIgnoreCase("https"))
                        || endpoint.getHost() == null) {
                    throw new IllegalArgumentException("endpoint must be http(s)://host[:port][/account], got scheme "
                            + scheme);
                }
                if (endpoint.getRawUserInfo() != null || endpoint.getRawQuery() != null) {
                    throw new IllegalArgumentException("endpoint must not carry user info or a query string");
                }
                String s = endpoint.toString();
                endpoint = URI.create(s.endsWith("/") ? s.substring(0, s.length() - 1) : s);
            }
            this.endpoint = endpoint;
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

        public Builder attemptTimeout(Duration d) {
            this.attemptTimeout = ConfigValues.positive("attempt timeout", d);
            return this;
        }

        public Builder callTimeout(Duration d) {
            this.callTimeout = ConfigValues.positive("call timeout", d);
            return this;
        }

        public Builder uploadTimeout(Duration d) {
            this.uploadTimeout = ConfigValues.positive("upload timeout", d);
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
            this.retryBaseDelay = between("retry base delay", d, Duration.ofMillis(1), Duration.ofSeconds(20));
            return this;
        }

        public Builder maxRetryDelay(Duration d) {
            this.maxRetryDelay = between("max retry delay", d, Duration.ofMillis(1), Duration.ofMinutes(2));
            return this;
        }

        public Builder blockSize(long bytes) {
            if (bytes < 64 * 1024 || bytes > MAX_BLOCK_SIZE) {
                throw new IllegalArgumentException("block size must be 64 KiB to 4000 MiB, got " + bytes);
            }
            this.blockSize = bytes;
            return this;
        }

        public Builder singleUploadThreshold(long bytes) {
            if (bytes < 1 || bytes > (5000L << 20)) {
                throw new IllegalArgumentException("single upload threshold must be 1 B to 5000 MiB, got " + bytes);
            }
            this.singleUploadThreshold = bytes;
            return this;
        }

        public Builder uploadConcurrency(int n) {
            if (n < 1 || n > 64) {
                throw new IllegalArgumentException("upload concurrency must be 1-64, got " + n);
            }
            this.uploadConcurrency = n;
            return this;
        }

        public AzureConfig build() {
            return new AzureConfig(this);
        }
    }

    /** Azurite's published development account key (not a secret: it is in Microsoft's docs). */
    static final String AZURITE_KEY =
            "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private static Duration between(String what, Duration d, Duration min, Duration max) {
        if (d == null || d.compareTo(min) < 0 || d.compareTo(max) > 0) {
            throw new IllegalArgumentException(what + " must be " + min + " to " + max + ", got " + d);
        }
        return d;
    }

}
