package dev.lazyblock.azure;

import dev.lazyblock.testing.UpstreamReads;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.azure.core.util.BinaryData;
import dev.lazyblock.testing.FaultProxy;
import dev.lazyblock.testing.FaultProxy.Fault;
import dev.lazyblock.upstream.Upstream;
import dev.lazyblock.upstream.UpstreamException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Arrays;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * What a reader is told when the blob, its container or the range is not there, the blob was
 * replaced, the key is wrong or the store is busy; and how many requests each costs (counted by
 * a proxy between the client and Azurite): retries on 503, none on 4xx.
 */
class AzureUpstreamErrorsTest {
    private static final String BLOB = "images/e.img";

    @RegisterExtension
    static final Azurite server = new Azurite();

    private FaultProxy proxy;
    private String container;
    private byte[] bytes;

    @BeforeEach
    void setUp() throws IOException {
        proxy = new FaultProxy(java.net.URI.create("http://127.0.0.1:" + server.port()), FaultProxy.Dialect.AZURE);
        container = server.newContainer();
        bytes = UpstreamReads.randomBytes(3, 100_000);
        server.config().build().clients(null, container).sync().getBlobClient(BLOB).upload(BinaryData.fromBytes(bytes));
    }

    @AfterEach
    void tearDown() throws IOException {
        proxy.close();
    }

    private AzureConfig.Builder viaProxy() {
        return Azurite.config(java.net.URI.create(proxy.uri() + "/" + Azurite.ACCOUNT))
                .retryBaseDelay(Duration.ofMillis(20)).maxRetryDelay(Duration.ofMillis(200));
    }

    private Upstream open(AzureConfig config, String blob) {
        return AzureBlobUpstream.open(config, new AzureLocation(container, blob));
    }

    @Test
    void aMissingBlobIsOneRequestAndSaysSo() throws Exception {
        try (Upstream up = open(viaProxy().build(), "images/missing.img")) {
            UpstreamException e = assertThrows(UpstreamException.class, () -> up.readFully(0, ByteBuffer.allocate(10)));
            String m = e.getMessage();
            assertTrue(m.contains("az://" + container + "/images/missing.img"), m);
            assertTrue(m.contains("no such blob (status 404 BlobNotFound"), m);
            assertEquals(1, proxy.requests("GET", "images/missing.img").size(), proxy.requests().toString());

            e = assertThrows(UpstreamException.class, () -> up.openRange(0, 10));
            assertTrue(e.getMessage().contains("no such blob (status 404"), e.getMessage());
            e = assertThrows(UpstreamException.class, up::size);
            assertTrue(e.getMessage().contains("status 404"), e.getMessage());
            assertEquals(1, proxy.requests("HEAD", "images/missing.img").size(), proxy.requests().toString());
        }
    }

    @Test
    void aMissingContainerSaysSo() throws Exception {
        try (Upstream up = AzureBlobUpstream.open(viaProxy().build(), new AzureLocation("no-such-container", BLOB))) {
            UpstreamException e = assertThrows(UpstreamException.class, () -> up.readFully(0, ByteBuffer.allocate(10)));
            assertTrue(e.getMessage().contains("no such container (status 404 ContainerNotFound"), e.getMessage());
        }
    }

    @Test
    void rangesPastTheEndAreRefused() throws Exception {
        try (Upstream up = open(viaProxy().build(), BLOB)) {
            UpstreamException e = assertThrows(UpstreamException.class,
                    () -> up.readFully(bytes.length - 10, ByteBuffer.allocate(20)));
            assertTrue(e.getMessage().contains("the range runs past the end of the blob (100000 bytes)"), e.getMessage());
            assertTrue(e.getMessage().contains("reading [99990, 100010) of az://" + container + "/" + BLOB),
                    e.getMessage());
            int before = proxy.requests().size();
            // Now the size is known: refused without a request.
            e = assertThrows(UpstreamException.class, () -> up.openRange(bytes.length, 1));
            assertTrue(e.getMessage().contains("runs past the end"), e.getMessage());
            assertEquals(before, proxy.requests().size());
        }
        try (Upstream fresh = open(viaProxy().build(), BLOB)) {
            UpstreamException e = assertThrows(UpstreamException.class, () -> fresh.openRange(bytes.length + 5, 3));
            assertTrue(e.getMessage().contains("range not satisfiable: it starts at or past the end of the blob"
                    + " (status 416"), e.getMessage());
        }
    }

    @Test
    void aReplacedBlobFailsInsteadOfMixingVersions() throws Exception {
        try (Upstream up = open(viaProxy().build(), BLOB)) {
            ByteBuffer first = ByteBuffer.allocate(1000);
            up.readFully(0, first);
            assertArrayEquals(Arrays.copyOf(bytes, 1000), first.array());
            server.config().build().clients(null, container).sync().getBlobClient(BLOB)
                    .upload(BinaryData.fromBytes(UpstreamReads.randomBytes(4, 100_000)), true);
            UpstreamException e = assertThrows(UpstreamException.class, () -> up.readFully(1000, ByteBuffer.allocate(10)));
            assertTrue(e.getMessage().contains("the blob changed since it was first read (status 412"), e.getMessage());
            e = assertThrows(UpstreamException.class, () -> up.openRange(1000, 10));
            assertTrue(e.getMessage().contains("status 412"), e.getMessage());
            assertTrue(proxy.requests("GET", BLOB).stream().skip(1).allMatch(r -> r.header("if-match") != null),
                    proxy.requests().toString());
            // The version a kept cache checks: the ETag pinned at the first read; the new blob has another.
            String pinned = up.version();
            try (Upstream fresh = open(viaProxy().build(), BLOB)) {
                assertNotNull(fresh.version());
                assertNotEquals(pinned, fresh.version());
            }
        }
    }

    @Test
    void aWrongKeyIsOneRequestAndNeverShowsTheKey() throws Exception {
        String wrong = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3Jvbmc9PQ==";
        try (Upstream up = open(viaProxy().key(wrong).build(), BLOB)) {
            UpstreamException e = assertThrows(UpstreamException.class, () -> up.readFully(0, ByteBuffer.allocate(10)));
            assertTrue(e.getMessage().contains("access denied (status 403"), e.getMessage());
            assertEquals(1, proxy.requests("GET", BLOB).size(), proxy.requests().toString());
            java.io.StringWriter w = new java.io.StringWriter();
            e.printStackTrace(new java.io.PrintWriter(w));
            assertTrue(!w.toString().contains(wrong) && !w.toString().contains(Azurite.KEY), "a key in " + w);
        }
    }

    @Test
    void serverBusyIsRetriedThenNamesTheBlobAndTheStatus() throws Exception {
        proxy.rule(r -> r.isFor("GET", BLOB) ? Fault.serverBusy() : Fault.PASS);
        try (Upstream up = open(viaProxy().maxAttempts(3).build(), BLOB)) {
            UpstreamException e = assertThrows(UpstreamException.class, () -> up.readFully(0, ByteBuffer.allocate(10)));
            String m = e.getMessage();
            assertTrue(m.contains("az://" + container + "/" + BLOB), m);
            assertTrue(m.contains("Azure Storage is throttling or unavailable (status 503 ServerBusy"), m);
            assertTrue(m.contains("gave up after 3 attempts"), m);
            assertEquals(3, proxy.requests("GET", BLOB).size(), proxy.requests().toString());
        }
        // Busy twice, then served: the bytes are right.
        java.util.concurrent.atomic.AtomicInteger gets = new java.util.concurrent.atomic.AtomicInteger();
        proxy.rule(r -> r.isFor("GET", BLOB) && gets.incrementAndGet() <= 2 ? Fault.serverBusy() : Fault.PASS);
        try (Upstream up = open(viaProxy().maxAttempts(3).build(), BLOB)) {
            ByteBuffer dst = ByteBuffer.allocate(5000);
            up.readFully(777, dst);
            assertArrayEquals(Arrays.copyOfRange(bytes, 777, 5777), dst.array());
        }
    }
}
