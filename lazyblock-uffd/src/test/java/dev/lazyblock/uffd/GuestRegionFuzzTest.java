package dev.lazyblock.uffd;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.util.List;

/**
 * Fuzzing of the parser for Firecracker's handshake message (the region list a VMM sends with
 * its userfaultfd; Jazzer, see {@code bin/fuzz}). The contract: any text either parses into
 * regions that are each well-formed (page-aligned, non-empty, not wrapping) or fails with an
 * {@link IllegalArgumentException} saying what was expected where; nothing else escapes.
 */
class GuestRegionFuzzTest {
    @FuzzTest(maxDuration = "10s")
    void anyMessageParsesToWellFormedRegionsOrFailsWithWhatWasExpected(byte[] input) {
        // Bytes, not a String parameter: the corpus files are then the message's own text.
        String json = new String(input, java.nio.charset.StandardCharsets.UTF_8);
        List<GuestRegion> regions;
        try {
            regions = GuestRegion.parseAll(json);
        } catch (IllegalArgumentException expected) {
            return;
        }
        for (GuestRegion r : regions) {
            assertTrue(r.size() > 0 && r.pageSize() > 0 && r.base() % r.pageSize() == 0
                    && Long.compareUnsigned(r.base() + r.size() - 1, r.base()) >= 0, "a region past the end of the "
                    + "address space: " + r);
        }
    }
}
