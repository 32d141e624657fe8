package dev.lazyblock.cache;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.Arrays;

/**
 * A lock-free set of granule indices {@code [0, granules)} whose bits are only ever set,
 * with memory proportional to what is set.
 *
 * <p>Layout: the index space is cut into containers of 2<sup>16</sup> granules (256 MiB of
 * image at 4 KiB granularity). A container slot holds one of
 * <ul>
 *   <li>{@code null}: nothing set;</li>
 *   <li>a sorted {@code char[]} of local indices (an <em>array container</em>), immutable once
 *       published: adding copies it and swaps the slot by CAS;</li>
 *   <li>a {@code long[]} of bit words (a <em>bitmap container</em>), mutated in place with
 *       atomic OR and never replaced.</li>
 * </ul>
 * A slot only moves forward: {@code null -> char[] -> ... -> long[]}. So a 64 GiB image at
 * 4 KiB costs 1 KiB untouched, a few KiB with a hundred scattered blocks, and 2 MiB plus the
 * slot array when full: one bit per granule.
 *
 * <p>Memory order, the invariant callers rely on: <b>a thread that sees a granule set also sees
 * every write the setter made before setting it</b> (the cache writes the bytes, then sets the
 * bit; a reader checks the bit, then reads the bytes). Setters publish with volatile CAS (slot)
 * or volatile getAndBitwiseOr (word); readers load slots and words with acquire. A copied array
 * or converted bitmap is built from a slot value read with acquire, so it carries the earlier
 * setters' happens-before edges forward to whoever reads the new slot.
 *
 * <p>Reads ({@link #get}, {@link #allSet}, {@link #nextSet}, {@link #nextClear}) never allocate
 * and never block. {@link #set} allocates only while a container is sparse (an array container
 * copy) or when a bitmap container is first created.
 */
public final class PresenceBitmap {
    static final int CONTAINER_SHIFT = 16;
    static final int CONTAINER_GRANULES = 1 << CONTAINER_SHIFT;
    private static final int CONTAINER_MASK = CONTAINER_GRANULES - 1;
    /**
     * An array container above this many entries becomes a bitmap: 1,024 chars are 2 KiB, a
     * quarter of a full bitmap container, and a copy-on-write add stays cheap. A short (last)
     * container switches sooner, once its array would outweigh its bitmap.
     */
    static final int ARRAY_MAX = 1024;

    private static final VarHandle SLOT = MethodHandles.arrayElementVarHandle(Object[].class);
    private static final VarHandle WORD = MethodHandles.arrayElementVarHandle(long[].class);

    private final long granules;
    /**
     * One slot per container. Written only by CAS (volatile) in {@link #set}; read with
     * acquire everywhere. See the class comment for the states a slot goes through.
     */
    private final Object[] containers;

    public PresenceBitmap(long granules) {
        if (granules < 0) {
            throw new IllegalArgumentException("granule count must be >= 0, got " + granules);
        }
        long n = (granules + CONTAINER_GRANULES - 1) >>> CONTAINER_SHIFT;
        if (n > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("too many granules: " + granules);
        }
        this.granules = granules;
        this.containers = new Object[(int) n];
    }

    /** The number of granules this bitmap covers. */
    public long granules() {
        return granules;
    }

    /** Whether granule {@code g} is set. */
    public boolean get(long g) {
        checkIndex(g);
        Object c = SLOT.getAcquire(containers, (int) (g >>> CONTAINER_SHIFT));
        int local = (int) (g & CONTAINER_MASK);
        if (c instanceof long[] words) {
            return ((long) WORD.getAcquire(words, local >>> 6) & (1L << local)) != 0;
        }
        if (c instanceof char[] sorted) {
            return Arrays.binarySearch(sorted, (char) local) >= 0;
        }
        return false;
    }

    /** Whether every granule in {@code [from, to)} is set; true for an empty range. */
    public boolean allSet(long from, long to) {
        checkRange(from, to);
        long g = from;
        while (g < to) {
            int ci = (int) (g >>> CONTAINER_SHIFT);
            long containerEnd = Math.min(to, ((long) ci + 1) << CONTAINER_SHIFT);
            int lo = (int) (g & CONTAINER_MASK);
            int hi = (int) (containerEnd - 1 - ((long) ci << CONTAINER_SHIFT)); // inclusive
            Object c = SLOT.getAcquire(containers, ci);
            if (c instanceof long[] words) {
                if (!wordsAllSet(words, lo, hi)) {
                    return false;
                }
            } else if (c instanceof char[] sorted) {
                // Sorted and distinct: [lo, hi] is all there iff lo is found at i and hi sits
                // exactly (hi - lo) places after it.
                int i = Arrays.binarySearch(sorted, (char) lo);
                int j = i + (hi - lo);
                if (i < 0 || j >= sorted.length || sorted[j] != (char) hi) {
                    return false;
                }
            } else {
                return false;
            }
            g = containerEnd;
        }
        return true;
    }

    private static boolean wordsAllSet(long[] words, int lo, int hi) {
        int wlo = lo >>> 6, whi = hi >>> 6;
        for (int w = wlo; w <= whi; w++) {
            long mask = rangeMask(w == wlo ? lo & 63 : 0, w == whi ? hi & 63 : 63);
            if (((long) WORD.getAcquire(words, w) & mask) != mask) {
                return false;
            }
        }
        return true;
    }

    /** Bits {@code [lo, hi]} of a word (inclusive, 0..63). */
    private static long rangeMask(int lo, int hi) {
        return (-1L >>> (63 - hi)) & (-1L << lo);
    }

    /** Sets every granule in {@code [from, to)}. Lock-free; safe from any number of threads. */
    public void set(long from, long to) {
        checkRange(from, to);
        long g = from;
        while (g < to) {
            int ci = (int) (g >>> CONTAINER_SHIFT);
            long containerEnd = Math.min(to, ((long) ci + 1) << CONTAINER_SHIFT);
            int lo = (int) (g & CONTAINER_MASK);
            int hi = (int) (containerEnd - 1 - ((long) ci << CONTAINER_SHIFT));
            setInContainer(ci, lo, hi);
            g = containerEnd;
        }
    }

    private void setInContainer(int ci, int lo, int hi) {
        while (true) {
            Object c = SLOT.getAcquire(containers, ci);
            if (c instanceof long[] words) {
                orRange(words, lo, hi);
                return;
            }
            char[] sorted = (char[]) c; // null or an array container
            int present = sorted == null ? 0 : sorted.length;
            Object next;
            int wordCount = containerWords(ci);
            // An array never outgrows the bitmap it stands for: at 2 bytes an entry against 8
            // bytes a word, a container of w words switches past 4w entries (or ARRAY_MAX).
            if ((long) present + (hi - lo + 1) > Math.min(ARRAY_MAX, 4L * wordCount)) {
                long[] words = new long[wordCount];
                for (int i = 0; i < present; i++) {
                    words[sorted[i] >>> 6] |= 1L << sorted[i];
                }
                setRangePlain(words, lo, hi);
                next = words;
            } else {
                char[] merged = union(sorted, lo, hi);
                if (merged == sorted) {
                    return; // already all present
                }
                next = merged;
            }
            // Volatile CAS: publishes the new container, and with it the caller's earlier
            // writes, to every reader that loads this slot with acquire. A failed CAS means
            // another setter moved the slot; start over from its value so its bits survive.
            if (SLOT.compareAndSet(containers, ci, c, next)) {
                return;
            }
        }
    }

    private int containerWords(int ci) {
        long left = granules - ((long) ci << CONTAINER_SHIFT);
        return (int) ((Math.min(left, CONTAINER_GRANULES) + 63) >>> 6);
    }

    private static void orRange(long[] words, int lo, int hi) {
        int wlo = lo >>> 6, whi = hi >>> 6;
        for (int w = wlo; w <= whi; w++) {
            long mask = rangeMask(w == wlo ? lo & 63 : 0, w == whi ? hi & 63 : 63);
            // Skip the locked RMW (and the cache-line write) when the bits are already there:
            // re-marking a present range is the common case for racing fillers.
            if (((long) WORD.getAcquire(words, w) & mask) != mask) {
                // Volatile RMW: totally ordered with every other setter of this word, and a
                // release for the bytes written before it.
                WORD.getAndBitwiseOr(words, w, mask);
            }
        }
    }

    private static void setRangePlain(long[] words, int lo, int hi) {
        int wlo = lo >>> 6, whi = hi >>> 6;
        for (int w = wlo; w <= whi; w++) {
            words[w] |= rangeMask(w == wlo ? lo & 63 : 0, w == whi ? hi & 63 : 63);
        }
    }

    /** {@code sorted} ∪ [lo, hi] as a new sorted array, or {@code sorted} itself if nothing is new. */
    private static char[] union(char[] sorted, int lo, int hi) {
        if (sorted == null) {
            char[] out = new char[hi - lo + 1];
            for (int i = 0; i < out.length; i++) {
                out[i] = (char) (lo + i);
            }
            return out;
        }
        int start = Arrays.binarySearch(sorted, (char) lo);
        int i = start >= 0 ? start : -start - 1; // first entry >= lo
        int endSearch = Arrays.binarySearch(sorted, (char) hi);
        int j = endSearch >= 0 ? endSearch + 1 : -endSearch - 1; // first entry > hi
        int already = j - i;
        int added = (hi - lo + 1) - already;
        if (added == 0) {
            return sorted;
        }
        char[] out = new char[sorted.length + added];
        System.arraycopy(sorted, 0, out, 0, i);
        for (int k = 0; k <= hi - lo; k++) {
            out[i + k] = (char) (lo + k);
        }
        System.arraycopy(sorted, j, out, i + (hi - lo + 1), sorted.length - j);
        return out;
    }

    /** The first set granule at or after {@code from}, or -1 if none. */
    public long nextSet(long from) {
        if (from < 0) {
            throw new IndexOutOfBoundsException("granule index must be >= 0, got " + from);
        }
        for (long g = from; g < granules; ) {
            int ci = (int) (g >>> CONTAINER_SHIFT);
            long base = (long) ci << CONTAINER_SHIFT;
            int local = (int) (g - base);
            Object c = SLOT.getAcquire(containers, ci);
            if (c instanceof long[] words) {
                for (int w = local >>> 6; w < words.length; w++) {
                    long bits = (long) WORD.getAcquire(words, w);
                    if (w == local >>> 6) {
                        bits &= -1L << local;
                    }
                    if (bits != 0) {
                        return base + ((long) w << 6) + Long.numberOfTrailingZeros(bits);
                    }
                }
            } else if (c instanceof char[] sorted) {
                int i = Arrays.binarySearch(sorted, (char) local);
                i = i >= 0 ? i : -i - 1;
                if (i < sorted.length) {
                    return base + sorted[i];
                }
            }
            g = base + CONTAINER_GRANULES;
        }
        return -1;
    }

    /** The first clear granule at or after {@code from}, or {@link #granules()} if none. */
    public long nextClear(long from) {
        if (from < 0) {
            throw new IndexOutOfBoundsException("granule index must be >= 0, got " + from);
        }
        for (long g = from; g < granules; ) {
            int ci = (int) (g >>> CONTAINER_SHIFT);
            long base = (long) ci << CONTAINER_SHIFT;
            int local = (int) (g - base);
            Object c = SLOT.getAcquire(containers, ci);
            if (c instanceof long[] words) {
                for (int w = local >>> 6; w < words.length; w++) {
                    long clear = ~(long) WORD.getAcquire(words, w);
                    if (w == local >>> 6) {
                        clear &= -1L << local;
                    }
                    if (clear != 0) {
                        return Math.min(granules, base + ((long) w << 6) + Long.numberOfTrailingZeros(clear));
                    }
                }
                g = base + CONTAINER_GRANULES;
            } else if (c instanceof char[] sorted) {
                int i = Arrays.binarySearch(sorted, (char) local);
                if (i < 0) {
                    return g;
                }
                // Walk the run of consecutive entries starting at local.
                int k = i;
                while (k + 1 < sorted.length && sorted[k + 1] == sorted[k] + 1) {
                    k++;
                }
                if (sorted[k] != CONTAINER_MASK) {
                    return Math.min(granules, base + sorted[k] + 1);
                }
                g = base + CONTAINER_GRANULES; // the run fills the container: look in the next
            } else {
                return g;
            }
        }
        return granules;
    }

    /** The number of set granules (a scan: for statistics, not the read path). */
    public long cardinality() {
        long n = 0;
        for (int ci = 0; ci < containers.length; ci++) {
            Object c = SLOT.getAcquire(containers, ci);
            if (c instanceof long[] words) {
                for (int w = 0; w < words.length; w++) {
                    n += Long.bitCount((long) WORD.getAcquire(words, w));
                }
            } else if (c instanceof char[] sorted) {
                n += sorted.length;
            }
        }
        return n;
    }

    /**
     * The heap this bitmap retains, in bytes, for a 64-bit JVM with compressed references:
     * 16-byte array headers, 4-byte references, sizes rounded up to 8. Tests check it against
     * an object-graph walk.
     */
    public long retainedBytes() {
        long n = 24 /* this: header, long, reference */ + align(16 + 4L * containers.length);
        for (int ci = 0; ci < containers.length; ci++) {
            Object c = SLOT.getAcquire(containers, ci);
            if (c instanceof long[] words) {
                n += align(16 + 8L * words.length);
            } else if (c instanceof char[] sorted) {
                n += align(16 + 2L * sorted.length);
            }
        }
        return n;
    }

    private static long align(long n) {
        return (n + 7) & ~7L;
    }

    private void checkIndex(long g) {
        if (g < 0 || g >= granules) {
            throw new IndexOutOfBoundsException("granule " + g + " is outside [0, " + granules + ")");
        }
    }

    private void checkRange(long from, long to) {
        if (from < 0 || to > granules || from > to) {
            throw new IndexOutOfBoundsException(
                    "granule range [" + from + ", " + to + ") is outside [0, " + granules + ")");
        }
    }
}
