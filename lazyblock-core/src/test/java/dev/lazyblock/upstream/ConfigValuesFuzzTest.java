package dev.lazyblock.upstream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.function.Function;

/**
 * Fuzzing of the setting values users write in flags, config files and the environment
 * (Jazzer; see {@code bin/fuzz}). The contract: each parser either gives a value in its range
 * (a size never negative, a duration never null) or fails with an
 * {@link IllegalArgumentException} that quotes what it was given, never another exception; a
 * parsed size and duration read back the same from their plain forms.
 */
class ConfigValuesFuzzTest {
    @FuzzTest(maxDuration = "10s")
    void anyValueParsesInRangeOrFailsWithAnErrorThatSaysWhatItFound(byte[] input) {
        String v = new String(input, StandardCharsets.UTF_8);
        Long size = parsed(ConfigValues::size, v);
        if (size != null) {
            assertTrue(size >= 0, v + " -> " + size);
            assertEquals(size, ConfigValues.size(Long.toString(size)), "a size's plain form");
        }
        Duration d = parsed(ConfigValues::duration, v);
        if (d != null) {
            assertEquals(d, ConfigValues.duration(d.toString()), "a duration's ISO-8601 form");
        }
        parsed(ConfigValues::wholeNumber, v);
        parsed(ConfigValues::bool, v);
        try {
            assertNotNull(ConfigValues.uri(v));
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage().startsWith("not a URL"), e.getMessage()); // never quotes the value
        }
    }

    private static <T> T parsed(Function<String, T> parser, String v) {
        try {
            return parser.apply(v);
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage().contains("'" + v + "'"), "the error quotes the value: " + e.getMessage());
            return null;
        }
    }
}
