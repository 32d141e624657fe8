package dev.lazyblock.upstream;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;

/**
 * Fuzzing of the {@code Content-Range} parser a store's response goes through (Jazzer; see
 * {@code bin/fuzz}). The contract: any header either is refused (null) or gives a range that
 * holds together: 0 <= first <= last < total when both are known, never an exception.
 */
class ContentRangeFuzzTest {
    @FuzzTest(maxDuration = "10s")
    void anyHeaderIsRefusedOrGivesARangeThatHoldsTogether(byte[] input) {
        // Bytes, not a String parameter: the corpus files are then the header's own text.
        ContentRange r = ContentRange.parse(new String(input, java.nio.charset.StandardCharsets.ISO_8859_1));
        if (r == null) {
            return;
        }
        if (r.first() < 0) {
            assertTrue(r.first() == -1 && r.last() == -1 && r.total() >= 0, r.toString());
        } else {
            assertTrue(r.last() >= r.first() && (r.total() < 0 || r.last() < r.total()), r.toString());
        }
    }
}
