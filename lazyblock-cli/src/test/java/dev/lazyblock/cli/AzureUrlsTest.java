package dev.lazyblock.cli;

import dev.lazyblock.testing.UpstreamReads;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.azure.core.util.BinaryData;
import dev.lazyblock.azure.AzureConfig;
import dev.lazyblock.azure.Azurite;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code lazyblock get az://container/blob} against Azurite: the CLI finds the Azure module by ServiceLoader. */
class AzureUrlsTest {
    @RegisterExtension
    static final Azurite server = new Azurite();

    @TempDir
    Path dir;

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
    void getDownloadsAnAzBlob() throws Exception {
        String container = server.newContainer();
        byte[] image = UpstreamReads.randomBytes(9, 3 * (1 << 20) + 4321);
        AzureConfig.fromEnvironment().clients(null, container).sync().getBlobClient("images/disk.img")
                .upload(BinaryData.fromBytes(image));
        Path out = dir.resolve("disk.img");
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        PrintStream o = System.out;
        PrintStream e = System.err;
        int rc;
        try {
            System.setOut(new PrintStream(log, true));
            System.setErr(new PrintStream(log, true));
            rc = new CommandLine(new GetCommand()).execute("az://" + container + "/images/disk.img", out.toString(),
                    "--chunk-mib", "1");
        } finally {
            System.setOut(o);
            System.setErr(e);
        }
        assertEquals(0, rc, log.toString());
        assertEquals(-1, Files.mismatch(out, writeExpected(image)), "the file is the blob");
        assertTrue(!log.toString().contains(Azurite.KEY), "no key in the output");
    }

    private Path writeExpected(byte[] image) throws Exception {
        return Files.write(dir.resolve("expected.img"), image);
    }
}
