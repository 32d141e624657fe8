package dev.lazyblock.upstream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class ContentRangeTest {
    @Test
    void parsesASatisfiedRange() {
        assertEquals(new ContentRange(0, 9, 100), ContentRange.parse("bytes 0-9/100"));
        assertEquals(new ContentRange(5, 5, -1), ContentRange.parse("BYTES 5-5/*"));
        assertTrue(ContentRange.parse("bytes 10-19/20").covers(10, 10));
    }

    @Test
    void parsesTheUnsatisfiedForm() {
        assertEquals(new ContentRange(-1, -1, 0), ContentRange.parse("bytes */0"));
    }

    @Test
    void refusesWhatItCannotUse() {
        for (String bad : new String[] {null, "", "bytes", "items 0-9/10", "bytes 9-0/10", "bytes 0-10/10",
                "bytes -1-5/10", "bytes 0-9", "bytes */*", "bytes a-b/c", "bytes 0-+9/10"}) {
            assertNull(ContentRange.parse(bad), bad);
        }
    }
}
