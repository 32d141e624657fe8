package dev.lazyblock.chunker;

import jdk.jfr.Category;
import jdk.jfr.DataAmount;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.StackTrace;
import jdk.jfr.Timespan;

/**
 * JFR event: one request a chunker made to its store, stage by stage, committed by the fetch
 * thread when the bytes are in the cache and their readers released. Off unless a recording
 * enables {@value #NAME}; then it says where a miss's microseconds went on the fetch side (the
 * reader's side is {@link MissEvent}).
 */
@Name(FetchEvent.NAME)
@Label("Chunk fetch")
@Category("lazyblock")
@Description("One request to the store: waiting for a fetch thread, first byte, transfer, cache write, release")
@StackTrace(false)
public final class FetchEvent extends Event {
    public static final String NAME = "dev.lazyblock.Fetch";

    @Label("Store")
    public String upstream;

    @Label("Kind")
    @Description("whole (one request, released when all of it is in), priority (request-first: the reader's own blocks), stream")
    public String kind;

    @Label("Demand")
    @Description("A reader was blocked on exactly this request")
    public boolean demand;

    @Label("Offset")
    public long offset;

    @Label("Length")
    @DataAmount
    public long length;

    @Label("Queued")
    @Description("From the reader handing the fetch over to a fetch thread sending the request")
    @Timespan(Timespan.NANOSECONDS)
    public long queued;

    @Label("First byte")
    @Description("From the request to the store's first byte (the store's response headers)")
    @Timespan(Timespan.NANOSECONDS)
    public long firstByte;

    @Label("Transfer")
    @Description("From the first byte to the last")
    @Timespan(Timespan.NANOSECONDS)
    public long transfer;

    @Label("Cache write")
    @Timespan(Timespan.NANOSECONDS)
    public long write;

    @Label("Release")
    @Description("From the bytes being in the cache to the last of their readers being woken")
    @Timespan(Timespan.NANOSECONDS)
    public long release;
}
