package dev.lazyblock.azure;

import dev.lazyblock.testing.UpstreamReads;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.UpstreamProvider;
import dev.lazyblock.upstream.Upstreams;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.ServiceLoader;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * {@code Upstreams.open("az://...")} through the ServiceLoader, configured the way a user would:
 * system properties only (the account, its key, Azurite's endpoint), nothing passed in code.
 */
class AzureUpstreamsProviderTest {
    @RegisterExtension
    static final Azurite server = new Azurite();

    private AutoCloseable configured;

    @BeforeEach
    void configure() {
        configured = server.asSystemProperties();
    }

    @AfterEach
    void unconfigure() throws Exception {
        configured.close();
    }

    @Test
    void theProviderIsFoundAndOpensAzUrls() throws Exception {
        UpstreamProvider provider = ServiceLoader.load(UpstreamProvider.class).stream()
                .map(ServiceLoader.Provider::get)
                .filter(p -> p.schemes().contains("az"))
                .findFirst().orElseThrow();
        assertInstanceOf(AzureUpstreamProvider.class, provider);

        String container = server.newContainer();
        byte[] bytes = UpstreamReads.randomBytes(41, 300_000);
        UpstreamProvider.StoreAndKey sk = provider.store("az://" + container + "/images/base.img");
        try (var store = sk.store()) {
            assertEquals("images/base.img", sk.key());
            assertEquals("az://" + container, store.name());
            store.put(sk.key(), bytes);
        }

        try (Upstream up = Upstreams.open("az://" + container + "/images/base.img")) {
            assertInstanceOf(AzureBlobUpstream.class, up);
            assertEquals("az://" + container + "/images/base.img", up.name());
            assertEquals(bytes.length, up.size());
            ByteBuffer dst = ByteBuffer.allocate(1000);
            up.readFully(bytes.length - 1000, dst);
            assertArrayEquals(Arrays.copyOfRange(bytes, bytes.length - 1000, bytes.length), dst.array());
        }
    }

    @Test
    void httpsUrlsOfAnAccountsBlobHostAreClaimedFromPlainHttp() {
        UpstreamProvider claimant = Upstreams.claimant(java.net.URI.create("https://acct.blob.core.windows.net/c/disk.img"));
        assertInstanceOf(AzureUpstreamProvider.class, claimant);
        assertTrue(claimant.claims(java.net.URI.create("https://ACCT.Blob.Core.Windows.Net/c/b")));
        assertEquals(null, Upstreams.claimant(java.net.URI.create("http://acct.blob.core.windows.net/c/b")),
                "plain http is not an Azure endpoint");
        assertEquals(null, Upstreams.claimant(java.net.URI.create("https://example.com/blob.core.windows.net/b")));
        assertEquals(null, Upstreams.claimant(java.net.URI.create("https://blob.core.windows.net.example.com/c/b")));
    }

    @Test
    void badAzUrlsFailBeforeAnyRequest() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Upstreams.open("az://Bad_Container/k"));
        assertTrue(e.getMessage().contains("container name 'Bad_Container'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Upstreams.open("az://images/a/../b"));
        assertTrue(e.getMessage().contains("'..' segment"), e.getMessage());
    }
}
