package dev.lazyblock.upstream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URI;
import org.junit.jupiter.api.Test;

/** The safety net under HttpUpstream's messages: transport errors that quote the URL. */
class RedactionTest {
    private static final URI SIGNED =
            URI.create("https://user:pwsecret@store.example:9000/b/k.raw?X-Amz-Signature=sigsecret#fragsecret");

    @Test
    void nameKeepsSchemeHostPortAndPathOnly() {
        assertEquals("https://store.example:9000/b/k.raw", Redaction.name(SIGNED));
        assertEquals("http://h/", Redaction.name(URI.create("http://h?q=1")));
    }

    @Test
    void causeQuotingTheUrlIsCopiedWithoutItsSecrets() {
        Exception leaky = new IOException("failed: " + SIGNED,
                new IllegalStateException("inner " + SIGNED.getRawQuery()));
        Throwable safe = new Redaction(SIGNED).scrub(leaky);
        StringWriter trace = new StringWriter();
        safe.printStackTrace(new PrintWriter(trace));
        assertFalse(trace.toString().contains("secret"), trace.toString());
        assertTrue(safe.getMessage().startsWith("java.io.IOException: failed: "), safe.getMessage());
        assertTrue(safe.getCause().getMessage().startsWith("java.lang.IllegalStateException: inner"),
                safe.getCause().getMessage());
        assertEquals(leaky.getStackTrace().length, safe.getStackTrace().length);
    }

    @Test
    void causeWithoutSecretsIsKeptAsItIs() {
        Exception clean = new IOException("connection reset");
        assertSame(clean, new Redaction(SIGNED).scrub(clean));
    }
}
