package dev.lazyblock.upstream;

import java.net.http.HttpResponse.BodySubscriber;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Flow;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Function;

/**
 * Copies a response body straight into the caller's buffer, which must be filled exactly: a body
 * that ends early or runs long fails. Runs on the HTTP client's threads while the caller waits.
 *
 * <p>{@link #abandon()} (on timeout or interrupt) guarantees no byte is written to the buffer
 * after it returns: the caller may reuse the buffer at once.
 */
final class BufferSubscriber implements BodySubscriber<Void> {
    private final ByteBuffer dst;
    private final int start;
    private final int expected;
    private final Function<String, UpstreamException> error;
    private final CompletableFuture<Void> body = new CompletableFuture<>();
    /** Orders {@link #onNext} writes against {@link #abandon()}; never contended otherwise. */
    private final ReentrantLock lock = new ReentrantLock();
    private Flow.Subscription subscription;
    private boolean finished;

    /** @param error builds the exception for a problem, naming the object and range */
    BufferSubscriber(ByteBuffer dst, Function<String, UpstreamException> error) {
        this.dst = dst;
        this.start = dst.position();
        this.expected = dst.remaining();
        this.error = error;
    }

    @Override
    public void onSubscribe(Flow.Subscription s) {
        lock.lock();
        try {
            if (finished) {
                s.cancel();
                return;
            }
            subscription = s;
        } finally {
            lock.unlock();
        }
        // Unbounded demand is fine: onNext copies synchronously and queues nothing.
        s.request(Long.MAX_VALUE);
    }

    @Override
    public void onNext(List<ByteBuffer> items) {
        lock.lock();
        try {
            if (finished) {
                return;
            }
            for (ByteBuffer b : items) {
                if (b.remaining() > dst.remaining()) {
                    fail("body longer than the range: more than " + expected + " bytes");
                    return;
                }
                dst.put(b);
            }
        } finally {
            lock.unlock();
        }
    }

    @Override
    public void onError(Throwable t) {
        lock.lock();
        try {
            finished = true;
        } finally {
            lock.unlock();
        }
        body.completeExceptionally(t);
    }

    @Override
    public void onComplete() {
        lock.lock();
        try {
            if (finished) {
                return;
            }
            int got = dst.position() - start;
            if (got < expected) {
                fail("body ended early: expected " + expected + " bytes, got " + got);
                return;
            }
            finished = true;
        } finally {
            lock.unlock();
        }
        body.complete(null);
    }

    /** Stops writing into the buffer and drops the connection's body. */
    void abandon() {
        lock.lock();
        try {
            if (finished) {
                return;
            }
            finished = true;
        } finally {
            lock.unlock();
        }
        cancel();
    }

    /** Called with the lock held. */
    private void fail(String what) {
        finished = true;
        cancel();
        body.completeExceptionally(error.apply(what));
    }

    private void cancel() {
        Flow.Subscription s = subscription;
        if (s != null) {
            s.cancel();
        }
    }

    @Override
    public CompletionStage<Void> getBody() {
        return body;
    }
}
