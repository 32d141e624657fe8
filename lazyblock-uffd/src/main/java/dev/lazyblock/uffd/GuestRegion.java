package dev.lazyblock.uffd;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * One guest memory region as Firecracker describes it to its page-fault handler: where the
 * VMM mapped it, how big it is, where its bytes start in the memory file, and its page size.
 *
 * <p>Firecracker sends a JSON array of objects with {@code base_host_virt_addr}, {@code size},
 * {@code offset} and {@code page_size}; versions before 1.10 send {@code page_size_kib}, which
 * despite its name holds bytes. Both are accepted.
 */
public record GuestRegion(long base, long size, long offset, long pageSize) {

    public GuestRegion {
        if (size <= 0 || offset < 0 || pageSize <= 0 || Long.bitCount(pageSize) != 1) {
            throw new IllegalArgumentException("bad guest region: base 0x" + Long.toHexString(base) + ", size " + size
                    + ", offset " + offset + ", page size " + pageSize);
        }
        if (Long.compareUnsigned(base + size - 1, base) < 0 || offset + size < 0) {
            // Found by fuzzing: a region that wraps the address space (or the memory file's
            // offsets) would map faults to nonsense offsets.
            throw new IllegalArgumentException("guest region runs past the end of the "
                    + (offset + size < 0 ? "memory file's offsets" : "address space") + ": base 0x"
                    + Long.toUnsignedString(base, 16) + ", size " + size + ", offset " + offset);
        }
        if (base % pageSize != 0 || size % pageSize != 0 || offset % pageSize != 0) {
            throw new IllegalArgumentException("guest region not aligned to its " + pageSize + "-byte pages: base 0x"
                    + Long.toHexString(base) + ", size " + size + ", offset " + offset);
        }
    }

    public boolean contains(long address) {
        return address - base >= 0 && address - base < size;
    }

    /**
     * Parses Firecracker's message. The format is a flat array of flat objects whose values are
     * unsigned integers, so a small strict parser does: anything else is refused with what was
     * expected and where.
     */
    public static List<GuestRegion> parseAll(String json) {
        Parser p = new Parser(json);
        List<GuestRegion> out = new ArrayList<>();
        p.skipSpace();
        p.expect('[');
        p.skipSpace();
        if (p.peek() == ']') {
            p.pos++;
        } else {
            while (true) {
                Map<String, Long> fields = p.object();
                Long base = fields.get("base_host_virt_addr");
                Long size = fields.get("size");
                Long offset = fields.get("offset");
                Long page = fields.containsKey("page_size") ? fields.get("page_size") : fields.get("page_size_kib");
                if (base == null || size == null || offset == null || page == null) {
                    throw new IllegalArgumentException("guest region " + out.size() + " lacks a field: expected "
                            + "base_host_virt_addr, size, offset and page_size (or page_size_kib), found " + fields.keySet());
                }
                out.add(new GuestRegion(base, size, offset, page));
                p.skipSpace();
                if (p.peek() == ',') {
                    p.pos++;
                    p.skipSpace();
                    continue;
                }
                p.expect(']');
                break;
            }
        }
        p.skipSpace();
        if (p.pos != json.length()) {
            throw new IllegalArgumentException("unexpected text after the region list at index " + p.pos);
        }
        return out;
    }

    private static final class Parser {
        final String s;
        int pos;

        Parser(String s) {
            this.s = s;
        }

        char peek() {
            if (pos >= s.length()) {
                throw new IllegalArgumentException("guest region list ends early at index " + pos);
            }
            return s.charAt(pos);
        }

        void expect(char c) {
            if (peek() != c) {
                throw new IllegalArgumentException("expected '" + c + "' at index " + pos + " of the region list, found '"
                        + peek() + "'");
            }
            pos++;
        }

        void skipSpace() {
            while (pos < s.length() && Character.isWhitespace(s.charAt(pos))) {
                pos++;
            }
        }

        Map<String, Long> object() {
            Map<String, Long> m = new HashMap<>();
            expect('{');
            skipSpace();
            if (peek() == '}') {
                pos++;
                return m;
            }
            while (true) {
                skipSpace();
                expect('"');
                int start = pos;
                while (peek() != '"') {
                    pos++;
                }
                String key = s.substring(start, pos++);
                skipSpace();
                expect(':');
                skipSpace();
                int numStart = pos;
                while (pos < s.length() && Character.isDigit(s.charAt(pos))) {
                    pos++;
                }
                if (numStart == pos) {
                    throw new IllegalArgumentException("expected an unsigned integer for \"" + key + "\" at index " + pos);
                }
                m.put(key, Long.parseUnsignedLong(s.substring(numStart, pos)));
                skipSpace();
                if (peek() == ',') {
                    pos++;
                    continue;
                }
                expect('}');
                return m;
            }
        }
    }
}
