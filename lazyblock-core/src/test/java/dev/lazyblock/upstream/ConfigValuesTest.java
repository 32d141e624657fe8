package dev.lazyblock.upstream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.URI;
import java.time.Duration;
import org.junit.jupiter.api.Test;

class ConfigValuesTest {

    @Test
    void sizesAreBytesOrPowersOf1024WithAnyUnitSpelling() {
        assertEquals(1234, ConfigValues.size("1234"));
        assertEquals(512L << 10, ConfigValues.size("512k"));
        assertEquals(512L << 10, ConfigValues.size("512KiB"));
        assertEquals(5L << 20, ConfigValues.size("5MiB"));
        assertEquals(5L << 20, ConfigValues.size("5MB"));
        assertEquals(5L << 30, ConfigValues.size(" 5 GiB "));
        assertEquals(20L << 30, ConfigValues.size("20G"));
        assertEquals(1L << 40, ConfigValues.size("1T"));
        assertEquals(Long.MAX_VALUE >> 40 << 40, ConfigValues.size((Long.MAX_VALUE >> 40) + "T"));
    }

    @Test
    void aSizeThatIsNegativeOverflowsOrIsNotANumberSaysWhatItGot() {
        for (String bad : new String[] {"-1", "99999999999G", ((Long.MAX_VALUE >> 40) + 1) + "T", "lots", "", "G",
                "1.5G", "12X"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ConfigValues.size(bad), bad);
            assertTrue(e.getMessage().startsWith("'" + bad + "' is not a size (bytes, or 16MiB"), e.getMessage());
        }
    }

    @Test
    void durationsAreSecondsUnitsOrIso8601() {
        assertEquals(Duration.ofSeconds(30), ConfigValues.duration("30"));
        assertEquals(Duration.ofMillis(500), ConfigValues.duration("500ms"));
        assertEquals(Duration.ofHours(2), ConfigValues.duration("2h"));
        assertEquals(Duration.ofSeconds(30), ConfigValues.duration(" 30s"));
        assertEquals(Duration.ofMinutes(2), ConfigValues.duration("2m"));
        assertEquals(Duration.ofSeconds(90), ConfigValues.duration("PT1M30S"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ConfigValues.duration("soon"));
        assertEquals("'soon' is not a duration (30, 500ms, 30s, 2m, 1h or PT30S)", e.getMessage());
    }

    @Test
    void booleansAcceptTheUsualSpellingsAndNothingElse() {
        for (String t : new String[] {"true", "TRUE", "yes", "on", "1"}) {
            assertTrue(ConfigValues.bool(t), t);
        }
        for (String f : new String[] {"false", "No", "off", "0"}) {
            assertFalse(ConfigValues.bool(f), f);
        }
        assertEquals("'maybe' is not true or false",
                assertThrows(IllegalArgumentException.class, () -> ConfigValues.bool("maybe")).getMessage());
    }

    @Test
    void wholeNumbersAndUrls() {
        assertEquals(8, ConfigValues.wholeNumber(" 8 "));
        assertEquals("'8.5' is not a whole number",
                assertThrows(IllegalArgumentException.class, () -> ConfigValues.wholeNumber("8.5")).getMessage());
        assertEquals(URI.create("http://127.0.0.1:9000"), ConfigValues.uri("http://127.0.0.1:9000"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ConfigValues.uri("http://user:s3cret@host name/"));
        assertTrue(e.getMessage().startsWith("not a URL: "), e.getMessage());
        assertFalse(e.getMessage().contains("s3cret"), "a mistyped endpoint's user info is not echoed: " + e.getMessage());
    }

    @Test
    void positiveRefusesZeroNegativeAndMissingDurationsByName() {
        assertEquals(Duration.ofMillis(1), ConfigValues.positive("read timeout", Duration.ofMillis(1)));
        for (Duration d : new Duration[] {Duration.ZERO, Duration.ofSeconds(-1), null}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> ConfigValues.positive("read timeout", d));
            assertEquals("read timeout must be positive, got " + d, e.getMessage());
        }
    }

    @Test
    void aSettingComesFromThePropertyThenTheFirstVariableSetAndErrorsSayWhich() {
        java.util.Properties props = new java.util.Properties();
        java.util.Map<String, String> env = new java.util.HashMap<>();
        assertEquals(null, ConfigValues.find(env, props, "lazyblock.x", "LAZYBLOCK_X", null, "OTHER_X"));
        env.put("OTHER_X", " 3 ");
        assertEquals(new ConfigValues.Found("3", "environment variable OTHER_X"),
                ConfigValues.find(env, props, "lazyblock.x", "LAZYBLOCK_X", null, "OTHER_X"));
        env.put("LAZYBLOCK_X", " ");
        assertEquals("environment variable OTHER_X",
                ConfigValues.find(env, props, "lazyblock.x", "LAZYBLOCK_X", null, "OTHER_X").source(), "blank is unset");
        env.put("LAZYBLOCK_X", "2");
        props.setProperty("lazyblock.x", "lots");
        ConfigValues.Found f = ConfigValues.find(env, props, "lazyblock.x", "LAZYBLOCK_X", null, "OTHER_X");
        assertEquals(new ConfigValues.Found("lots", "system property lazyblock.x"), f);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> f.applyTo(v -> ConfigValues.size(v)));
        assertEquals("system property lazyblock.x: 'lots' is not a size (bytes, or 16MiB, 16M, 512KiB, 20G)",
                e.getMessage());
    }
}
