package dev.lazyblock.daemon;

/**
 * A request the daemon refused or could not carry out: an HTTP status, a stable machine-readable
 * code for orchestrators to branch on, and a message saying what was expected and what was found.
 */
public final class DaemonException extends RuntimeException {
    private final int status;
    private final String code;

    public DaemonException(int status, String code, String message) {
        this(status, code, message, null);
    }

    public DaemonException(int status, String code, String message, Throwable cause) {
        super(message, cause);
        this.status = status;
        this.code = code;
    }

    public int status() {
        return status;
    }

    public String code() {
        return code;
    }

    static DaemonException badRequest(String message) {
        return new DaemonException(400, "bad_request", message);
    }

    static DaemonException notFound(String message) {
        return new DaemonException(404, "not_found", message);
    }

    static DaemonException conflict(String code, String message) {
        return new DaemonException(409, code, message);
    }

    static DaemonException limit(String message) {
        return new DaemonException(429, "limit_reached", message);
    }
}
