package dev.lazyblock.frame;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.ServiceLoader;

/** The codecs on the class path, by id and by name. */
public final class FrameCodecs {
    private FrameCodecs() {}

    /** Frames stored as they are: checksummed, not compressed. Always available. */
    public static final FrameCodec NONE = new FrameCodec() {
        @Override
        public int id() {
            return 0;
        }

        @Override
        public String name() {
            return "none";
        }

        @Override
        public int maxCompressedLength(int len) {
            return len;
        }

        @Override
        public int compress(MemorySegment src, MemorySegment dst) {
            MemorySegment.copy(src, 0, dst, 0, src.byteSize());
            return (int) src.byteSize();
        }

        @Override
        public int decompress(MemorySegment src, MemorySegment dst) {
            long n = Math.min(src.byteSize(), dst.byteSize());
            MemorySegment.copy(src, 0, dst, 0, n);
            return (int) n;
        }
    };

    /** Loaded once: the class path does not change under a running process. */
    private static final List<FrameCodec> ALL = load();

    private static List<FrameCodec> load() {
        List<FrameCodec> all = new ArrayList<>();
        all.add(NONE);
        for (FrameCodec c : ServiceLoader.load(FrameCodec.class, FrameCodecs.class.getClassLoader())) {
            for (FrameCodec known : all) {
                if (known.id() == c.id() || known.name().equals(c.name())) {
                    throw new IllegalStateException("two frame codecs claim id " + c.id() + " or name " + c.name() + ": "
                            + known.getClass().getName() + " and " + c.getClass().getName());
                }
            }
            all.add(c);
        }
        return List.copyOf(all);
    }

    public static List<FrameCodec> all() {
        return ALL;
    }

    /** The codec with this id, or an error saying which codecs are present (and where the rest live). */
    public static FrameCodec byId(int id) {
        for (FrameCodec c : ALL) {
            if (c.id() == id) {
                return c;
            }
        }
        throw new IllegalArgumentException("no frame codec with id " + id + " on the class path (have " + names()
                + "; zstd and lz4 are in lazyblock-compress)");
    }

    public static FrameCodec byName(String name) {
        for (FrameCodec c : ALL) {
            if (c.name().equalsIgnoreCase(name)) {
                return c;
            }
        }
        throw new IllegalArgumentException("unknown codec '" + name + "': expected one of " + names()
                + " (zstd and lz4 are in lazyblock-compress)");
    }

    private static String names() {
        return String.join(", ", ALL.stream().map(FrameCodec::name).toList());
    }
}
