package dev.lazyblock.upstream;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedByInterruptException;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.StandardOpenOption;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An object on a local or NFS-mounted file system, read with positional reads ({@code pread}):
 * they carry no file position, so any number of threads share one channel.
 *
 * <p>A {@link FileChannel} is closed for every user when a thread blocked in it is interrupted,
 * and chunkers do cancel fetches by interrupting them. So a channel closed that way is replaced
 * by a fresh one: the interrupted read fails, every other read retries on the new channel.
 */
public final class FileUpstream implements Upstream {
    private static final Logger log = LoggerFactory.getLogger(FileUpstream.class);

    /**
     * Largest read a range stream makes at once, whatever buffer it is given, so that a reader
     * filling a whole chunk through it still sees progress (the streaming chunker releases
     * waiters as bytes arrive).
     */
    static final int STREAM_PIECE = 256 * 1024;

    private final Path path;
    private final String name;
    private final Object reopenLock = new Object();
    private volatile FileChannel channel;
    private volatile boolean closed;

    /** Opens {@code path} for reading now, so a missing file fails here, not at first read. */
    public FileUpstream(Path path) throws IOException {
        this.path = path;
        this.name = path.toString();
        this.channel = FileChannel.open(path, StandardOpenOption.READ);
    }

    /** True: an interrupt closes only this thread's use of the channel, which is reopened for the others (see call). */
    @Override
    public boolean honoursInterrupts() {
        return true;
    }

    @Override
    public String name() {
        return name;
    }

    public Path path() {
        return path;
    }

    /** Asks the file system each time: it is one {@code fstat}, and the file is the truth. */
    @Override
    public long size() throws IOException {
        return call(FileChannel::size);
    }

    /**
     * The file's identity (device and inode) and modification time, asked now: a file replaced or
     * rewritten in place changes one of them. (A file system that keeps no modification times
     * cannot tell a rewrite in place; none that holds images is like that.)
     */
    @Override
    public String version() throws IOException {
        BasicFileAttributes a = Files.readAttributes(path, BasicFileAttributes.class);
        return "file " + a.fileKey() + " modified " + a.lastModifiedTime().toInstant();
    }

    @Override
    public void readFully(long off, ByteBuffer dst) throws IOException {
        int len = dst.remaining();
        Ranges.check(off, len);
        int start = dst.position();
        while (dst.hasRemaining()) {
            long pos = off + (dst.position() - start);
            if (call(ch -> ch.read(dst, pos)) < 0) {
                throw shortRead(off, len, dst.position() - start);
            }
        }
    }

    @Override
    public RangeStream openRange(long off, long len) {
        Ranges.check(off, len);
        return new FileRangeStream(off, len);
    }

    @Override
    public void close() throws IOException {
        synchronized (reopenLock) {
            closed = true;
            channel.close();
        }
    }

    @Override
    public String toString() {
        return "FileUpstream[" + name + "]";
    }

    private UpstreamException shortRead(long off, long len, long got) {
        return new UpstreamException(name, off, len,
                "short read: expected " + len + " bytes, got " + got);
    }

    private interface ChannelCall {
        long call(FileChannel channel) throws IOException;
    }

    /** Runs {@code op} on the current channel, replacing it if an interrupt closed it. */
    private long call(ChannelCall op) throws IOException {
        while (true) {
            FileChannel ch = channel;
            try {
                return op.call(ch);
            } catch (ClosedByInterruptException e) {
                // This thread was interrupted: the read is cancelled, but not the upstream.
                reopen(ch);
                InterruptedIOException ie = new InterruptedIOException("interrupted reading " + name);
                ie.initCause(e);
                throw ie;
            } catch (ClosedChannelException e) {
                // Another thread's interrupt closed the shared channel under this read.
                if (closed) {
                    throw new IOException("upstream " + name + " is closed", e);
                }
                reopen(ch);
            }
        }
    }

    private void reopen(FileChannel dead) throws IOException {
        synchronized (reopenLock) {
            if (closed || channel != dead) {
                return; // closed for good, or someone else already reopened
            }
            log.debug("reopening {}: an interrupted read closed its channel", name);
            channel = FileChannel.open(path, StandardOpenOption.READ);
        }
    }

    /** Reads the range positionally, at most {@link #STREAM_PIECE} bytes per call. */
    private final class FileRangeStream extends PieceStream {
        FileRangeStream(long off, long len) {
            super(name, off, len, STREAM_PIECE);
        }

        @Override
        int readPiece(long pos, ByteBuffer dst) throws IOException {
            int n = (int) call(ch -> ch.read(dst, pos));
            if (n < 0) {
                throw shortRead(off, len, done);
            }
            return n;
        }
    }
}
