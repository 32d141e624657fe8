package dev.lazyblock.daemon;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.List;

/**
 * A sandbox as its directory keeps it ({@value #FILE}), so that a daemon started again on the
 * same state directory, after a clean stop or a {@code kill -9}, brings it back: same id, export
 * name and socket, its overlay reopened with every write that was flushed.
 *
 * <p>Written whole to a temporary file, fsynced, renamed over the old one and the directory
 * fsynced: a crash leaves the old record or the new, never a torn one. A sandbox directory without
 * a record is one whose create never returned, and is removed. At create the record is written
 * without the fsyncs ({@link #write(Path, boolean)}), which a kill does not undo; {@link #sync}
 * makes it durable against a power cut before the sandbox's overlay first vouches for a write.
 */
record SandboxRecord(int version, Daemon.CreateRequest request, String created, boolean paused,
                     List<Daemon.Layer> layers) {
    static final String FILE = "sandbox.json";
    static final int VERSION = 1;
    private static final int MAX_BYTES = 1 << 20;
    private static final ObjectMapper JSON = JsonMapper.builder()
            .disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES) // a newer daemon may add fields
            .enable(SerializationFeature.INDENT_OUTPUT)
            .build();

    SandboxRecord {
        layers = layers == null ? List.of() : List.copyOf(layers);
    }

    void write(Path dir) throws IOException {
        write(dir, true);
    }

    void write(Path dir, boolean durably) throws IOException {
        byte[] bytes = JSON.writeValueAsBytes(this);
        Path tmp = dir.resolve(FILE + ".tmp");
        try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            ByteBuffer b = ByteBuffer.wrap(bytes);
            while (b.hasRemaining()) {
                ch.write(b);
            }
            if (durably) {
                ch.force(true);
            }
        }
        try {
            Files.move(tmp, dir.resolve(FILE), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            throw new IOException("cannot keep " + dir.resolve(FILE) + ": the file system cannot rename atomically", e);
        }
        if (durably) {
            forceDirectory(dir); // the rename itself
        }
    }

    /** Makes a record written with {@code durably} false durable, with its sandbox directory's name. */
    static void sync(Path dir) throws IOException {
        try (FileChannel ch = FileChannel.open(dir.resolve(FILE), StandardOpenOption.READ)) {
            ch.force(true);
        }
        forceDirectory(dir);
        forceDirectory(dir.getParent());
    }

    private static void forceDirectory(Path dir) throws IOException {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        }
    }

    /** The record in {@code dir}, or null if it has none. */
    static SandboxRecord read(Path dir) throws IOException {
        Path file = dir.resolve(FILE);
        long size;
        try {
            size = Files.size(file);
        } catch (NoSuchFileException e) {
            return null;
        }
        if (size > MAX_BYTES) {
            throw new IOException(file + " has " + size + " bytes: expected a sandbox record of at most " + MAX_BYTES);
        }
        SandboxRecord r;
        try {
            r = JSON.readValue(Files.readAllBytes(file), SandboxRecord.class);
        } catch (IOException e) {
            throw new IOException(file + " is not a sandbox record: " + e.getMessage(), e);
        }
        if (r.version() != VERSION || r.request() == null || r.request().id() == null) {
            throw new IOException(file + ": expected a version " + VERSION + " sandbox record with a request and an id, "
                    + "got version " + r.version());
        }
        return r;
    }
}
