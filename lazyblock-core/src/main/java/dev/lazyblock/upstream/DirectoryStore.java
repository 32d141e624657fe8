package dev.lazyblock.upstream;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * An {@link ObjectStore} in a local directory (or an NFS mount): keys are relative paths under
 * it. Writes go to a temporary file in the same directory and are renamed into place, so a
 * reader never sees half an object.
 */
public final class DirectoryStore implements ObjectStore {
    private final Path root;

    public DirectoryStore(Path root) {
        this.root = root.toAbsolutePath().normalize();
    }

    private Path resolve(String key) {
        Path p = root.resolve(ObjectKeys.validate(key)).normalize();
        if (!p.startsWith(root)) {
            throw new IllegalArgumentException("object key '" + key + "' leaves the store " + root);
        }
        return p;
    }

    @Override
    public String name() {
        return root.toString();
    }

    @Override
    public Upstream open(String key) throws IOException {
        Path p = resolve(key);
        if (!Files.isRegularFile(p)) {
            throw new NoSuchObjectException(p.toString(), "no such object in " + root);
        }
        return new FileUpstream(p);
    }

    @Override
    public void put(String key, Path file) throws IOException {
        Path target = resolve(key);
        Files.createDirectories(target.getParent());
        Path tmp = Files.createTempFile(target.getParent(), ".upload-", ".tmp");
        try {
            Files.copy(file, tmp, StandardCopyOption.REPLACE_EXISTING);
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    @Override
    public void put(String key, byte[] bytes) throws IOException {
        Path target = resolve(key);
        Files.createDirectories(target.getParent());
        Path tmp = Files.createTempFile(target.getParent(), ".upload-", ".tmp");
        try {
            Files.write(tmp, bytes);
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    @Override
    public boolean exists(String key) {
        return Files.isRegularFile(resolve(key));
    }

    @Override
    public void delete(String key) throws IOException {
        try {
            Files.delete(resolve(key));
        } catch (NoSuchFileException ignored) {
            // deleting a missing object is not an error
        }
    }

    @Override
    public java.util.List<Listed> list(String prefix) throws IOException {
        // Walk from the deepest directory the prefix names; temporary upload files are not objects.
        int slash = prefix.lastIndexOf('/');
        Path from = slash < 0 ? root : resolve(prefix.substring(0, slash));
        if (!Files.isDirectory(from)) {
            return java.util.List.of();
        }
        java.util.List<Listed> out = new java.util.ArrayList<>();
        try (var s = Files.walk(from)) {
            for (Path p : s.filter(Files::isRegularFile).toList()) {
                String key = root.relativize(p).toString().replace(java.io.File.separatorChar, '/');
                if (!key.startsWith(prefix) || p.getFileName().toString().startsWith(".upload-")) {
                    continue;
                }
                try {
                    out.add(new Listed(key, Files.size(p), Files.getLastModifiedTime(p).toInstant()));
                } catch (NoSuchFileException gone) {
                    // deleted meanwhile
                }
            }
        } catch (java.io.UncheckedIOException e) {
            if (!(e.getCause() instanceof NoSuchFileException)) {
                throw e.getCause();
            }
        }
        return out;
    }

    @Override
    public void close() {}
}
