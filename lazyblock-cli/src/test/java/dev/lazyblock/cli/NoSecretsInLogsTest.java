package dev.lazyblock.cli;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.classic.spi.ThrowableProxyUtil;
import ch.qos.logback.core.read.ListAppender;
import com.sun.net.httpserver.HttpServer;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;
import picocli.CommandLine;

/**
 * A signed URL's query string is a credential. Serve an image from a URL carrying one, from a
 * store that fails every read, and grep everything logged and printed: the failures are there,
 * each naming the object and the range, and the secret is nowhere.
 */
class NoSecretsInLogsTest {
    static final String SECRET = "TOPSECRETsignature0123456789";

    @TempDir
    Path dir;

    @Test
    void upstreamErrorsAreLoggedWithObjectAndRangeButNeverTheSignedQuery() throws Exception {
        int size = 8 << 20;
        HttpServer http = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 8);
        http.createContext("/disk.img", ex -> {
            try (ex) {
                if (ex.getRequestMethod().equals("HEAD")) {
                    ex.getResponseHeaders().set("Content-Length", Integer.toString(size));
                    ex.getResponseHeaders().set("Accept-Ranges", "bytes");
                    ex.sendResponseHeaders(200, -1);
                } else {
                    ex.sendResponseHeaders(503, -1); // the store is down
                }
            }
        });
        http.start();
        Logger root = (Logger) LoggerFactory.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME);
        ListAppender<ILoggingEvent> logged = new ListAppender<>();
        logged.start();
        root.addAppender(logged);
        ((Logger) LoggerFactory.getLogger("dev.lazyblock")).setLevel(ch.qos.logback.classic.Level.DEBUG);
        ByteArrayOutputStream printed = new ByteArrayOutputStream();
        PrintStream savedOut = System.out;
        PrintStream savedErr = System.err;
        try {
            String url = "http://127.0.0.1:" + http.getAddress().getPort() + "/disk.img?X-Amz-Signature=" + SECRET;
            ServeCommand serve = new ServeCommand();
            System.setOut(new PrintStream(printed, true));
            System.setErr(new PrintStream(printed, true));
            Thread t = Thread.ofPlatform().start(() -> new CommandLine(serve).execute(url, "--listen", "127.0.0.1:0",
                    "--export", "disk", "--cache-dir", dir.toString()));
            assertTrue(serve.started.await(30, TimeUnit.SECONDS));
            ClientTools.Result r = ClientTools.runAllowingFailure("nbdcopy", serve.server.uri("disk"),
                    dir.resolve("copy").toString());
            assertFalse(r.exit() == 0, "the copy fails: the store is down");
            serve.stop();
            assertTrue(t.join(Duration.ofSeconds(60)));
        } finally {
            System.setOut(savedOut);
            System.setErr(savedErr);
            root.detachAppender(logged);
            http.stop(0);
        }
        StringBuilder all = new StringBuilder(printed.toString());
        for (ILoggingEvent e : logged.list) {
            all.append(e.getFormattedMessage()).append('\n');
            if (e.getThrowableProxy() != null) {
                all.append(ThrowableProxyUtil.asString(e.getThrowableProxy())).append('\n');
            }
        }
        String text = all.toString();
        assertTrue(logged.list.stream().anyMatch(e -> e.getFormattedMessage().contains("failed")
                && e.getFormattedMessage().contains("/disk.img") && e.getFormattedMessage().matches("(?s).*\\[\\d+, \\d+\\).*")),
                "an upstream error is logged naming the object and the range:\n" + text);
        assertFalse(text.contains(SECRET), "the signed query leaked:\n" + text);
    }
}
