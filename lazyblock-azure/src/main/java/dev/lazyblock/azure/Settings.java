package dev.lazyblock.azure;

import java.time.Duration;
import java.util.Locale;

/** Durations and sizes as the settings are written (the same forms lazyblock-s3 reads). */
final class Settings {
    private Settings() {}

    /** Seconds ({@code 30}), {@code 500ms}, {@code 30s}, {@code 2m}, or ISO-8601 ({@code PT30S}). */
    static Duration parseDuration(String v) {
        String s = v.strip().toLowerCase(Locale.ROOT);
        try {
            if (s.startsWith("p")) {
                return Duration.parse(v.strip());
            }
            if (s.endsWith("ms")) {
                return Duration.ofMillis(Long.parseLong(s.substring(0, s.length() - 2).strip()));
            }
            if (s.endsWith("s")) {
                return Duration.ofSeconds(Long.parseLong(s.substring(0, s.length() - 1).strip()));
            }
            if (s.endsWith("m")) {
                return Duration.ofMinutes(Long.parseLong(s.substring(0, s.length() - 1).strip()));
            }
            return Duration.ofSeconds(Long.parseLong(s));
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("'" + v + "' is not a duration (30, 500ms, 30s, 2m or PT30S)");
        }
    }

    /** Bytes, or with a binary unit: {@code 16MiB}, {@code 16M}, {@code 512KiB}, {@code 1G}. */
    static long parseSize(String v) {
        String s = v.strip();
        String lower = s.toLowerCase(Locale.ROOT);
        int shift = 0;
        for (String[] unit : new String[][] {{"kib", "10"}, {"mib", "20"}, {"gib", "30"}, {"k", "10"}, {"m", "20"},
                {"g", "30"}}) {
            if (lower.endsWith(unit[0])) {
                s = s.substring(0, s.length() - unit[0].length()).strip();
                shift = Integer.parseInt(unit[1]);
                break;
            }
        }
        try {
            long n = Long.parseLong(s);
            if (n < 0 || Long.numberOfLeadingZeros(n) <= shift) {
                throw new NumberFormatException();
            }
            return n << shift;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("'" + v + "' is not a size (bytes, or 16MiB, 16M, 512KiB)");
        }
    }
}
