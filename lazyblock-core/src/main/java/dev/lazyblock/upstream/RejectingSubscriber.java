package dev.lazyblock.upstream;

import java.net.http.HttpResponse.BodySubscriber;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Flow;

/**
 * The body of a response already judged unusable from its status and headers: cancelled
 * unread (a 200 that ignored Range may be the whole multi-GiB object), failing with
 * {@code error}.
 */
final class RejectingSubscriber<T> implements BodySubscriber<T> {
    private final CompletableFuture<T> body;

    RejectingSubscriber(UpstreamException error) {
        this.body = CompletableFuture.failedFuture(error);
    }

    @Override
    public void onSubscribe(Flow.Subscription s) {
        s.cancel();
    }

    @Override
    public void onNext(List<ByteBuffer> item) {}

    @Override
    public void onError(Throwable throwable) {}

    @Override
    public void onComplete() {}

    @Override
    public CompletionStage<T> getBody() {
        return body;
    }
}
