package dev.lazyblock.upstream;

import java.net.URI;
import java.net.URISyntaxException;
import java.time.Duration;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.function.Consumer;

/**
 * Setting values as users write them, in flags, config files and environment variables, read the
 * same way by every store's configuration and the CLI. Each parser fails with an
 * {@link IllegalArgumentException} saying what it expected and what it found; the caller adds
 * which setting it was.
 */
public final class ConfigValues {
    private ConfigValues() {}

    /** A setting's value, stripped, and where it was found, for errors. */
    public record Found(String value, String source) {
        /** Gives the value to {@code apply}; an error it throws says where the value came from. */
        public void applyTo(Consumer<String> apply) {
            try {
                apply.accept(value);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(source + ": " + e.getMessage(), e);
            }
        }
    }

    /**
     * The first value set and not blank among the system property {@code property} and then the
     * environment {@code variables} in order (null ones skipped); null if none is.
     */
    public static Found find(Map<String, String> env, Properties props, String property, String... variables) {
        String v = props.getProperty(property);
        if (v != null && !v.isBlank()) {
            return new Found(v.strip(), "system property " + property);
        }
        for (String variable : variables) {
            v = variable == null ? null : env.get(variable);
            if (v != null && !v.isBlank()) {
                return new Found(v.strip(), "environment variable " + variable);
            }
        }
        return null;
    }

    /** Seconds ({@code 30}), {@code 500ms}, {@code 30s}, {@code 2m}, {@code 1h}, or ISO-8601 ({@code PT30S}). */
    public static Duration duration(String v) {
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
            if (s.endsWith("h")) {
                return Duration.ofHours(Long.parseLong(s.substring(0, s.length() - 1).strip()));
            }
            return Duration.ofSeconds(Long.parseLong(s));
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("'" + v + "' is not a duration (30, 500ms, 30s, 2m, 1h or PT30S)");
        }
    }

    /**
     * Bytes ({@code 4096}), or in powers of 1024 with a unit: {@code 64K}, {@code 512KiB},
     * {@code 16M}, {@code 16MiB}, {@code 16MB}, {@code 20G}, {@code 1T}; spaces allowed before it.
     */
    public static long size(String v) {
        String s = v.strip().toUpperCase(Locale.ROOT);
        if (s.endsWith("IB")) {
            s = s.substring(0, s.length() - 2);
        } else if (s.endsWith("B")) {
            s = s.substring(0, s.length() - 1);
        }
        int shift = 0;
        if (!s.isEmpty()) {
            shift = switch (s.charAt(s.length() - 1)) {
                case 'K' -> 10;
                case 'M' -> 20;
                case 'G' -> 30;
                case 'T' -> 40;
                default -> 0;
            };
        }
        String digits = shift == 0 ? s : s.substring(0, s.length() - 1).strip();
        try {
            long n = Long.parseLong(digits);
            if (n < 0 || n > (Long.MAX_VALUE >> shift)) {
                throw new NumberFormatException();
            }
            return n << shift;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("'" + v + "' is not a size (bytes, or 16MiB, 16M, 512KiB, 20G)");
        }
    }

    public static int wholeNumber(String v) {
        try {
            return Integer.parseInt(v.strip());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("'" + v + "' is not a whole number");
        }
    }

    /** {@code true/false}, {@code yes/no}, {@code on/off}, {@code 1/0}. */
    public static boolean bool(String v) {
        return switch (v.strip().toLowerCase(Locale.ROOT)) {
            case "true", "yes", "1", "on" -> true;
            case "false", "no", "0", "off" -> false;
            default -> throw new IllegalArgumentException("'" + v + "' is not true or false");
        };
    }

    public static URI uri(String v) {
        try {
            return new URI(v.strip());
        } catch (URISyntaxException e) {
            // The value is left out: a mistyped endpoint may carry user info.
            throw new IllegalArgumentException("not a URL: " + e.getReason() + " at index " + e.getIndex());
        }
    }

    /** {@code d}, if it is longer than zero; {@code what} names it in the error. */
    public static Duration positive(String what, Duration d) {
        if (d == null || d.isNegative() || d.isZero()) {
            throw new IllegalArgumentException(what + " must be positive, got " + d);
        }
        return d;
    }
}
