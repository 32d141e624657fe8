package dev.lazyblock.device;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.zip.CRC32C;

/**
 * Coverage-guided fuzzing of layer header parsing (Jazzer). In a plain test run (CI) each input of
 * the checked-in corpus ({@code src/test/resources/dev/lazyblock/device/LayerHeaderFuzzTestInputs})
 * runs once; {@code bin/fuzz} runs it with coverage guidance for minutes, adding what it finds.
 *
 * <p>The contract: any bytes either parse into a header whose written form parses back to the
 * same header, or fail with {@link LayerHeader.HeaderFormatException} naming the field; nothing
 * else escapes, and nothing allocates in proportion to a length the input claims without
 * checking it.
 */
class LayerHeaderFuzzTest {
    @FuzzTest(maxDuration = "10s")
    void anyBytesParseToAHeaderThatRoundTripsOrFailWithAFormatError(byte[] input) {
        check(input);
        // Almost every mutation fails the checksum first; sealed (its length and CRC-32C made
        // right) the same bytes reach the checks of every field behind it.
        check(sealed(input));
    }

    private static void check(byte[] bytes) {
        LayerHeader h;
        try {
            h = LayerHeader.parse(bytes);
        } catch (LayerHeader.HeaderFormatException expected) {
            return;
        }
        byte[] written = h.toBytes();
        assertEquals(h, LayerHeader.parse(written), "a parsed header writes out as itself");
        assertArrayEquals(written, LayerHeader.parse(written).toBytes(), "and its written form is stable");
    }

    /** {@code input} with its total-length field (offset 12) and trailing CRC-32C made to match. */
    private static byte[] sealed(byte[] input) {
        if (input.length < 20) {
            return input;
        }
        byte[] b = input.clone();
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt(12, b.length);
        CRC32C crc = new CRC32C();
        crc.update(b, 0, b.length - 4);
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt(b.length - 4, (int) crc.getValue());
        return b;
    }
}
