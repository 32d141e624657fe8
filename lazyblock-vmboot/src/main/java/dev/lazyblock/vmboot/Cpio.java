package dev.lazyblock.vmboot;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;

/**
 * Writes a cpio archive in the "newc" format, the one the kernel unpacks as an initramfs: no
 * cpio binary needed, and the archive is the same bytes on every machine (fixed inode numbers
 * and times).
 */
final class Cpio implements AutoCloseable {
    private static final int DIR = 0040755;
    private static final int FILE = 0100644;
    private static final int EXEC = 0100755;

    private final OutputStream out;
    private long written;
    private int inode = 1;

    Cpio(OutputStream out) {
        this.out = out;
    }

    void directory(String name) throws IOException {
        entry(name, DIR, new byte[0]);
    }

    void file(String name, byte[] data, boolean executable) throws IOException {
        entry(name, executable ? EXEC : FILE, data);
    }

    private void entry(String name, int mode, byte[] data) throws IOException {
        byte[] n = (name + "\0").getBytes(StandardCharsets.US_ASCII);
        String header = String.format("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
                name.equals("TRAILER!!!") ? 0 : inode++, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, n.length, 0);
        write(header.getBytes(StandardCharsets.US_ASCII));
        write(n);
        pad();
        write(data);
        pad();
    }

    private void write(byte[] b) throws IOException {
        out.write(b);
        written += b.length;
    }

    private void pad() throws IOException {
        while (written % 4 != 0) {
            out.write(0);
            written++;
        }
    }

    @Override
    public void close() throws IOException {
        entry("TRAILER!!!", 0, new byte[0]);
        out.close();
    }
}
