package dev.lazyblock.azure;

import dev.lazyblock.upstream.UpstreamProvider;
import java.io.IOException;
import java.util.Set;

/**
 * Opens {@code az://container/blob} URLs for {@link dev.lazyblock.upstream.Upstreams#open}, found
 * through {@link java.util.ServiceLoader}, configured from {@link AzureConfig#fromEnvironment()}.
 * (An {@code https://ACCOUNT.blob.core.windows.net/...} URL is opened by {@link #open} too when
 * called directly; core's {@code Upstreams} sends https URLs to its plain HTTP upstream.)
 */
public final class AzureUpstreamProvider implements UpstreamProvider {

    @Override
    public Set<String> schemes() {
        return Set.of("az");
    }

    @Override
    public AzureBlobUpstream open(String url) throws IOException {
        AzureLocation at = AzureLocation.parse(url);
        return AzureBlobUpstream.open(AzureConfig.fromEnvironment(), at);
    }

    /** The {@link AzureObjectStore} of the URL's container (no prefix), and the URL's blob name. */
    @Override
    public StoreAndKey store(String url) throws IOException {
        AzureLocation at = AzureLocation.parse(url);
        return new StoreAndKey(AzureObjectStore.open(AzureConfig.fromEnvironment(), at.account(), at.container(), ""),
                at.blob());
    }
}
