package dev.lazyblock.bench;

import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.upstream.SimulatedUpstream.LatencyModel;

/** The reference system's published BenchmarkRandomAccess figures (DESIGN.md), and the model's limit. */
public final class Reference {
    private Reference() {}

    /** Average µs per reader, or -1 where the reference has no such variant. */
    public static long avgMicros(String backend, ChunkerKind kind) {
        return switch (backend + "/" + kind) {
            case "GCS/STREAMING" -> 45_122;
            case "GCS/FULL_FETCH" -> 66_168;
            case "NFS/STREAMING" -> 6_165;
            case "NFS/FULL_FETCH" -> 14_002;
            default -> -1;
        };
    }

    /** Bytes allocated per op, or -1. */
    public static long bytesPerOp(String backend, ChunkerKind kind) {
        return switch (backend + "/" + kind) {
            case "GCS/STREAMING" -> 4_282;
            case "GCS/FULL_FETCH" -> 3_056;
            case "NFS/STREAMING" -> 3_795;
            case "NFS/FULL_FETCH" -> 2_826;
            default -> -1;
        };
    }

    /** Allocations per op, or -1. */
    public static long allocsPerOp(String backend, ChunkerKind kind) {
        return switch (backend + "/" + kind) {
            case "GCS/STREAMING" -> 72;
            case "GCS/FULL_FETCH" -> 53;
            case "NFS/STREAMING" -> 70;
            case "NFS/FULL_FETCH" -> 51;
            default -> -1;
        };
    }

    /** The model's physical limit for one block miss: TTFB + block / bandwidth, in µs. */
    public static double limitMicros(LatencyModel model, int block) {
        return (model.ttfbNanos() + model.transferNanos(block)) / 1000.0;
    }

    public static LatencyModel model(String backend) {
        return switch (backend) {
            case "GCS" -> LatencyModel.GCS;
            case "NFS" -> LatencyModel.NFS;
            default -> throw new IllegalArgumentException("unknown backend " + backend + ": expected GCS or NFS");
        };
    }
}
