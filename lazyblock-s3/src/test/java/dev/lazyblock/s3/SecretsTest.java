package dev.lazyblock.s3;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lazyblock.upstream.UpstreamException;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.gaul.s3proxy.junit.S3ProxyExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import software.amazon.awssdk.core.exception.SdkClientException;
import software.amazon.awssdk.services.s3.S3Client;

/** Known fake credentials, real signatures: no secret in any message, stack trace or toString. */
class SecretsTest {
    private static final String WRONG_SECRET = "wrong-Secret/Key+1a2b3c4d5e6f7a8b9c0d";

    @RegisterExtension
    final S3ProxyExtension server = TestS3.server();

    @TempDir
    Path dir;

    /** Everything printable about {@code t}: messages, causes, suppressed, stack frames. */
    private static String everything(Throwable t) {
        StringWriter w = new StringWriter();
        t.printStackTrace(new PrintWriter(w));
        return w.toString();
    }

    private static void assertNoSecret(String text, String... secrets) {
        for (String s : secrets) {
            assertFalse(text.contains(s), "secret leaked into: " + text);
        }
    }

    @Test
    void aWrongSecretIsAnAccessErrorThatNamesNoSecret() throws Exception {
        try (S3Client good = TestS3.config(server.getUri()).build().newClient()) {
            good.createBucket(b -> b.bucket(TestS3.BUCKET));
        }
        S3Config bad = S3Config.builder().endpoint(server.getUri()).region("us-east-1").pathStyle(true)
                .credentials(TestS3.ACCESS_KEY, WRONG_SECRET).build();
        assertNoSecret(bad.toString(), WRONG_SECRET);
        try (S3Upstream up = S3Upstream.open(bad, new S3Location(TestS3.BUCKET, "k"))) {
            UpstreamException e = assertThrows(UpstreamException.class, () -> up.readFully(0, ByteBuffer.allocate(4)));
            assertTrue(e.getMessage().contains("access denied (status 403"), e.getMessage());
            assertTrue(e.getMessage().contains("s3://lazyblock-test/k"), e.getMessage());
            assertNoSecret(everything(e), WRONG_SECRET, TestS3.SECRET);
            e = assertThrows(UpstreamException.class, up::size);
            assertNoSecret(everything(e), WRONG_SECRET, TestS3.SECRET);
            assertNoSecret(up.toString() + up.name(), WRONG_SECRET, TestS3.SECRET);
        }
        try (S3ObjectStore store = S3ObjectStore.open(bad, TestS3.BUCKET, "p")) {
            Path file = Files.write(dir.resolve("f"), new byte[100]);
            for (Throwable e : List.of(
                    assertThrows(IOException.class, () -> store.put("k", file)),
                    assertThrows(IOException.class, () -> store.put("k", new byte[3])),
                    assertThrows(IOException.class, () -> store.exists("k")),
                    assertThrows(IOException.class, () -> store.delete("k")))) {
                assertTrue(e.getMessage().contains("s3://lazyblock-test/p/k"), e.getMessage());
                assertNoSecret(everything(e), WRONG_SECRET, TestS3.SECRET);
            }
            assertNoSecret(store.toString() + store.name(), WRONG_SECRET, TestS3.SECRET);
        }
    }

    @Test
    void rightCredentialsErrorsNameNoSecretEither() {
        S3Config config = TestS3.config(server.getUri()).build();
        assertNoSecret(config.toString(), TestS3.SECRET);
        try (S3Upstream up = S3Upstream.open(config, new S3Location("no-bucket-here", "k"))) {
            UpstreamException e = assertThrows(UpstreamException.class, () -> up.openRange(0, 1));
            assertNoSecret(everything(e), TestS3.SECRET);
        }
    }

    @Test
    void aSecretInAnSdkMessageIsScrubbed() {
        // The SDK keeps secrets out of its messages; this is the second line, for one that does not.
        S3Config config = TestS3.config(server.getUri()).build();
        S3Errors errors = new S3Errors(config.secrets());
        SdkClientException leaky = SdkClientException.builder()
                .message("signing failed with key " + TestS3.SECRET)
                .cause(new IOException("again " + TestS3.SECRET))
                .build();
        IOException e = errors.read("s3://b/k", 0, 10, leaky, null);
        assertTrue(e.getMessage().contains("<redacted>"), e.getMessage());
        assertNoSecret(everything(e), TestS3.SECRET);
        IOException s = errors.store("putting s3://b/k", leaky);
        assertNoSecret(everything(s), TestS3.SECRET);
    }
}
