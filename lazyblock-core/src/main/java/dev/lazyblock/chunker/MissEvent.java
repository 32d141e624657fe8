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
 * JFR event: one reader's wait for bytes that were not in the cache, committed by the reader.
 * Off unless a recording enables {@value #NAME}. With {@link FetchEvent} it accounts for a miss:
 * {@code wait} is the whole of it, {@code wake} the part after a fetch thread released it.
 */
@Name(MissEvent.NAME)
@Label("Cache miss")
@Category("lazyblock")
@Description("A reader waiting on a fetch: the whole wait, and the part from its release to it running again")
@StackTrace(false)
public final class MissEvent extends Event {
    public static final String NAME = "dev.lazyblock.Miss";

    @Label("Store")
    public String upstream;

    @Label("Offset")
    public long offset;

    @Label("Length")
    @DataAmount
    public long length;

    @Label("Wait")
    @Description("From the miss to the reader having its bytes")
    @Timespan(Timespan.NANOSECONDS)
    public long wait;

    @Label("Hand-over")
    @Description("From the miss to the reader having joined its chunk's fetch (and handed over any request it started)")
    @Timespan(Timespan.NANOSECONDS)
    public long handOver;

    @Label("Wake")
    @Description("From a fetch thread releasing the reader to the reader running again")
    @Timespan(Timespan.NANOSECONDS)
    public long wake;
}
