package dev.lazyblock.bench;

import java.lang.management.ManagementFactory;

/** Heap bytes allocated by every thread of the JVM so far (HotSpot's per-thread TLAB accounting). */
public final class Allocation {
    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

    static {
        if (THREADS.isThreadAllocatedMemorySupported() && !THREADS.isThreadAllocatedMemoryEnabled()) {
            THREADS.setThreadAllocatedMemoryEnabled(true);
        }
    }

    private Allocation() {}

    public static long totalBytes() {
        return THREADS.getTotalThreadAllocatedBytes();
    }
}
