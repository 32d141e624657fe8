package dev.lazyblock.gcs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class GcsLocationTest {
    @Test
    void gsUrlsParse() {
        GcsLocation l = GcsLocation.parse("gs://my_images.example/prod/rootfs.ext4");
        assertEquals("my_images.example", l.bucket());
        assertEquals("prod/rootfs.ext4", l.object());
        assertEquals("gs://my_images.example/prod/rootfs.ext4", l.url());
    }

    @Test
    void badUrlsSayWhatIsWrong() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> GcsLocation.parse("gs://b/o"));
        assertTrue(e.getMessage().contains("bucket name 'b'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> GcsLocation.parse("gs://bucket"));
        assertTrue(e.getMessage().contains("no object name: expected gs://bucket/object"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> GcsLocation.parse("gs://google-x/o"));
        assertTrue(e.getMessage().contains("not starting with 'goog'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> GcsLocation.parse("gs://u:secretpw@bucket/o"));
        assertTrue(e.getMessage().contains("user info") && !e.getMessage().contains("secretpw"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> GcsLocation.parse("gs://bucket:443/o"));
        assertTrue(e.getMessage().contains("port"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> GcsLocation.parse("s3://bucket/o"));
        assertTrue(e.getMessage().contains("scheme 's3'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> GcsLocation.parse("gs://bucket/a?sig=zzz"));
        assertFalse(e.getMessage().contains("zzz"), e.getMessage());
    }
}
