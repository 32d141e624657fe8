package dev.lazyblock.daemon;

import dev.lazyblock.content.ContentCipher;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The daemon's tenant secrets file ({@code lazyblock daemon --tenant-secrets FILE}): one tenant per
 * line, {@code <name> <secret>}, the secret being the rest of the line (at least 16 bytes of
 * UTF-8, as {@code $LAZYBLOCK_CONTENT_SECRET} is for {@code export --encrypt}); blank lines and
 * lines starting with {@code #} are skipped. The file must be readable by its owner alone, as
 * ssh asks of a private key. No error message ever quotes a secret.
 */
public final class TenantSecrets {
    private static final Set<PosixFilePermission> OPEN = EnumSet.of(PosixFilePermission.GROUP_READ,
            PosixFilePermission.GROUP_WRITE, PosixFilePermission.OTHERS_READ, PosixFilePermission.OTHERS_WRITE);

    private TenantSecrets() {}

    /**
     * @return tenant name -> the cipher of its secret, in the file's order
     * @throws IllegalArgumentException naming the file, the line and what was expected
     * @throws IOException if the file cannot be read
     */
    public static Map<String, ContentCipher> read(Path file) throws IOException {
        Set<PosixFilePermission> perms = Files.getPosixFilePermissions(file);
        if (!java.util.Collections.disjoint(perms, OPEN)) {
            throw new IllegalArgumentException(file + " is open to group or others ("
                    + java.nio.file.attribute.PosixFilePermissions.toString(perms) + "): tenant secrets must be "
                    + "readable by their owner alone (chmod 600)");
        }
        List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        Map<String, ContentCipher> tenants = new LinkedHashMap<>();
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i).strip();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            String where = file + " line " + (i + 1);
            String[] parts = line.split("\\s+", 2);
            if (parts.length < 2) {
                throw new IllegalArgumentException(where + ": expected '<tenant> <secret>', found one word");
            }
            String name = parts[0];
            if (!Daemon.ID.matcher(name).matches()) {
                throw new IllegalArgumentException(where + ": invalid tenant name (expected 1 to 64 of "
                        + "[A-Za-z0-9._-], starting with a letter or digit)");
            }
            byte[] secret = parts[1].getBytes(StandardCharsets.UTF_8);
            ContentCipher cipher;
            try {
                cipher = ContentCipher.fromSecret(secret);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(where + ": tenant '" + name + "': " + e.getMessage(), e);
            } finally {
                java.util.Arrays.fill(secret, (byte) 0);
            }
            if (tenants.putIfAbsent(name, cipher) != null) {
                throw new IllegalArgumentException(where + ": tenant '" + name + "' is named twice");
            }
        }
        return tenants;
    }
}
