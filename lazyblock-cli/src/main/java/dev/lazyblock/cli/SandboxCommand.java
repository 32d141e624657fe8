package dev.lazyblock.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lazyblock.daemon.DaemonClient;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;

/** The control API's client: each subcommand is one call, its JSON reply printed as it came. */
@Command(name = "sandbox", mixinStandardHelpOptions = true,
        description = {"Drives a running `lazyblock daemon` over its control socket.",
                "Prints the daemon's JSON reply; exits 1 with the daemon's error on failure."},
        subcommands = {SandboxCommand.Create.class, SandboxCommand.ListCmd.class, SandboxCommand.Get.class,
                SandboxCommand.Pause.class, SandboxCommand.Resume.class, SandboxCommand.Export.class,
                SandboxCommand.Delete.class, SandboxCommand.Host.class, SandboxCommand.Builds.class},
        footer = {"", "Examples:",
                "  lazyblock sandbox create /srv/layers/tpl/<build>.header --id vm1",
                "  nbdinfo \"$(lazyblock sandbox get vm1 --field nbdUri)\"",
                "  lazyblock sandbox export vm1",
                "  lazyblock sandbox delete vm1"})
final class SandboxCommand implements Runnable {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--socket", paramLabel = "PATH", scope = CommandLine.ScopeType.INHERIT,
            description = "The daemon's control socket (default: $LAZYBLOCK_SOCKET, else "
                    + "~/.local/state/lazyblock/api.sock).")
    Path socket;

    @Option(names = "--timeout", paramLabel = "SECONDS", defaultValue = "300", scope = CommandLine.ScopeType.INHERIT,
            description = "How long to wait for the daemon's answer (default ${DEFAULT-VALUE}; an export can take a while).")
    long timeoutSeconds;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    DaemonClient client() {
        return new DaemonClient(socket != null ? socket : DaemonCommand.defaultSocket(System.getenv()),
                Duration.ofSeconds(Math.max(1, timeoutSeconds)));
    }

    /** Runs one call; prints the reply (or one field of it) and maps the outcome to an exit code. */
    static int call(SandboxCommand parent, String method, String path, String body, String field) {
        PrintStream out = System.out;
        DaemonClient.Reply r;
        try {
            r = parent.client().call(method, path, body);
        } catch (IOException e) {
            System.err.println("lazyblock sandbox: " + e.getMessage());
            return 1;
        }
        if (!r.ok()) {
            String what = r.body();
            try {
                JsonNode err = JSON.readTree(r.body()).path("error");
                if (!err.isMissingNode()) {
                    what = err.path("code").asText() + ": " + err.path("message").asText();
                }
            } catch (IOException notJson) {
                // print it as it came
            }
            System.err.println("lazyblock sandbox: the daemon answered " + r.status() + ": " + what);
            return 1;
        }
        if (field != null) {
            try {
                // "disk.image" reaches into an object, as a JSON pointer would.
                JsonNode v = JSON.readTree(r.body()).at("/" + field.replace('.', '/'));
                if (v.isMissingNode()) {
                    System.err.println("lazyblock sandbox: the reply has no field '" + field + "'");
                    return 1;
                }
                out.println(v.isValueNode() ? v.asText() : v.toString());
            } catch (IOException e) {
                System.err.println("lazyblock sandbox: the reply is not JSON: " + e.getMessage());
                return 1;
            }
        } else if (!r.body().isEmpty()) {
            out.println(r.body());
        }
        out.flush();
        return 0;
    }

    static String id(String id) {
        if (!ID.matcher(id).matches()) {
            throw new CommandLine.ParameterException(new CommandLine(new SandboxCommand()),
                    "a sandbox id is 1 to 64 of [A-Za-z0-9._-], starting with a letter or digit; got '" + id + "'");
        }
        return id;
    }

    @Command(name = "create", mixinStandardHelpOptions = true,
            footer = {"", "Examples:", "  lazyblock sandbox create /srv/layers/tpl/<build>.header --id vm1", "  lazyblock sandbox create s3://bucket/tpl/<build>.header --memory s3://bucket/tpl/<mem>.header --field nbdUri"},
            description = "Creates a sandbox from IMAGE (a path or URL of a raw image or a layer header) and "
                    + "prints it, with its nbdUri.")
    static final class Create implements Callable<Integer> {
        @ParentCommand
        SandboxCommand parent;

        @Parameters(index = "0", paramLabel = "IMAGE")
        String image;

        @Option(names = "--id", paramLabel = "ID", description = "The sandbox's id (default: one is made up).")
        String id;

        @Option(names = "--export", paramLabel = "NAME", description = "The NBD export name (default: the id).")
        String export;

        @Option(names = "--read-only", description = "No overlay: the sandbox's disk refuses writes.")
        boolean readOnly;

        @Option(names = "--layered", description = "IMAGE is a layer header, whatever its name.")
        boolean layered;

        @Option(names = "--memory", paramLabel = "IMAGE",
                description = "Also serve this guest-memory image to a Firecracker VMM through a page-fault "
                        + "handler on the sandbox's uffd.sock (memory.socket in the reply).")
        String memory;

        @Option(names = "--track-memory-writes",
                description = "With a layered --memory image: the VMM registers write-protect mode too, and export "
                        + "writes the pages the guest wrote as the memory's next layer.")
        boolean trackMemoryWrites;

        @Option(names = "--tenant", paramLabel = "NAME",
                description = "The images' encrypted builds are this tenant's: the daemon opens them with its secret "
                        + "(lazyblock daemon --tenant-secrets).")
        String tenant;

        @Option(names = "--field", paramLabel = "NAME",
                description = "Print only this field of the reply (a.b for a field of an object).")
        String field;

        @Override
        public Integer call() throws Exception {
            Map<String, Object> req = new LinkedHashMap<>();
            if (id != null) {
                req.put("id", id(id));
            }
            req.put("image", image);
            if (layered) {
                req.put("layered", true);
            }
            if (readOnly) {
                req.put("writable", false);
            }
            if (export != null) {
                req.put("export", export);
            }
            if (memory != null) {
                req.put("memory", memory);
            }
            if (trackMemoryWrites) {
                req.put("trackMemoryWrites", true);
            }
            if (tenant != null) {
                req.put("tenant", tenant);
            }
            return SandboxCommand.call(parent, "POST", "/v1/sandboxes", JSON.writeValueAsString(req), field);
        }
    }

    @Command(name = "list", mixinStandardHelpOptions = true,
            footer = {"", "Examples:", "  lazyblock sandbox list", "  lazyblock sandbox --socket /var/lib/lazyblock/api.sock list"}, description = "Lists the sandboxes.")
    static final class ListCmd implements Callable<Integer> {
        @ParentCommand
        SandboxCommand parent;

        @Override
        public Integer call() {
            return SandboxCommand.call(parent, "GET", "/v1/sandboxes", null, null);
        }
    }

    /** The calls on one sandbox. */
    abstract static class OnOne implements Callable<Integer> {
        @ParentCommand
        SandboxCommand parent;

        @Parameters(index = "0", paramLabel = "ID")
        String id;

        @Option(names = "--field", paramLabel = "NAME",
                description = "Print only this field of the reply (a.b for a field of an object).")
        String field;
    }

    @Command(name = "get", mixinStandardHelpOptions = true,
            footer = {"", "Examples:", "  lazyblock sandbox get vm1", "  lazyblock sandbox get vm1 --field nbdUri"},
            description = "Shows a sandbox: state, nbdUri, reads, hits and misses, layers.")
    static final class Get extends OnOne {
        @Override
        public Integer call() {
            return SandboxCommand.call(parent, "GET", "/v1/sandboxes/" + id(id), null, field);
        }
    }

    @Command(name = "pause", mixinStandardHelpOptions = true,
            footer = {"", "Examples:", "  lazyblock sandbox pause vm1"},
            description = "Stops a sandbox's export (in-flight requests finish); its writes are kept.")
    static final class Pause extends OnOne {
        @Override
        public Integer call() {
            return SandboxCommand.call(parent, "POST", "/v1/sandboxes/" + id(id) + "/pause", null, field);
        }
    }

    @Command(name = "resume", mixinStandardHelpOptions = true,
            footer = {"", "Examples:", "  lazyblock sandbox resume vm1 --field nbdUri"}, description = "Serves a paused sandbox again.")
    static final class Resume extends OnOne {
        @Override
        public Integer call() {
            return SandboxCommand.call(parent, "POST", "/v1/sandboxes/" + id(id) + "/resume", null, field);
        }
    }

    @Command(name = "export", mixinStandardHelpOptions = true,
            footer = {"", "Examples:", "  lazyblock sandbox export vm1 --field disk.image"},
            description = "Pauses a sandbox and uploads its disk writes (and, when tracked, its guest's memory "
                    + "writes) as new layers beside their images' headers; prints them (disk.image opens the disk's).")
    static final class Export extends OnOne {
        @Override
        public Integer call() {
            return SandboxCommand.call(parent, "POST", "/v1/sandboxes/" + id(id) + "/export", null, field);
        }
    }

    @Command(name = "delete", mixinStandardHelpOptions = true,
            footer = {"", "Examples:", "  lazyblock sandbox delete vm1"},
            description = "Closes a sandbox's export, drops its overlay and releases its builds.")
    static final class Delete extends OnOne {
        @Override
        public Integer call() {
            return SandboxCommand.call(parent, "DELETE", "/v1/sandboxes/" + id(id), null, field);
        }
    }

    @Command(name = "host", mixinStandardHelpOptions = true,
            footer = {"", "Examples:", "  lazyblock sandbox host"}, description = "Shows the daemon's host-wide figures.")
    static final class Host implements Callable<Integer> {
        @ParentCommand
        SandboxCommand parent;

        @Override
        public Integer call() {
            return SandboxCommand.call(parent, "GET", "/v1/host", null, null);
        }
    }

    @Command(name = "builds", mixinStandardHelpOptions = true,
            footer = {"", "Examples:", "  lazyblock sandbox builds"},
            description = "Lists the open builds: references, bytes cached.")
    static final class Builds implements Callable<Integer> {
        @ParentCommand
        SandboxCommand parent;

        @Override
        public Integer call() {
            return SandboxCommand.call(parent, "GET", "/v1/builds", null, null);
        }
    }
}
