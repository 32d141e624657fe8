package dev.lazyblock.upstream;

import java.io.IOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.ServiceLoader;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Opens the upstream an image URL names. */
public final class Upstreams {
    private static final Pattern SCHEME = Pattern.compile("^([A-Za-z][A-Za-z0-9+.-]*)://");

    private Upstreams() {}

    /**
     * A plain path or {@code file://} URL opens a {@link FileUpstream}; {@code http://} or
     * {@code https://} an {@link HttpUpstream} with the default timeouts.
     *
     * @throws IllegalArgumentException for any other scheme
     * @throws IOException              if a file cannot be opened
     */
    public static Upstream open(String url) throws IOException {
        Matcher m = SCHEME.matcher(url);
        String scheme = m.find() ? m.group(1).toLowerCase(Locale.ROOT)
                : url.regionMatches(true, 0, "file:", 0, 5) ? "file" : null;
        if (scheme == null) {
            return new FileUpstream(Path.of(url));
        }
        return switch (scheme) {
            case "file" -> new FileUpstream(Path.of(parse(url, scheme)));
            case "http", "https" -> {
                URI uri = parse(url, scheme);
                UpstreamProvider p = claimant(uri);
                yield p != null ? p.open(url) : new HttpUpstream(uri);
            }
            default -> provider(scheme).open(url);
        };
    }

    /**
     * The object store an image URL lives in and its key there: a path's directory as a
     * {@link DirectoryStore}, an http(s) URL's directory as an {@link HttpStore} (unless a
     * provider claims it), and the provider's store for any other scheme. A layered image's
     * header is named this way: its builds are found next to it.
     *
     * @throws IllegalArgumentException for a scheme no module on the class path opens
     */
    public static UpstreamProvider.StoreAndKey store(String url) throws IOException {
        Matcher m = SCHEME.matcher(url);
        String scheme = m.find() ? m.group(1).toLowerCase(Locale.ROOT) : "file";
        switch (scheme) {
            case "file" -> {
                Path p = url.regionMatches(true, 0, "file:", 0, 5) ? Path.of(parse(url, scheme)) : Path.of(url);
                p = p.toAbsolutePath().normalize();
                if (p.getParent() == null) {
                    throw new IllegalArgumentException("an image path names a file, not the root directory");
                }
                return new UpstreamProvider.StoreAndKey(new DirectoryStore(p.getParent()), p.getFileName().toString());
            }
            case "http", "https" -> {
                URI uri = parse(url, scheme);
                UpstreamProvider claimant = claimant(uri);
                if (claimant != null) {
                    return claimant.store(url);
                }
                String path = uri.getRawPath() == null || uri.getRawPath().isEmpty() ? "/" : uri.getRawPath();
                int slash = path.lastIndexOf('/');
                URI base = uri.resolve(path.substring(0, slash + 1));
                return new UpstreamProvider.StoreAndKey(new HttpStore(base), path.substring(slash + 1));
            }
            default -> {
                return provider(scheme).store(url);
            }
        }
    }

    /** The provider that {@linkplain UpstreamProvider#claims claims} an http(s) URL, or null. */
    public static UpstreamProvider claimant(URI url) {
        for (UpstreamProvider p : ServiceLoader.load(UpstreamProvider.class)) {
            if (p.claims(url)) {
                return p;
            }
        }
        return null;
    }

    /** The provider module that opens {@code scheme}, found on the class path. */
    static UpstreamProvider provider(String scheme) {
        for (UpstreamProvider p : ServiceLoader.load(UpstreamProvider.class)) {
            if (p.schemes().contains(scheme)) {
                return p;
            }
        }
        java.util.TreeSet<String> known = new java.util.TreeSet<>(java.util.List.of("file", "http", "https"));
        for (UpstreamProvider p : ServiceLoader.load(UpstreamProvider.class)) {
            known.addAll(p.schemes());
        }
        // Only the scheme goes into the message: the rest may be a signed URL.
        throw new IllegalArgumentException("unsupported URL scheme '" + scheme + "': supported are a plain path and "
                + String.join("://, ", known) + "://"
                + (scheme.equals("s3") ? " (the lazyblock-s3 module carries s3://)"
                : scheme.equals("az") ? " (the lazyblock-azure module carries az://)"
                : scheme.equals("gs") ? " (the lazyblock-gcs module carries gs://)" : ""));
    }

    /** Like URI.create, but the error leaves the URL out: it may be a signed one. */
    private static URI parse(String url, String scheme) {
        try {
            return new URI(url);
        } catch (URISyntaxException e) {
            throw new IllegalArgumentException("malformed " + scheme + " URL: " + e.getReason()
                    + " at index " + e.getIndex());
        }
    }
}
