package dev.lazyblock.device;

import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Objects;
import java.util.UUID;
import java.util.zip.CRC32C;
import dev.lazyblock.content.ContentCipher;
import dev.lazyblock.content.ContentTable;
import dev.lazyblock.frame.FrameTable;

/**
 * The header of a layered image: which build holds each block range of the image.
 *
 * <p>An image is a stack of builds. Each build is one diff object holding some blocks
 * contiguously; the header maps every range of the image, in order and without gaps, either
 * to a build and an offset inside that build's diff, or to zeros stored nowhere. A base image
 * is a single build whose diff is the raw image, mapped {@code [0, size) -> (base, 0)}.
 *
 * <p>Binary format, version 1, little-endian:
 * <pre>
 *   0  magic "LZBLKHDR"            8
 *   8  version u16 = 1, flags u16 = 0
 *  12  total length u32            (header bytes, checksum included)
 *  16  image size u64
 *  24  block size u32, reserved u32 = 0
 *  32  build id (16), parent id (16: all zero = none)
 *  64  generation u64
 *  72  build count u32, mapping count u32
 *  80  builds:   id (16), diff size u64, SHA-256 of the diff (32)        = 56 bytes each
 *      mappings: image offset u64, length u64, kind u8 (0 build, 1 zero),
 *                reserved (3), build index u32, offset in the build u64  = 32 bytes each
 * end  CRC-32C of everything before it, u32
 * </pre>
 * Version 2 is version 1 with frame tables (compressed builds) between the mappings and the
 * checksum; it is written only when some build is compressed, so uncompressed layers stay
 * version 1 byte for byte, and both versions parse:
 * <pre>
 *      per build, in build order:
 *        codec id u16 (0 = stored raw, no table), reserved u16, frame size u32, frame count u32
 *        per frame: uncompressed offset u64, compressed offset u64, uncompressed size u32,
 *                   compressed size u32, CRC-32C of the compressed bytes u32,
 *                   CRC-32C of the uncompressed bytes u32                        = 32 bytes each
 * </pre>
 * A compressed build's size is its uncompressed size (mappings address uncompressed bytes, and
 * its SHA-256 is of them); its diff object is the frames back to back ({@link Build#storedSize}).
 * Version 3 is version 2 (a frame table entry for every build, raw ones empty) followed by a
 * content table per build, written only when some build is content-addressed (it then has no
 * diff object: each chunk is an object of its own, named by its hash, see {@link ContentTable}):
 * <pre>
 *      per build, in build order:
 *        chunk size u32 (0 = not content-addressed, no table), codec id u16,
 *        flags u16 (bit 0: encrypted), chunk count u32
 *        per chunk: SHA-256 of the stored bytes (32, all zero for a zero chunk), stored size u32,
 *                   CRC-32C of the uncompressed bytes u32 (0 when encrypted)     = 40 bytes each
 *                   encrypted: + the chunk's key, AES-wrapped (40)               = 80 bytes each
 * </pre>
 * Parsing checks every field and says which one is wrong and why; a header that parses is one
 * a reader can follow without another check.
 */
public record LayerHeader(long imageSize, int blockSize, UUID buildId, UUID parentId, long generation,
                          List<Build> builds, List<Mapping> mappings) {

    public static final int VERSION = 1;
    /** With frame tables: written only when a build is compressed. */
    public static final int VERSION_FRAMES = 2;
    /** With content tables: written only when a build is content-addressed. */
    public static final int VERSION_CONTENT = 3;
    private static final int CONTENT_TABLE_BYTES = 12;
    private static final int CONTENT_BYTES = 40;
    /** Content table flag: chunks encrypted, each entry followed by its wrapped key. */
    private static final int CONTENT_ENCRYPTED = 1;
    private static final int FRAME_TABLE_BYTES = 12;
    private static final int FRAME_BYTES = 32;
    private static final byte[] MAGIC = {'L', 'Z', 'B', 'L', 'K', 'H', 'D', 'R'};
    private static final int FIXED = 80;
    private static final int BUILD_BYTES = 56;
    private static final int MAPPING_BYTES = 32;
    /** No real image needs more; a bound keeps a corrupt count from allocating gigabytes. */
    public static final int MAX_ENTRIES = 1 << 24;
    public static final UUID NO_PARENT = new UUID(0, 0);

    /**
     * A diff object: its id names it in the store, its (uncompressed) size and digest check it;
     * {@code frames} is null for a diff stored raw, else where its compressed frames lie;
     * {@code content} is null but for a content-addressed build, which has no diff object (its
     * chunks are objects of their own).
     */
    public record Build(UUID id, long size, byte[] sha256, FrameTable frames, ContentTable content) {
        public Build {
            Objects.requireNonNull(id, "id");
            if (sha256.length != 32) {
                throw new IllegalArgumentException("SHA-256 must be 32 bytes, got " + sha256.length);
            }
            sha256 = sha256.clone();
            if (frames != null && frames.size() != size) {
                throw new IllegalArgumentException("build " + id + " has " + size + " bytes, its frame table covers "
                        + frames.size());
            }
            if (content != null && content.size() != size) {
                throw new IllegalArgumentException("build " + id + " has " + size + " bytes, its content table covers "
                        + content.size());
            }
            if (frames != null && content != null) {
                throw new IllegalArgumentException("build " + id + " has both a frame table and a content table: a "
                        + "content-addressed build compresses chunk by chunk");
            }
        }

        /** A build stored raw or in frames. */
        public Build(UUID id, long size, byte[] sha256, FrameTable frames) {
            this(id, size, sha256, frames, null);
        }

        /** A build stored raw. */
        public Build(UUID id, long size, byte[] sha256) {
            this(id, size, sha256, null, null);
        }

        /** A content-addressed build. */
        public static Build contentAddressed(UUID id, long size, byte[] sha256, ContentTable content) {
            return new Build(id, size, sha256, null, Objects.requireNonNull(content, "content"));
        }

        public boolean compressed() {
            return frames != null;
        }

        public boolean contentAddressed() {
            return content != null;
        }

        /** The diff object's size in the store; for a content-addressed build, its chunks' (a shared one each time). */
        public long storedSize() {
            return content != null ? content.storedBytes() : frames == null ? size : frames.compressedSize();
        }

        @Override
        public byte[] sha256() {
            return sha256.clone();
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Build b && id.equals(b.id) && size == b.size && java.util.Arrays.equals(sha256, b.sha256)
                    && Objects.equals(frames, b.frames) && Objects.equals(content, b.content);
        }

        @Override
        public int hashCode() {
            return id.hashCode() * 31 + Long.hashCode(size);
        }

        @Override
        public String toString() {
            return "Build[" + id + ", " + size + " bytes, sha256 " + HexFormat.of().formatHex(sha256)
                    + (frames == null ? "" : ", " + frames) + (content == null ? "" : ", " + content) + "]";
        }
    }

    /**
     * Image bytes {@code [offset, offset+length)}: in build {@code build} (an index into
     * {@link #builds()}) from {@code buildOffset}, or zeros when {@code build} is {@link #ZERO}.
     */
    public record Mapping(long offset, long length, int build, long buildOffset) {
        public static final int ZERO = -1;

        public static Mapping zero(long offset, long length) {
            return new Mapping(offset, length, ZERO, 0);
        }

        public boolean isZero() {
            return build == ZERO;
        }

        public long end() {
            return offset + length;
        }
    }

    public LayerHeader {
        Objects.requireNonNull(buildId, "buildId");
        parentId = parentId == null ? NO_PARENT : parentId;
        builds = List.copyOf(builds);
        mappings = List.copyOf(mappings);
        validate(imageSize, blockSize, generation, builds, mappings);
    }

    /** A base image: one build, its raw image, covering everything. */
    public static LayerHeader base(UUID id, long imageSize, int blockSize, byte[] sha256) {
        return new LayerHeader(imageSize, blockSize, id, NO_PARENT, 0, List.of(new Build(id, imageSize, sha256)),
                imageSize == 0 ? List.of() : List.of(new Mapping(0, imageSize, 0, 0)));
    }

    public boolean hasParent() {
        return !parentId.equals(NO_PARENT);
    }

    /** The index of the mapping holding image offset {@code off} (binary search). */
    public int mappingAt(long off) {
        if (off < 0 || off >= imageSize) {
            throw new IndexOutOfBoundsException("offset " + off + " is outside the image [0, " + imageSize + ")");
        }
        int lo = 0;
        int hi = mappings.size() - 1;
        while (lo < hi) {
            int mid = (lo + hi + 1) >>> 1;
            if (mappings.get(mid).offset() <= off) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        return lo;
    }

    // ------------------------------------------------------------------ validation

    private static void validate(long imageSize, int blockSize, long generation, List<Build> builds,
                                 List<Mapping> mappings) {
        if (blockSize < 512 || Integer.bitCount(blockSize) != 1) {
            throw bad("block size", "must be a power of two >= 512, is " + blockSize);
        }
        if (imageSize < 0) {
            throw bad("image size", "must be >= 0, is " + imageSize);
        }
        if (generation < 0) {
            throw bad("generation", "must be >= 0, is " + generation);
        }
        if (builds.size() > MAX_ENTRIES || mappings.size() > MAX_ENTRIES) {
            throw bad("counts", "at most " + MAX_ENTRIES + " builds and mappings, got " + builds.size() + " and "
                    + mappings.size());
        }
        for (int i = 0; i < builds.size(); i++) {
            if (builds.get(i).size() < 0) {
                throw bad("build " + i + " size", "must be >= 0, is " + builds.get(i).size());
            }
        }
        long expect = 0;
        for (int i = 0; i < mappings.size(); i++) {
            Mapping m = mappings.get(i);
            String what = "mapping " + i;
            if (m.offset() != expect) {
                throw bad(what + " offset", m.offset() < expect
                        ? "overlaps or is out of order: starts at " + m.offset() + ", the previous mapping ends at " + expect
                        : "leaves a gap: starts at " + m.offset() + ", the previous mapping ends at " + expect);
            }
            if (m.length() <= 0) {
                throw bad(what + " length", "must be > 0, is " + m.length());
            }
            if (m.length() > imageSize - m.offset()) {
                throw bad(what + " length", "runs past the image end: [" + m.offset() + ", +" + m.length()
                        + ") in an image of " + imageSize);
            }
            if (m.end() != imageSize && m.length() % blockSize != 0) {
                throw bad(what + " length", "must be a multiple of the block size " + blockSize + " (only the last "
                        + "mapping may end at an unaligned image end), is " + m.length());
            }
            if (m.isZero()) {
                if (m.buildOffset() != 0) {
                    throw bad(what + " build offset", "must be 0 for a zero mapping, is " + m.buildOffset());
                }
            } else {
                if (m.build() < 0 || m.build() >= builds.size()) {
                    throw bad(what + " build", "index " + m.build() + " is not one of the " + builds.size() + " builds");
                }
                if (m.buildOffset() < 0 || m.buildOffset() % blockSize != 0) {
                    throw bad(what + " build offset", "must be a non-negative multiple of " + blockSize + ", is "
                            + m.buildOffset());
                }
                long buildSize = builds.get(m.build()).size();
                if (m.buildOffset() > buildSize || m.length() > buildSize - m.buildOffset()) {
                    throw bad(what + " build offset", "[" + m.buildOffset() + ", +" + m.length()
                            + ") runs past the end of build " + m.build() + " (" + buildSize + " bytes)");
                }
            }
            expect = m.end();
        }
        if (expect != imageSize) {
            throw bad("mappings", "cover [0, " + expect + ") of an image of " + imageSize + " bytes");
        }
    }

    private static HeaderFormatException bad(String field, String why) {
        return new HeaderFormatException(field + ": " + why);
    }

    // ------------------------------------------------------------------ binary form

    /** The version {@link #toBytes} writes: 3 if any build is content-addressed, else 2 if any is compressed, else 1. */
    public int version() {
        return builds.stream().anyMatch(Build::contentAddressed) ? VERSION_CONTENT
                : builds.stream().anyMatch(Build::compressed) ? VERSION_FRAMES : VERSION;
    }

    public byte[] toBytes() {
        int version = version();
        long tables = 0;
        if (version >= VERSION_FRAMES) {
            for (Build build : builds) {
                tables += FRAME_TABLE_BYTES + (build.compressed() ? (long) build.frames().frames() * FRAME_BYTES : 0);
            }
        }
        if (version == VERSION_CONTENT) {
            for (Build build : builds) {
                tables += CONTENT_TABLE_BYTES + (build.contentAddressed() ? (long) build.content().chunks()
                        * (CONTENT_BYTES + (build.content().encrypted() ? ContentCipher.WRAPPED_BYTES : 0)) : 0);
            }
        }
        long total = FIXED + (long) builds.size() * BUILD_BYTES + (long) mappings.size() * MAPPING_BYTES + tables + 4;
        if (total > Integer.MAX_VALUE - 16) {
            throw new IllegalStateException("a header of " + total + " bytes is too large");
        }
        int length = (int) total;
        ByteBuffer b = ByteBuffer.allocate(length).order(ByteOrder.LITTLE_ENDIAN);
        b.put(MAGIC).putShort((short) version).putShort((short) 0).putInt(length);
        b.putLong(imageSize).putInt(blockSize).putInt(0);
        putUuid(b, buildId);
        putUuid(b, parentId);
        b.putLong(generation).putInt(builds.size()).putInt(mappings.size());
        for (Build build : builds) {
            putUuid(b, build.id());
            b.putLong(build.size()).put(build.sha256);
        }
        for (Mapping m : mappings) {
            b.putLong(m.offset()).putLong(m.length()).put((byte) (m.isZero() ? 1 : 0)).put(new byte[3])
                    .putInt(m.isZero() ? 0 : m.build()).putLong(m.buildOffset());
        }
        if (version >= VERSION_FRAMES) {
            for (Build build : builds) {
                FrameTable t = build.frames();
                if (t == null) {
                    b.putShort((short) 0).putShort((short) 0).putInt(0).putInt(0);
                    continue;
                }
                b.putShort((short) t.codec()).putShort((short) 0).putInt(t.frameSize()).putInt(t.frames());
                for (int i = 0; i < t.frames(); i++) {
                    b.putLong(t.uncompressedOffset(i)).putLong(t.compressedOffset(i)).putInt(t.uncompressedSize(i))
                            .putInt(t.compressedSize(i)).putInt(t.compressedCrc(i)).putInt(t.uncompressedCrc(i));
                }
            }
        }
        if (version == VERSION_CONTENT) {
            for (Build build : builds) {
                ContentTable t = build.content();
                if (t == null) {
                    b.putInt(0).putShort((short) 0).putShort((short) 0).putInt(0);
                    continue;
                }
                b.putInt(t.chunkSize()).putShort((short) t.codec()).putShort((short) (t.encrypted() ? CONTENT_ENCRYPTED : 0))
                        .putInt(t.chunks());
                for (int i = 0; i < t.chunks(); i++) {
                    b.put(t.key(i).bytes()).putInt(t.storedSize(i)).putInt(t.uncompressedCrc(i));
                    if (t.encrypted()) {
                        b.put(t.wrappedKey(i));
                    }
                }
            }
        }
        CRC32C crc = new CRC32C();
        crc.update(b.array(), 0, length - 4);
        b.putInt((int) crc.getValue());
        return b.array();
    }

    /**
     * Parses and checks a header.
     *
     * @throws HeaderFormatException naming the field that is wrong and why
     */
    public static LayerHeader parse(byte[] bytes) {
        if (bytes.length < FIXED + 4) {
            throw bad("length", "a header is at least " + (FIXED + 4) + " bytes, got " + bytes.length);
        }
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        byte[] magic = new byte[MAGIC.length];
        b.get(magic);
        if (!java.util.Arrays.equals(magic, MAGIC)) {
            throw bad("magic", "expected \"LZBLKHDR\", found " + HexFormat.of().formatHex(magic));
        }
        int version = Short.toUnsignedInt(b.getShort());
        if (version != VERSION && version != VERSION_FRAMES && version != VERSION_CONTENT) {
            throw bad("version", "this reader knows versions " + VERSION + ", " + VERSION_FRAMES + " and "
                    + VERSION_CONTENT + ", found " + version);
        }
        int flags = Short.toUnsignedInt(b.getShort());
        long length = Integer.toUnsignedLong(b.getInt());
        if (length != bytes.length) {
            throw bad("total length", "the header says " + length + " bytes, " + bytes.length + " were read (truncated?)");
        }
        CRC32C crc = new CRC32C();
        crc.update(bytes, 0, bytes.length - 4);
        int stored = ByteBuffer.wrap(bytes, bytes.length - 4, 4).order(ByteOrder.LITTLE_ENDIAN).getInt();
        if ((int) crc.getValue() != stored) {
            throw bad("checksum", String.format("CRC-32C of the header is %08x, the header says %08x", (int) crc.getValue(),
                    stored));
        }
        if (flags != 0) {
            throw bad("flags", "no flags are defined in version " + VERSION + ", found " + flags);
        }
        long imageSize = b.getLong();
        int blockSize = b.getInt();
        int reserved = b.getInt();
        if (reserved != 0) {
            throw bad("reserved", "must be 0, is " + reserved);
        }
        UUID id = getUuid(b);
        UUID parent = getUuid(b);
        long generation = b.getLong();
        long buildCount = Integer.toUnsignedLong(b.getInt());
        long mappingCount = Integer.toUnsignedLong(b.getInt());
        long expected = FIXED + buildCount * BUILD_BYTES + mappingCount * MAPPING_BYTES + 4;
        if (version >= VERSION_FRAMES ? expected > bytes.length : expected != bytes.length) {
            throw bad("counts", buildCount + " builds and " + mappingCount + " mappings need " + expected
                    + " bytes, the header has " + bytes.length);
        }
        try {
            List<Build> builds = new ArrayList<>((int) buildCount);
            for (int i = 0; i < buildCount; i++) {
                UUID bid = getUuid(b);
                long size = b.getLong();
                byte[] sha = new byte[32];
                b.get(sha);
                builds.add(new Build(bid, size, sha));
            }
            List<Mapping> mappings = new ArrayList<>((int) mappingCount);
            for (int i = 0; i < mappingCount; i++) {
                long off = b.getLong();
                long len = b.getLong();
                int kind = Byte.toUnsignedInt(b.get());
                int pad = (b.get() & 0xff) | (b.get() & 0xff) | (b.get() & 0xff);
                int build = b.getInt();
                long buildOff = b.getLong();
                if (pad != 0) {
                    throw bad("mapping " + i + " reserved", "must be 0");
                }
                mappings.add(switch (kind) {
                    case 0 -> new Mapping(off, len, build, buildOff);
                    case 1 -> {
                        if (build != 0) {
                            throw bad("mapping " + i + " build", "must be 0 for a zero mapping, is " + build);
                        }
                        yield new Mapping(off, len, Mapping.ZERO, buildOff);
                    }
                    default -> throw bad("mapping " + i + " kind", "expected 0 (build) or 1 (zero), found " + kind);
                });
            }
            if (version >= VERSION_FRAMES) {
                builds = parseFrameTables(b, builds, bytes.length - 4, version == VERSION_FRAMES);
            }
            if (version == VERSION_CONTENT) {
                builds = parseContentTables(b, builds, bytes.length - 4);
            }
            return new LayerHeader(imageSize, blockSize, id, parent, generation, builds, mappings);
        } catch (BufferUnderflowException e) {
            throw bad("length", "the header ends inside its tables");
        }
    }

    /**
     * Version 2's frame tables, one per build, ending exactly at {@code end} if {@code last}
     * (version 2), else before it (version 3's content tables follow).
     */
    private static List<Build> parseFrameTables(ByteBuffer b, List<Build> builds, int end, boolean last) {
        List<Build> out = new ArrayList<>(builds.size());
        boolean any = false;
        for (int i = 0; i < builds.size(); i++) {
            Build build = builds.get(i);
            String what = "build " + i + " frame table";
            if (end - b.position() < FRAME_TABLE_BYTES) {
                throw bad(what, "the header ends before it");
            }
            int codec = Short.toUnsignedInt(b.getShort());
            int reserved = Short.toUnsignedInt(b.getShort());
            int frameSize = b.getInt();
            long count = Integer.toUnsignedLong(b.getInt());
            if (reserved != 0) {
                throw bad(what + " reserved", "must be 0, is " + reserved);
            }
            if (codec == 0 && frameSize == 0 && count == 0) {
                out.add(build); // stored raw
                continue;
            }
            if (frameSize < 512 || frameSize > FrameTable.MAX_FRAME_SIZE || Integer.bitCount(frameSize) != 1) {
                throw bad(what + " frame size", "must be a power of two in [512, " + FrameTable.MAX_FRAME_SIZE
                        + "], is " + frameSize);
            }
            long frames = (build.size() + frameSize - 1) / frameSize;
            if (count != frames) {
                throw bad(what + " frame count", build.size() + " bytes in frames of " + frameSize + " need " + frames
                        + " frames, the table says " + count);
            }
            if (count * FRAME_BYTES > end - b.position()) {
                throw bad(what, count + " frames need " + count * FRAME_BYTES + " bytes, " + (end - b.position())
                        + " are left in the header");
            }
            int n = (int) count;
            long[] offsets = new long[n];
            int[] sizes = new int[n];
            int[] crcC = new int[n];
            int[] crcU = new int[n];
            for (int f = 0; f < n; f++) {
                long uoff = b.getLong();
                offsets[f] = b.getLong();
                int usize = b.getInt();
                sizes[f] = b.getInt();
                crcC[f] = b.getInt();
                crcU[f] = b.getInt();
                long wantOff = (long) f * frameSize;
                long wantSize = Math.min(frameSize, build.size() - wantOff);
                if (uoff != wantOff || usize != wantSize) {
                    throw bad(what + " frame " + f, "expected uncompressed [" + wantOff + ", +" + wantSize + "), found ["
                            + uoff + ", +" + Integer.toUnsignedLong(usize) + ")");
                }
            }
            try {
                out.add(new Build(build.id(), build.size(), build.sha256(),
                        new FrameTable(codec, frameSize, build.size(), offsets, sizes, crcC, crcU)));
            } catch (IllegalArgumentException e) {
                throw bad(what, e.getMessage());
            }
            any = true;
        }
        if (last && b.position() != end) {
            throw bad("frame tables", "end at " + b.position() + ", the checksum is at " + end);
        }
        if (last && !any) {
            throw bad("version", "version 2 is for headers with a compressed build, this one has none");
        }
        return out;
    }

    /** Version 3's content tables, one per build, ending exactly at {@code end}. */
    private static List<Build> parseContentTables(ByteBuffer b, List<Build> builds, int end) {
        List<Build> out = new ArrayList<>(builds.size());
        boolean any = false;
        for (int i = 0; i < builds.size(); i++) {
            Build build = builds.get(i);
            String what = "build " + i + " content table";
            if (end - b.position() < CONTENT_TABLE_BYTES) {
                throw bad(what, "the header ends before it");
            }
            int chunkSize = b.getInt();
            int codec = Short.toUnsignedInt(b.getShort());
            int flags = Short.toUnsignedInt(b.getShort());
            long count = Integer.toUnsignedLong(b.getInt());
            if ((flags & ~CONTENT_ENCRYPTED) != 0) {
                throw bad(what + " flags", "only flag " + CONTENT_ENCRYPTED + " (encrypted) is defined, found " + flags);
            }
            boolean encrypted = (flags & CONTENT_ENCRYPTED) != 0;
            int entry = CONTENT_BYTES + (encrypted ? ContentCipher.WRAPPED_BYTES : 0);
            if (chunkSize == 0 && codec == 0 && count == 0) {
                out.add(build); // not content-addressed
                continue;
            }
            if (build.compressed()) {
                throw bad(what, "the build has a frame table too: a content-addressed build compresses chunk by chunk");
            }
            if (chunkSize < ContentTable.MIN_CHUNK_SIZE || chunkSize > ContentTable.MAX_CHUNK_SIZE
                    || Integer.bitCount(chunkSize) != 1) {
                throw bad(what + " chunk size", "must be a power of two in [" + ContentTable.MIN_CHUNK_SIZE + ", "
                        + ContentTable.MAX_CHUNK_SIZE + "], is " + Integer.toUnsignedLong(chunkSize));
            }
            long chunks = (build.size() + chunkSize - 1) / chunkSize;
            if (count != chunks) {
                throw bad(what + " chunk count", build.size() + " bytes in chunks of " + chunkSize + " need " + chunks
                        + " chunks, the table says " + count);
            }
            if (count * entry > end - b.position()) {
                throw bad(what, count + " chunks need " + count * entry + " bytes, " + (end - b.position())
                        + " are left in the header");
            }
            int n = (int) count;
            byte[] hashes = new byte[n * ContentTable.HASH_BYTES];
            int[] sizes = new int[n];
            int[] crcs = new int[n];
            byte[] wrapped = encrypted ? new byte[n * ContentCipher.WRAPPED_BYTES] : null;
            for (int c = 0; c < n; c++) {
                b.get(hashes, c * ContentTable.HASH_BYTES, ContentTable.HASH_BYTES);
                sizes[c] = b.getInt();
                crcs[c] = b.getInt();
                if (encrypted) {
                    b.get(wrapped, c * ContentCipher.WRAPPED_BYTES, ContentCipher.WRAPPED_BYTES);
                }
            }
            try {
                out.add(Build.contentAddressed(build.id(), build.size(), build.sha256(),
                        new ContentTable(chunkSize, codec, build.size(), hashes, sizes, crcs, wrapped)));
            } catch (IllegalArgumentException e) {
                throw bad(what, e.getMessage());
            }
            any = true;
        }
        if (b.position() != end) {
            throw bad("content tables", "end at " + b.position() + ", the checksum is at " + end);
        }
        if (!any) {
            throw bad("version", "version 3 is for headers with a content-addressed build, this one has none");
        }
        return out;
    }

    private static void putUuid(ByteBuffer b, UUID u) {
        b.putLong(u.getMostSignificantBits()).putLong(u.getLeastSignificantBits());
    }

    private static UUID getUuid(ByteBuffer b) {
        return new UUID(b.getLong(), b.getLong());
    }

    /** A layer header that cannot be read: which field, and why. */
    public static final class HeaderFormatException extends IllegalArgumentException {
        public HeaderFormatException(String message) {
            super("bad layer header: " + message);
        }
    }
}
