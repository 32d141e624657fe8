package dev.lazyblock.nbd;

import dev.lazyblock.device.Device;
import dev.lazyblock.device.Overlay;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Objects;

/**
 * One device a {@link NbdServer} offers under a name.
 *
 * <p>A read-only export refuses WRITE, WRITE_ZEROES and TRIM with {@code EPERM}. A writable
 * export writes into an {@link Overlay} (copy-on-write over its base): every connection to the
 * export shares that overlay, so what one connection writes the others read, and the overlay's
 * written blocks can later be exported as a layer. The server never closes an export's device:
 * whoever made it does, after the server is closed.
 *
 * @param name        what clients ask for (validated: see {@link #validateName})
 * @param device      what reads go to: the overlay itself when writable
 * @param writable    whether writes are accepted (then {@code device} is an {@link Overlay})
 * @param description shown by clients that ask for NBD_INFO_DESCRIPTION (nbdinfo); may be empty
 */
public record NbdExport(String name, Device device, boolean writable, String description) {

    public NbdExport {
        validateName(name);
        Objects.requireNonNull(device, "device");
        description = description == null ? "" : description;
        if (writable && !(device instanceof Overlay)) {
            throw new IllegalArgumentException("a writable export writes into an Overlay, got " + device);
        }
        if (description.getBytes(StandardCharsets.UTF_8).length > Nbd.MAX_STRING) {
            throw new IllegalArgumentException("export description is longer than " + Nbd.MAX_STRING + " bytes");
        }
    }

    /** Serves {@code device} read-only. */
    public static NbdExport readOnly(String name, Device device) {
        return new NbdExport(name, device, false, "");
    }

    /** Serves {@code overlay} read-write; its base is never written. */
    public static NbdExport writable(String name, Overlay overlay) {
        return new NbdExport(name, overlay, true, "");
    }

    public NbdExport withDescription(String text) {
        return new NbdExport(name, device, writable, text);
    }

    /** The overlay writes go to; null for a read-only export. */
    public Overlay overlay() {
        return writable ? (Overlay) device : null;
    }

    /**
     * Checks an export name: at most 4,096 bytes of UTF-8 (the protocol's limit on strings), no
     * control, unassigned or unpaired-surrogate characters, and no {@code ..} path segment (so
     * {@code a/../b} and {@code /..} are refused, should a name ever be mapped to a path). The
     * empty name is the protocol's "default export".
     *
     * @throws IllegalArgumentException saying what is wrong
     */
    public static String validateName(String name) {
        Objects.requireNonNull(name, "export name");
        String why = invalidNameReason(name);
        if (why != null) {
            throw new IllegalArgumentException("invalid export name: " + why);
        }
        return name;
    }

    /** Why {@code name} is not a valid export name, or null if it is. */
    static String invalidNameReason(String name) {
        int bytes = name.getBytes(StandardCharsets.UTF_8).length;
        if (bytes > Nbd.MAX_STRING) {
            return "longer than " + Nbd.MAX_STRING + " bytes (" + bytes + ")";
        }
        for (int i = 0; i < name.length(); ) {
            int cp = name.codePointAt(i);
            switch (Character.getType(cp)) {
                case Character.CONTROL, Character.SURROGATE, Character.UNASSIGNED, Character.LINE_SEPARATOR,
                     Character.PARAGRAPH_SEPARATOR -> {
                    return String.format("character U+%04X at index %d is not printable", cp, i);
                }
                default -> { }
            }
            i += Character.charCount(cp);
        }
        for (String segment : name.split("/", -1)) {
            if (segment.equals("..")) {
                return "contains a '..' path segment";
            }
        }
        return null;
    }

    /** Decodes a name from the wire: strict UTF-8, then {@link #invalidNameReason}. */
    static String decodeName(byte[] data, int off, int len) throws InvalidNameException {
        if (len > Nbd.MAX_STRING) {
            throw new InvalidNameException("an export name of " + len + " bytes is longer than " + Nbd.MAX_STRING);
        }
        String name;
        try {
            name = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(data, off, len)).toString();
        } catch (CharacterCodingException e) {
            throw new InvalidNameException("the export name is not valid UTF-8");
        }
        String why = invalidNameReason(name);
        if (why != null) {
            throw new InvalidNameException("invalid export name: " + why);
        }
        return name;
    }

    /** A name from a client that {@link #validateName} would refuse. */
    static final class InvalidNameException extends Exception {
        InvalidNameException(String message) {
            super(message);
        }
    }
}
