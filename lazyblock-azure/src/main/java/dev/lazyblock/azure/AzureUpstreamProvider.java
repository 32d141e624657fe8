package dev.lazyblock.azure;

import dev.lazyblock.upstream.UpstreamProvider;
import java.io.IOException;
import java.net.URI;
import java.util.Set;

/**
 * Opens {@code az://container/blob} URLs for {@link dev.lazyblock.upstream.Upstreams#open}, found
 * through {@link java.util.ServiceLoader}, configured from {@link AzureConfig#fromEnvironment()}.
 * It also {@linkplain #claims claims} {@code https://ACCOUNT.blob.core.windows.net/...} URLs, so
 * private blobs named that way are read with the account's credentials, not as plain HTTP.
 */
public final class AzureUpstreamProvider implements UpstreamProvider {

    @Override
    public Set<String> schemes() {
        return Set.of("az");
    }

    @Override
    public boolean claims(URI url) {
        String host = url.getHost();
        return "https".equalsIgnoreCase(url.getScheme()) && host != null
                && host.toLowerCase(java.util.Locale.ROOT).endsWith(".blob.core.windows.net");
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
