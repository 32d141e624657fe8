package dev.lazyblock.upstream;

import java.io.IOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Path;

/**
 * A read-only {@link ObjectStore} under an HTTP(S) base URL: a layered image published on a web
 * server, each object a Range-capable URL next to its header. Writing is refused.
 */
public final class HttpStore implements ObjectStore {
    private final URI base;
    private final String name;

    public HttpStore(URI base) {
        this.base = base;
        String n;
        try {
            n = new URI(base.getScheme(), null, base.getHost(), base.getPort(), base.getPath(), null, null).toString();
        } catch (URISyntaxException e) {
            n = base.getScheme() + "://" + base.getHost();
        }
        this.name = n; // no user info, no query: a base URL may be signed
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public Upstream open(String key) {
        return new HttpUpstream(base.resolve(encode(ObjectKeys.validate(key))));
    }

    private static String encode(String key) {
        StringBuilder b = new StringBuilder();
        for (String part : key.split("/", -1)) {
            if (!b.isEmpty()) {
                b.append('/');
            }
            b.append(java.net.URLEncoder.encode(part, java.nio.charset.StandardCharsets.UTF_8).replace("+", "%20"));
        }
        return b.toString();
    }

    @Override
    public void put(String key, Path file) throws IOException {
        throw readOnly(key);
    }

    @Override
    public void put(String key, byte[] bytes) throws IOException {
        throw readOnly(key);
    }

    @Override
    public boolean exists(String key) throws IOException {
        try (Upstream u = open(key)) {
            u.size();
            return true;
        } catch (UpstreamException e) {
            return false;
        }
    }

    @Override
    public void delete(String key) throws IOException {
        throw readOnly(key);
    }

    private IOException readOnly(String key) {
        return new IOException("cannot write '" + key + "' to " + name + ": an HTTP store is read-only");
    }

    @Override
    public void close() {}

    @Override
    public String toString() {
        return "HttpStore[" + name + "]";
    }
}
