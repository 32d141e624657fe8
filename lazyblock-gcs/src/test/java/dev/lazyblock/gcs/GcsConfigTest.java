package dev.lazyblock.gcs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Map;
import java.util.Properties;
import org.junit.jupiter.api.Test;

class GcsConfigTest {
    @Test
    void settingsComeFromPropertiesThenVariables() {
        Properties p = new Properties();
        p.setProperty("lazyblock.gcs.callTimeout", "90s");
        GcsConfig c = GcsConfig.fromEnvironment(Map.of(
                "LAZYBLOCK_GCS_API", "xml",
                "LAZYBLOCK_GCS_HMAC_ACCESS_ID", "GOOGID",
                "LAZYBLOCK_GCS_HMAC_SECRET", "hmac-secret-value",
                "GOOGLE_CLOUD_PROJECT", "proj-1",
                "LAZYBLOCK_GCS_CALL_TIMEOUT", "10s",
                "LAZYBLOCK_GCS_UPLOAD_CHUNK_SIZE", "8MiB"), p);
        assertEquals(GcsConfig.Api.XML, c.api());
        assertEquals("proj-1", c.project());
        assertEquals(Duration.ofSeconds(90), c.callTimeout());
        assertEquals(8 << 20, c.uploadChunkSize());
        assertFalse(c.toString().contains("hmac-secret-value"), c.toString());
        assertEquals(GcsConfig.XML_ENDPOINT, c.xmlConfig().endpoint());
    }

    @Test
    void badValuesNameTheirSource() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> GcsConfig.fromEnvironment(Map.of("LAZYBLOCK_GCS_API", "grpc"), new Properties()));
        assertTrue(e.getMessage().startsWith("environment variable LAZYBLOCK_GCS_API: 'grpc' is not an API"),
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> GcsConfig.fromEnvironment(Map.of("LAZYBLOCK_GCS_UPLOAD_CHUNK_SIZE", "1000"), new Properties()));
        assertTrue(e.getMessage().contains("multiple of 256 KiB"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> GcsConfig.fromEnvironment(Map.of("LAZYBLOCK_GCS_API", "xml"), new Properties()));
        assertTrue(e.getMessage().contains("the XML API needs an HMAC key"), e.getMessage());
    }
}
