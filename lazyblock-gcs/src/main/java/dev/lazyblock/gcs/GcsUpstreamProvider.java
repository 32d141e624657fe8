package dev.lazyblock.gcs;

import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.UpstreamProvider;
import java.io.IOException;
import java.util.Set;

/**
 * Opens {@code gs://bucket/object} URLs for {@link dev.lazyblock.upstream.Upstreams#open}, found
 * through {@link java.util.ServiceLoader}, with {@link GcsConfig#fromEnvironment()}: the JSON API
 * by default, the XML API when {@code LAZYBLOCK_GCS_API=xml}. Each call builds its own client,
 * closed with what it returns.
 */
public final class GcsUpstreamProvider implements UpstreamProvider {

    @Override
    public Set<String> schemes() {
        return Set.of("gs");
    }

    @Override
    public Upstream open(String url) throws IOException {
        GcsLocation at = GcsLocation.parse(url);
        GcsConfig config = GcsConfig.fromEnvironment();
        return config.api() == GcsConfig.Api.XML ? GcsXmlUpstream.open(config, at) : GcsUpstream.open(config, at);
    }

    @Override
    public StoreAndKey store(String url) throws IOException {
        GcsLocation at = GcsLocation.parse(url);
        GcsConfig config = GcsConfig.fromEnvironment();
        return new StoreAndKey(config.api() == GcsConfig.Api.XML ? GcsXmlObjectStore.open(config, at.bucket(), "")
                : GcsObjectStore.open(config, at.bucket(), ""), at.object());
    }
}
