package dev.lazyblock.daemon;

import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.nio.file.Path;

/**
 * A daemon in a JVM of its own, so a test can {@code kill -9} it:
 * {@code DaemonProcess STATE-DIR}. Prints {@code ready} once its API answers on
 * STATE-DIR/api.sock; stops cleanly when its standard input closes.
 */
final class DaemonProcess {
    public static void main(String[] args) throws Exception {
        Path state = Path.of(args[0]);
        PrometheusMeterRegistry prometheus = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
        try (Daemon daemon = new Daemon(DaemonConfig.defaults(state), prometheus);
             ControlServer api = ControlServer.start(daemon, prometheus, state.resolve("api.sock"), null)) {
            System.out.println("ready " + daemon.list().size() + " sandboxes");
            System.out.flush();
            while (System.in.read() >= 0) {
                // until the test closes our standard input
            }
        }
    }
}
