package dev.lazyblock.vmboot;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** The peer: {@code nbdkit curl} over the store's HTTP door, with the filters a user would add. */
final class Nbdkit implements AutoCloseable {
    private final Process process;
    private final int port;

    private Nbdkit(Process process, int port) {
        this.process = process;
        this.port = port;
    }

    /** Starts {@code nbdkit [--filter=F]... curl url=URL} in the foreground on a free loopback port. */
    static Nbdkit start(URI url, List<String> filters, Path log) throws IOException, InterruptedException {
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = s.getLocalPort();
        }
        List<String> cmd = new ArrayList<>(List.of("nbdkit", "--foreground", "--exit-with-parent", "--readonly",
                "-i", "127.0.0.1", "-p", Integer.toString(port)));
        for (String f : filters) {
            cmd.add("--filter=" + f);
        }
        cmd.addAll(List.of("curl", "url=" + url));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile())).start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (true) {
            try (Socket probe = new Socket(InetAddress.getLoopbackAddress(), port)) {
                return new Nbdkit(p, port);
            } catch (IOException notYet) {
                if (!p.isAlive() || System.nanoTime() > deadline) {
                    p.destroyForcibly();
                    throw new IOException("nbdkit " + String.join(" ", cmd) + " did not listen in 30 s (log " + log + ")");
                }
                Thread.sleep(20);
            }
        }
    }

    URI uri() {
        return URI.create("nbd://127.0.0.1:" + port);
    }

    @Override
    public void close() throws InterruptedException {
        process.destroy();
        if (!process.waitFor(30, TimeUnit.SECONDS)) {
            process.destroyForcibly();
        }
    }
}
