package dev.lazyblock.s3;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.net.URI;
import java.time.Duration;
import java.util.Map;
import java.util.Properties;
import org.junit.jupiter.api.Test;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.s3.S3Client;

class S3ConfigTest {

    @Test
    void defaults() {
        S3Config c = S3Config.fromEnvironment(Map.of(), new Properties());
        assertNull(c.endpoint());
        assertNull(c.region());
        assertFalse(c.pathStyle());
        assertEquals(4, c.maxAttempts());
        assertEquals(16L << 20, c.partSize());
        assertEquals(Duration.ofSeconds(30), c.apiCallAttemptTimeout());
        assertEquals(Duration.ofSeconds(60), c.apiCallTimeout());
        assertTrue(c.toString().contains("credentials=SDK default chain"), c.toString());
    }

    @Test
    void readsVariablesAndPropertiesWin() {
        Map<String, String> env = Map.of(
                "LAZYBLOCK_S3_ENDPOINT", "http://127.0.0.1:9000",
                "LAZYBLOCK_S3_REGION", "eu-west-1",
                "LAZYBLOCK_S3_PATH_STYLE", "true",
                "LAZYBLOCK_S3_MAX_ATTEMPTS", "3",
                "LAZYBLOCK_S3_PART_SIZE", "8MiB",
                "LAZYBLOCK_S3_MULTIPART_THRESHOLD", "64M",
                "LAZYBLOCK_S3_ATTEMPT_TIMEOUT", "500ms",
                "LAZYBLOCK_S3_CALL_TIMEOUT", "2m",
                "LAZYBLOCK_S3_CONNECT_TIMEOUT", "PT3S",
                "LAZYBLOCK_S3_UPLOAD_CONCURRENCY", "2");
        Properties props = new Properties();
        props.setProperty("lazyblock.s3.region", "us-west-2");
        props.setProperty("lazyblock.s3.socketTimeout", "7s");
        S3Config c = S3Config.fromEnvironment(env, props);
        assertEquals(URI.create("http://127.0.0.1:9000"), c.endpoint());
        assertEquals("us-west-2", c.region());
        assertTrue(c.pathStyle());
        assertEquals(3, c.maxAttempts());
        assertEquals(8L << 20, c.partSize());
        assertEquals(64L << 20, c.multipartThreshold());
        assertEquals(Duration.ofMillis(500), c.apiCallAttemptTimeout());
        assertEquals(Duration.ofMinutes(2), c.apiCallTimeout());
        assertEquals(Duration.ofSeconds(3), c.connectTimeout());
        assertEquals(Duration.ofSeconds(7), c.socketTimeout());
        assertEquals(2, c.uploadConcurrency());
    }

    @Test
    void backOffBasesDefaultToTheSdksAndAreBounded() {
        S3Config d = S3Config.defaults();
        assertEquals(Duration.ofMillis(100), d.retryBaseDelay());
        assertEquals(Duration.ofSeconds(1), d.throttleBaseDelay());
        S3Config c = S3Config.fromEnvironment(Map.of("LAZYBLOCK_S3_RETRY_BASE_DELAY", "20ms",
                "LAZYBLOCK_S3_THROTTLE_BASE_DELAY", "2s"), new Properties());
        assertEquals(Duration.ofMillis(20), c.retryBaseDelay());
        assertEquals(Duration.ofSeconds(2), c.throttleBaseDelay());
        assertTrue(c.toString().contains("retryBaseDelay=PT0.02S, throttleBaseDelay=PT2S"), c.toString());
        // Half jitter: retry n waits between half and all of base * 2^(n-1).
        for (int i = 0; i < 50; i++) {
            long first = c.backoff().computeDelay(2).toMillis();
            long third = c.throttlingBackoff().computeDelay(4).toMillis();
            assertTrue(first >= 10 && first <= 20, "first retry after an error: " + first + " ms");
            assertTrue(third >= 4_000 && third <= 8_000, "third retry after throttling: " + third + " ms");
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> S3Config.fromEnvironment(
                Map.of("LAZYBLOCK_S3_THROTTLE_BASE_DELAY", "1m"), new Properties()));
        assertTrue(e.getMessage().startsWith("environment variable LAZYBLOCK_S3_THROTTLE_BASE_DELAY: throttle base"
                + " delay must be 1 ms to 20 s, got PT1M"), e.getMessage());
    }

    @Test
    void badValuesNameTheirVariable() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> S3Config.fromEnvironment(Map.of("LAZYBLOCK_S3_PATH_STYLE", "maybe"), new Properties()));
        assertTrue(e.getMessage().startsWith("environment variable LAZYBLOCK_S3_PATH_STYLE: 'maybe'"), e.getMessage());
        Properties props = new Properties();
        props.setProperty("lazyblock.s3.partSize", "1MiB");
        e = assertThrows(IllegalArgumentException.class, () -> S3Config.fromEnvironment(Map.of(), props));
        assertTrue(e.getMessage().startsWith("system property lazyblock.s3.partSize: part size must be 5 MiB"),
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> S3Config.fromEnvironment(Map.of("LAZYBLOCK_S3_MAX_ATTEMPTS", "0"), new Properties()));
        assertTrue(e.getMessage().contains("max attempts must be 1 to 10"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> S3Config.fromEnvironment(Map.of("LAZYBLOCK_S3_REGION", "EU West"), new Properties()));
        assertTrue(e.getMessage().contains("not a region name"), e.getMessage());
    }

    @Test
    void endpointWithSecretsIsRefusedWithoutEchoingThem() {
        for (String bad : new String[] {"http://user:hunter2pass@127.0.0.1:9000", "http://127.0.0.1:9000/?token=hunter2pass",
                "ftp://127.0.0.1/hunter2pass", "http://[hunter2pass"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> S3Config.fromEnvironment(Map.of("LAZYBLOCK_S3_ENDPOINT", bad), new Properties()));
            assertFalse(e.getMessage().contains("hunter2pass"), e.getMessage());
            assertTrue(e.getMessage().startsWith("environment variable LAZYBLOCK_S3_ENDPOINT"), e.getMessage());
        }
    }

    @Test
    void toStringHasNoSecret() {
        S3Config c = S3Config.builder().credentials("AKIDEXAMPLE", "s3cr3t-value", "session-t0ken").build();
        assertFalse(c.toString().contains("s3cr3t-value"), c.toString());
        assertFalse(c.toString().contains("session-t0ken"), c.toString());
        assertTrue(c.toString().contains("credentials=static session"), c.toString());
        assertEquals(2, c.secrets().size());
    }

    @Test
    void callTimeoutMustCoverAnAttempt() {
        assertThrows(IllegalArgumentException.class, () -> S3Config.builder()
                .apiCallAttemptTimeout(Duration.ofSeconds(10)).apiCallTimeout(Duration.ofSeconds(5)).build());
    }

    @Test
    void regionFallsBackToUsEast1WithAnEndpoint() {
        // Only meaningful where the SDK's chain finds no region (the build points the profile
        // files nowhere and turns instance metadata off).
        assumeTrue(System.getenv("AWS_REGION") == null && System.getenv("AWS_DEFAULT_REGION") == null
                && System.getProperty("aws.region") == null, "a region is set in the environment");
        S3Config withEndpoint = S3Config.builder().endpoint(URI.create("http://127.0.0.1:1")).build();
        assertEquals(Region.US_EAST_1, withEndpoint.resolveRegion());
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> S3Config.defaults().resolveRegion());
        assertTrue(e.getMessage().contains("LAZYBLOCK_S3_REGION"), e.getMessage());
        try (S3Client client = withEndpoint.newClient()) {
            assertEquals(Region.US_EAST_1, client.serviceClientConfiguration().region());
        }
    }
}
