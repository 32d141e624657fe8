package dev.lazyblock.azure;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.URI;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Azurite, Microsoft's Azure Storage emulator, as a real server for the tests: installed from the
 * npm registry (the pinned {@code lazyblock.azurite.version}) into {@code target/azurite} on first
 * use, started on 127.0.0.1 with a free port and in-memory storage for each test class, stopped
 * after it. Its well-known development account (devstoreaccount1 and its published key) signs
 * every request, and Azurite checks the signatures.
 */
public final class Azurite implements BeforeAllCallback, AfterAllCallback {
    public static final String ACCOUNT = "devstoreaccount1";
    public static final String KEY = AzureConfig.AZURITE_KEY;
    private static final Pattern LISTENING = Pattern.compile("listens on https?://127\\.0\\.0\\.1:(\\d+)");
    private static final AtomicInteger containers = new AtomicInteger();

    private final int requestedPort;
    private final List<String> extraArgs;
    private Process process;
    private int port;
    private final List<String> output = java.util.Collections.synchronizedList(new ArrayList<>());

    /** On a free port, plain HTTP. */
    public Azurite() {
        this(0, List.of());
    }

    /** On {@code port} (0: a free one), with more of Azurite's options (for HTTPS: --cert, --pwd). */
    public Azurite(int port, List<String> extraArgs) {
        this.requestedPort = port;
        this.extraArgs = List.copyOf(extraArgs);
    }

    @Override
    public void beforeAll(ExtensionContext context) throws Exception {
        start();
    }

    @Override
    public void afterAll(ExtensionContext context) throws Exception {
        stop();
    }

    /** The blob endpoint: {@code http://127.0.0.1:PORT/devstoreaccount1}. */
    public URI endpoint() {
        return URI.create("http://127.0.0.1:" + port + "/" + ACCOUNT);
    }

    public int port() {
        return port;
    }

    /** The development account's configuration for {@code endpoint} (this server, or a proxy in front). */
    static AzureConfig.Builder config(URI endpoint) {
        return AzureConfig.builder().account(ACCOUNT).key(KEY).endpoint(endpoint);
    }

    AzureConfig.Builder config() {
        return config(endpoint());
    }

    /**
     * Points {@link AzureConfig#fromEnvironment()} at this server the way a user would, through
     * system properties (endpoint, account, key); closing clears them.
     */
    public AutoCloseable asSystemProperties() {
        java.util.Map<String, String> properties = java.util.Map.of(
                AzureConfig.Setting.ENDPOINT.property(), endpoint().toString(),
                AzureConfig.Setting.ACCOUNT.property(), ACCOUNT,
                AzureConfig.Setting.KEY.property(), KEY);
        properties.forEach(System::setProperty);
        return () -> properties.keySet().forEach(System::clearProperty);
    }

    /** A container name no other test in this run uses, created. */
    public String newContainer() {
        String name = "c" + containers.incrementAndGet() + "-" + Long.toHexString(new Random().nextLong() & 0xffffffL);
        config().build().clients(null, name).sync().create();
        return name;
    }

    /** Azurite's working directory while it runs. */
    private Path workspace;

    void start() throws IOException, InterruptedException {
        Path bin = install();
        workspace = Files.createTempDirectory("azurite");
        List<String> command = new ArrayList<>(List.of(bin.toString(), "--blobHost", "127.0.0.1", "--blobPort",
                Integer.toString(requestedPort), "--inMemoryPersistence", "--extentMemoryLimit", "1024",
                "--skipApiVersionCheck", "--loose", "--disableTelemetry"));
        command.addAll(extraArgs);
        ProcessBuilder pb = new ProcessBuilder(command)
                .directory(workspace.toFile())
                .redirectErrorStream(true);
        process = pb.start();
        CompletableFuture<Integer> listening = new CompletableFuture<>();
        Thread drain = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream(),
                    StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    if (output.size() < 200) {
                        output.add(line);
                    }
                    Matcher m = LISTENING.matcher(line);
                    if (m.find()) {
                        listening.complete(Integer.parseInt(m.group(1)));
                    }
                }
            } catch (IOException ignored) {
                // the process ended
            }
            listening.completeExceptionally(new IOException("Azurite exited before listening: " + output));
        }, "azurite-output");
        drain.setDaemon(true);
        drain.start();
        try {
            port = listening.get(60, TimeUnit.SECONDS);
        } catch (Exception e) {
            stop();
            throw new IOException("Azurite did not start within 60 s; its output: " + output, e);
        }
    }

    void stop() throws InterruptedException {
        if (process == null) {
            return;
        }
        List<ProcessHandle> children = process.descendants().toList();
        process.destroy();
        children.forEach(ProcessHandle::destroy);
        if (!process.waitFor(10, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            children.forEach(ProcessHandle::destroyForcibly);
            process.waitFor(10, TimeUnit.SECONDS);
        }
        process = null;
        deleteWorkspace();
    }

    /** Its working directory (in-memory storage leaves little there): gone with the server. */
    private void deleteWorkspace() {
        if (workspace == null) {
            return;
        }
        try (var files = Files.walk(workspace)) {
            for (Path p : files.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            System.err.println("could not remove Azurite's workspace " + workspace + ": " + e);
        }
        workspace = null;
    }

    /** {@code npm install azurite@VERSION} into the build directory unless that version is there. */
    static Path install() throws IOException, InterruptedException {
        String version = System.getProperty("lazyblock.azurite.version", "3.35.0");
        Path dir = Path.of(System.getProperty("lazyblock.azurite.dir", "target/azurite")).toAbsolutePath();
        Files.createDirectories(dir);
        Path bin = dir.resolve("node_modules/.bin/azurite-blob");
        Path pkg = dir.resolve("node_modules/azurite/package.json");
        try (FileChannel lockFile = FileChannel.open(dir.resolve(".lock"), StandardOpenOption.CREATE,
                StandardOpenOption.WRITE); FileLock held = lockFile.lock()) {
            assert held.isValid();
            if (Files.isExecutable(bin) && Files.exists(pkg)
                    && Files.readString(pkg).contains("\"version\": \"" + version + "\"")) {
                return bin;
            }
            Path log = dir.resolve("npm-install.log");
            Process npm;
            try {
                npm = new ProcessBuilder("npm", "install", "--prefix", dir.toString(), "--no-audit", "--no-fund",
                        "--no-save", "--loglevel=error", "azurite@" + version)
                        .redirectErrorStream(true).redirectOutput(log.toFile()).start();
            } catch (IOException e) {
                throw new IOException("the Azure tests need npm to install Azurite " + version + " (Debian: apt-get"
                        + " install npm; bin/install-tools does it)", e);
            }
            if (!npm.waitFor(5, TimeUnit.MINUTES)) {
                npm.destroyForcibly();
                throw new IOException("npm install azurite@" + version + " took more than 5 minutes; see " + log);
            }
            if (npm.exitValue() != 0 || !Files.isExecutable(bin)) {
                throw new IOException("npm install azurite@" + version + " failed (exit " + npm.exitValue() + "): "
                        + Files.readString(log));
            }
            return bin;
        }
    }
}
