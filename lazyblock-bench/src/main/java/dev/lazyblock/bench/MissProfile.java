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
                            double maxMicros, double[] stageMicros) {
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
        double[] sums = new double[STAGES.size()];
        double waitSum = 0;
        List<Long> waits = new ArrayList<>();
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
            for (int i = 0; i < stage.length; i++) {
                sums[i] += stage[i] / 1000.0;
            }
            waitSum += wait / 1000.0;
            waits.add(wait);
            pairs++;
        }
        double[] means = new double[sums.length];
        for (int i = 0; i < sums.length; i++) {
            means[i] = pairs == 0 ? 0 : sums[i] / pairs;
        }
        waits.sort(null);
        return new Breakdown(pairs, unpaired, pairs == 0 ? 0 : waitSum / pairs, percentile(waits, 50),
                percentile(waits, 90), percentile(waits, 100), means);
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
