package dev.lazyblock.s3;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class S3LocationTest {

    @Test
    void parsesBucketAndKey() {
        S3Location l = S3Location.parse("s3://my-bucket.v2/images/prod/rootfs.ext4");
        assertEquals("my-bucket.v2", l.bucket());
        assertEquals("images/prod/rootfs.ext4", l.key());
        assertEquals("s3://my-bucket.v2/images/prod/rootfs.ext4", l.url());
        assertEquals(l.url(), l.toString());
        assertEquals("abc", S3Location.parse("S3://abc/k").bucket());
    }

    @Test
    void keyIsTakenLiterally() {
        assertEquals("a%20b/c d", S3Location.parse("s3://abc/a%20b/c d").key());
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "ab|is 2 characters; S3 allows 3 to 63",
            "a234567890123456789012345678901234567890123456789012345678901234|is 64 characters",
            "My-bucket|an uppercase letter 'M' at index 0",
            "my_bucket|the character '_' at index 2",
            "-bucket|must begin and end with a lowercase letter or digit",
            "bucket-|must begin and end",
            "bucket.|must begin and end",
            "my..bucket|two adjacent periods",
            "192.168.5.4|formatted as an IP address",
            "xn--bucket|begins with 'xn--'",
            "sthree-bucket|begins with 'sthree-'",
            "bucket-s3alias|ends with '-s3alias'",
            "bucket--ol-s3|ends with '--ol-s3'",
    })
    void refusesBadBucketNames(String bucket, String expected) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> S3Location.parse("s3://" + bucket + "/key"));
        assertTrue(e.getMessage().contains("bucket name"), e.getMessage());
        assertTrue(e.getMessage().contains(expected), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new S3Location(bucket, "key"));
    }

    @ParameterizedTest
    @ValueSource(strings = {"abc", "a.b", "1-2", "a234567890123456789012345678901234567890123456789012345678901.3",
            "192.168.5.4x", "my.bucket.name"})
    void acceptsGoodBucketNames(String bucket) {
        assertEquals(bucket, S3Location.validateBucket(bucket));
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "s3://abc/a/../b|'..' segment",
            "s3://abc/../b|'..' segment",
            "s3://abc/a/./b|'.' segment",
            "s3://abc/a//b|empty segment",
            "s3://abc//b|empty segment (a leading '/')",
            "s3://abc/a/|empty segment (a trailing '/')",
            "s3://abc/a\\b|forbidden character",
    })
    void refusesBadKeys(String url, String expected) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> S3Location.parse(url));
        assertTrue(e.getMessage().contains("object key"), e.getMessage());
        assertTrue(e.getMessage().contains(expected), e.getMessage());
    }

    @Test
    void refusesTooLongKeysAndControlCharacters() {
        String longKey = "k/" + "x".repeat(1023);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> S3Location.parse("s3://abc/" + longKey));
        assertTrue(e.getMessage().contains("1025 bytes of UTF-8, at most 1024"), e.getMessage());
        // 512 two-byte characters are 1024 bytes: allowed; one more is not.
        assertEquals(512, S3Location.parse("s3://abc/" + "é".repeat(512)).key().length());
        assertThrows(IllegalArgumentException.class, () -> S3Location.parse("s3://abc/" + "é".repeat(513)));
        e = assertThrows(IllegalArgumentException.class, () -> S3Location.parse("s3://abc/a\nb"));
        assertTrue(e.getMessage().contains("code 10"), e.getMessage());
    }

    @Test
    void saysWhichPartIsMissing() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> S3Location.parse("s3://abc"))
                .getMessage().contains("no object key"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> S3Location.parse("s3://abc/"))
                .getMessage().contains("no object key"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> S3Location.parse("s3:///key"))
                .getMessage().contains("no bucket"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> S3Location.parse("s3://abc:9000/key"))
                .getMessage().contains("must not have a port"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> S3Location.parse("https://abc/key"))
                .getMessage().contains("scheme 'https'"));
        assertThrows(IllegalArgumentException.class, () -> S3Location.parse(null));
    }

    @Test
    void neverEchoesQueriesOrUserInfo() {
        String signature = "X-Amz-Signature=deadbeefcafe";
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> S3Location.parse("s3://abc/key?" + signature));
        assertTrue(e.getMessage().contains("query string"), e.getMessage());
        assertFalse(e.getMessage().contains("deadbeef"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> S3Location.parse("s3://abc/key#frag-secret"));
        assertFalse(e.getMessage().contains("frag-secret"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> S3Location.parse("s3://AKID:very-secret@abc/key"));
        assertTrue(e.getMessage().contains("user info"), e.getMessage());
        assertFalse(e.getMessage().contains("very-secret"), e.getMessage());
        assertFalse(e.getMessage().contains("AKID"), e.getMessage());
    }
}
