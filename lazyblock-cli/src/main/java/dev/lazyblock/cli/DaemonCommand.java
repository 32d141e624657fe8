package dev.lazyblock.cli;

import dev.lazyblock.chunker.ChunkerKind;
import dev.lazyblock.daemon.ControlServer;
import dev.lazyblock.daemon.Daemon;
import dev.lazyblock.daemon.DaemonConfig;
import dev.lazyblock.metrics.micrometer.MetricsServer;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** Runs lazyblockd, the host daemon, until SIGINT or SIGTERM. */
@Command(name = "daemon", mixinStandardHelpOptions = true,
        description = {"Runs lazyblockd: one host daemon serving many sandboxes over shared builds.",
                "Each sandbox gets its own copy-on-write overlay and NBD export on a Unix",
                "socket; sandboxes from one template share one cache, so a chunk is fetched",
                "once for all. Driven by HTTP/JSON on a Unix socket (openapi.yaml in",
                "lazyblock-daemon), e.g. with `lazyblock sandbox`. Ctrl-C or SIGTERM stops it;",
                "its sandboxes are kept in STATE-DIR, and the next start on it (after a stop or",
                "a crash) brings them back on the same sockets. Only `sandbox delete` removes one."},
        footer = {"", "Examples:",
                "  lazyblock daemon --state-dir /var/lib/lazyblock",
                "  lazyblock sandbox create s3://bucket/tpl/<build>.header --id vm1",
                "  curl --unix-socket /var/lib/lazyblock/api.sock http://d/v1/sandboxes"})
final class DaemonCommand implements Callable<Integer> {
    @Option(names = "--state-dir", paramLabel = "DIR",
            description = "Build caches (kept across runs) and sandbox overlays and sockets "
                    + "(default: $LAZYBLOCK_STATE_DIR, else ~/.local/state/lazyblock).")
    Path stateDir;

    @Option(names = "--socket", paramLabel = "PATH",
            description = "The control API's Unix socket, mode 0600 (default: STATE-DIR/api.sock).")
    Path socket;

    @Option(names = "--listen", paramLabel = "HOST:PORT",
            description = "Also serve the control API over TCP (it has no authentication: keep it on loopback).")
    String listen;

    @Option(names = "--metrics", paramLabel = "HOST:PORT",
            description = "Also serve Prometheus metrics at http://HOST:PORT/metrics (they are at GET /metrics "
                    + "on the control socket too).")
    String metricsListen;

    @Option(names = "--max-sandboxes", paramLabel = "N", defaultValue = "1024",
            description = "Sandboxes open at once (default ${DEFAULT-VALUE}).")
    int maxSandboxes;

    @Option(names = "--max-builds", paramLabel = "N", defaultValue = "256",
            description = "Builds open at once; idle ones are closed LRU to make room (default ${DEFAULT-VALUE}).")
    int maxBuilds;

    @Option(names = "--reads-per-sandbox", paramLabel = "N", defaultValue = "64",
            description = "Reads of the shared builds one sandbox may have in flight (default ${DEFAULT-VALUE}).")
    int readsPerSandbox;

    @Option(names = "--fetch-threads", paramLabel = "N", defaultValue = "256",
            description = "Fetches from the stores running at once, over every sandbox (default ${DEFAULT-VALUE}), "
                    + "and a quarter as many more for reads a guest waits on alone; past it, those go ahead of "
                    + "read-ahead.")
    int fetchThreads;

    @Option(names = "--chunker", defaultValue = "request-first",
            description = "How misses are fetched: request-first, streaming or full-fetch (default ${DEFAULT-VALUE}).")
    String chunker;

    @Option(names = "--fetch-timeout", paramLabel = "SECONDS", defaultValue = "60",
            description = "How long a read waits for its bytes from the store (default ${DEFAULT-VALUE}).")
    long fetchTimeoutSeconds;

    @Option(names = "--disk-budget", paramLabel = "SIZE",
            description = "What the build caches and the sandboxes' overlays may occupy in STATE-DIR (e.g. 200G); "
                    + "closed builds' caches are removed least recently used first, never an open one "
                    + "(default: no budget).")
    String diskBudget;

    @Option(names = "--disk-floor", paramLabel = "SIZE",
            description = "With --disk-budget: free space to keep on STATE-DIR's file system (e.g. 10G).")
    String diskFloor;

    @Option(names = "--uffd-holder", paramLabel = "PATH",
            description = "Keep each sandbox's userfaultfd in the `lazyblock uffd-holder` listening on PATH, so a "
                    + "restarted daemon serves a running VM's memory faults on (without it, a restart leaves them "
                    + "waiting).")
    Path uffdHolder;

    @Option(names = "--tenant-secrets", paramLabel = "FILE",
            description = "Serve tenants' encrypted images (export --encrypt): FILE holds one '<tenant> <secret>' per "
                    + "line, readable by its owner alone; a create request names its tenant. Secrets stay in memory, "
                    + "never in STATE-DIR or the API, so give the same FILE at every start.")
    Path tenantSecrets;

    /** Counted down once the API answers (for tests). */
    final CountDownLatch started = new CountDownLatch(1);
    private final CountDownLatch stop = new CountDownLatch(1);
    private final CountDownLatch done = new CountDownLatch(1);
    /** The running API (for tests). */
    volatile ControlServer api;

    /** Stops a running daemon as SIGTERM would. */
    void stop() {
        stop.countDown();
    }

    static Path defaultStateDir(Map<String, String> env) {
        String s = env.get("LAZYBLOCK_STATE_DIR");
        return s != null && !s.isBlank() ? Path.of(s)
                : Path.of(System.getProperty("user.home"), ".local", "state", "lazyblock");
    }

    /** Where `lazyblock sandbox` looks for the daemon when not told: $LAZYBLOCK_SOCKET, else the default state dir's. */
    static Path defaultSocket(Map<String, String> env) {
        String s = env.get("LAZYBLOCK_SOCKET");
        return s != null && !s.isBlank() ? Path.of(s) : defaultStateDir(env).resolve("api.sock");
    }

    private static long size(String option, String value) {
        try {
            return dev.lazyblock.upstream.ConfigValues.size(value);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(option + ": " + e.getMessage(), e);
        }
    }

    @Override
    public Integer call() throws Exception {
        PrintStream out = System.out;
        Path dir = stateDir != null ? stateDir : defaultStateDir(System.getenv());
        Path sock = socket != null ? socket : dir.resolve("api.sock");
        DaemonConfig parsed;
        InetSocketAddress tcp;
        InetSocketAddress metricsAt;
        try {
            parsed = DaemonConfig.defaults(dir).withMaxSandboxes(maxSandboxes).withMaxBuilds(maxBuilds)
                    .withReadsPerSandbox(readsPerSandbox).withChunker(ChunkerKind.parse(chunker))
                    .withFetchTimeout(Duration.ofSeconds(fetchTimeoutSeconds)).withUffdHolder(uffdHolder)
                    .withMaxFetchThreads(fetchThreads);
            if (diskBudget != null || diskFloor != null) {
                parsed = parsed.withDiskBudget(
                        diskBudget == null ? Long.MAX_VALUE : size("--disk-budget", diskBudget),
                        diskFloor == null ? 0 : size("--disk-floor", diskFloor));
            }
            if (tenantSecrets != null) {
                parsed = parsed.withTenants(dev.lazyblock.daemon.TenantSecrets.read(tenantSecrets));
            }
            tcp = listen == null ? null : ServeCommand.parseListen(listen);
            metricsAt = metricsListen == null ? null : ServeCommand.parseListen(metricsListen);
        } catch (IllegalArgumentException e) {
            System.err.println("lazyblock daemon: " + e.getMessage());
            return 2;
        } catch (java.io.IOException e) {
            System.err.println("lazyblock daemon: --tenant-secrets: " + e);
            return 2;
        }
        DaemonConfig config = parsed;
        PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
        Thread hook = new Thread(() -> {
            stop.countDown();
            try {
                done.await(config.drainTimeout().toSeconds() + 30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "lazyblockd-shutdown");
        MetricsServer metrics = null;
        try (Daemon daemon = new Daemon(config, registry)) {
            api = ControlServer.start(daemon, registry, sock, tcp);
            if (metricsAt != null) {
                metrics = new MetricsServer(registry, metricsAt);
            }
            Runtime.getRuntime().addShutdownHook(hook);
            out.println("lazyblockd: state in " + dir.toAbsolutePath() + ", API on unix:" + api.socket()
                    + (api.tcpUri() == null ? "" : " and " + api.tcpUri()));
            if (tcp != null && !tcp.getAddress().isLoopbackAddress()) {
                out.println("warning: the control API listens on " + tcp + ", beyond this machine, with no authentication");
            }
            if (metrics != null) {
                out.println("metrics at http://" + metrics.address().getHostString() + ":" + metrics.address().getPort()
                        + "/metrics");
            }
            out.println("  lazyblock sandbox --socket " + api.socket() + " create IMAGE");
            out.println("  curl --unix-socket " + api.socket() + " http://lazyblockd/v1/sandboxes");
            int back = daemon.list().size();
            if (back > 0) {
                out.println("brought back " + back + " sandboxes kept in " + dir.resolve("sandboxes"));
            }
            out.println("Ctrl-C or SIGTERM stops the daemon; its sandboxes are kept for the next start "
                    + "(`lazyblock sandbox delete ID` removes one).");
            out.flush();
            started.countDown();
            stop.await();
            out.println("lazyblockd: stopping; keeping " + daemon.list().size() + " sandboxes in " + dir.resolve("sandboxes"));
            api.close();
            return 0;
        } finally {
            if (api != null) {
                api.close();
            }
            if (metrics != null) {
                metrics.close();
            }
            started.countDown();
            done.countDown();
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException | IllegalArgumentException ignored) {
                // shutting down, or never added
            }
        }
    }
}
