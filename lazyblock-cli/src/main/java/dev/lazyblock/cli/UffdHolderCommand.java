package dev.lazyblock.cli;

import dev.lazyblock.uffd.UffdHolder;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

/** Runs the userfaultfd holder, which lets a memory handler restart without hanging its VM. */
@Command(name = "uffd-holder", mixinStandardHelpOptions = true,
        description = {"Keeps each VM's userfaultfd open while its page-fault handler restarts.",
                "A handler that dies leaves its VM's faults waiting forever; one started after",
                "it takes the userfaultfd back from this holder and serves them. Run it as a",
                "process of its own (it reads no image and fetches nothing). Ctrl-C or SIGTERM",
                "stops it, closing what it holds."},
        footer = {"", "Examples:",
                "  lazyblock uffd-holder /run/lazyblock/uffd-holder.sock &",
                "  lazyblock daemon --state-dir /var/lib/lazyblock --uffd-holder /run/lazyblock/uffd-holder.sock"})
final class UffdHolderCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "SOCKET", description = "The Unix socket to listen on.")
    Path socket;

    @Override
    public Integer call() throws Exception {
        UffdHolder holder = new UffdHolder(socket);
        Thread main = Thread.currentThread();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            holder.close();
            try {
                main.join(2_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }));
        System.out.println("holding userfaultfds on " + socket + " (Ctrl-C stops)");
        holder.serve();
        return 0;
    }
}
