package dev.lazyblock.bench;

import dev.lazyblock.chunker.FetchEvent;
import dev.lazyblock.chunker.MissEvent;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import jdk.jfr.Recording;
import jdk.jfr.consumer.RecordedEvent;
import jdk.jfr.consumer.RecordingFile;

/**
 * Where a miss's microseconds go: a JFR recording of the chunkers' {@link MissEvent}s and
 * {@link FetchEvent}s around a run, each reader's miss paired with the demand request that
 * released it (same offset, the latest to end before the reader woke), and the pairs' stages
 * averaged along the critical path: hand-over, the wait for a fetch thread, the store's first
 * byte, the transfer, the cache write, the release, and the reader's wake-up.
 */
public final class MissProfile implements AutoCloseable {
    /** The stages of a miss, in the order they happen. */
    public static final List<String> STAGES = List.of("hand-over", "queued", "first byte", "transfer", "cache write",
            "release", "wake");

    /**
     * Mean µs per stage over the paired misses; {@code unpaired} misses were released by a
     * request other than their own (a stream, another reader's) and are left out.
     */
    public record Breakdown(int pairs, int unpaired, double waitMicros, double p50Micros, double p90Micros,
                            double maxMicros, double[] stageMicros, int tailPairs, double tailWaitMicros,
                            double[] tailStageMicros) {
        public double stage(String name) {
            return stageMicros[STAGES.indexOf(name)];
        }
    }

    private final Recording recording = new Recording();

    public MissProfile() {
        recording.enable(MissEvent.NAME).withThreshold(Duration.ZERO);
        recording.enable(FetchEvent.NAME).withThreshold(Duration.ZERO);
        recording.setToDisk(true);
    }

    public void start() {
        recording.start();
    }

    /** Stops the recording and accounts for the misses it holds. */
    public Breakdown stop() throws IOException {
        recording.stop();
        Path file = Files.createTempFile("lazyblock-miss-", ".jfr");
        try {
            recording.dump(file);
            return breakdown(RecordingFile.readAllEvents(file));
        } finally {
            Files.deleteIfExists(file);
        }
    }

    static Breakdown breakdown(List<RecordedEvent> events) {
        List<RecordedEvent> sorted = new ArrayList<>(events);
        sorted.sort((a, b) -> a.getEndTime().compareTo(b.getEndTime()));
        Map<Long, ArrayDeque<RecordedEvent>> fetches = new HashMap<>();
        List<long[]> rows = new ArrayList<>(); // per pair: wait, then its stages
        int pairs = 0;
        int unpaired = 0;
        for (RecordedEvent e : sorted) {
            String type = e.getEventType().getName();
            if (type.equals(FetchEvent.NAME)) {
                if (e.getBoolean("demand")) {
                    fetches.computeIfAbsent(e.getLong("offset"), k -> new ArrayDeque<>()).addLast(e);
                }
                continue;
            }
            if (!type.equals(MissEvent.NAME)) {
                continue;
            }
            ArrayDeque<RecordedEvent> q = fetches.get(e.getLong("offset"));
            RecordedEvent f = q == null ? null : q.pollLast();
            if (f == null) {
                unpaired++;
                continue;
            }
            q.clear(); // older requests of that offset were other iterations'
            long wait = nanos(e, "wait");
            long[] stage = {0, nanos(f, "queued"), nanos(f, "firstByte"), nanos(f, "transfer"), nanos(f, "write"),
                    nanos(f, "release"), nanos(e, "wake")};
            // Hand-over is what the rest leaves of the reader's wait: its own path to the hand-off.
            stage[0] = Math.max(0, wait - Arrays.stream(stage).sum());
            long[] row = new long[1 + stage.length];
            row[0] = wait;
            System.arraycopy(stage, 0, row, 1, stage.length);
            rows.add(row);
            pairs++;
        }
        rows.sort((a, b) -> Long.compare(a[0], b[0]));
        List<Long> waits = rows.stream().map(r -> r[0]).toList();
        // The slowest 5%: which stage the tail spends its time in, which the means hide.
        List<long[]> tail = rows.subList(rows.size() - (rows.size() + 19) / 20, rows.size());
        double[] all = means(rows);
        double[] slow = means(tail);
        return new Breakdown(pairs, unpaired, all[0], percentile(waits, 50), percentile(waits, 90),
                percentile(waits, 100), Arrays.copyOfRange(all, 1, all.length), tail.size(), slow[0],
                Arrays.copyOfRange(slow, 1, slow.length));
    }

    /** Column means in µs of rows of nanoseconds ({@code STAGES.size() + 1} wide); zeros if there are none. */
    private static double[] means(List<long[]> rows) {
        double[] m = new double[STAGES.size() + 1];
        for (long[] r : rows) {
            for (int i = 0; i < m.length; i++) {
                m[i] += r[i] / 1000.0;
            }
        }
        for (int i = 0; i < m.length && !rows.isEmpty(); i++) {
            m[i] /= rows.size();
        }
        return m;
    }

    private static double percentile(List<Long> sorted, int p) {
        if (sorted.isEmpty()) {
            return 0;
        }
        int i = (int) Math.ceil(p / 100.0 * sorted.size()) - 1;
        return sorted.get(Math.max(0, Math.min(sorted.size() - 1, i))) / 1000.0;
    }

    private static long nanos(RecordedEvent e, String field) {
        return e.getDuration(field).toNanos();
    }

    @Override
    public void close() {
        recording.close();
    }
}
