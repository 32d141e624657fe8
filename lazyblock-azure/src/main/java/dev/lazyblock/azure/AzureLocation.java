package dev.lazyblock.azure;

import dev.lazyblock.upstream.ObjectKeys;
import java.util.Locale;
import java.util.regex.Pattern;

/**
 * A blob: an optional storage account, a container and a blob name, from
 * {@code az://container/blob} (the account comes from the configuration) or
 * {@code https://ACCOUNT.blob.core.windows.net/container/blob}. Validated when made, so a bad one
 * never reaches a request.
 *
 * <p>The blob name is taken literally (no percent-decoding) and checked with core's
 * {@link ObjectKeys#validate}. A URL with a query string or fragment (a SAS token), user info or
 * a port is refused, and the message never repeats what follows the {@code ?}, {@code #} or
 * {@code @}.
 */
public record AzureLocation(String account, String container, String blob) {
    public static final String SCHEME = "az://";
    /** The public cloud's blob endpoints: {@code ACCOUNT.blob.core.windows.net}. */
    public static final String BLOB_HOST_SUFFIX = ".blob.core.windows.net";
    private static final Pattern CONTAINER = Pattern.compile("[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}");
    private static final Pattern ACCOUNT = Pattern.compile("[a-z0-9]{3,24}");

    /** @throws IllegalArgumentException if the account, container or blob name is not valid */
    public AzureLocation {
        if (account != null && !ACCOUNT.matcher(account).matches()) {
            throw new IllegalArgumentException("storage account name '" + account
                    + "' is not valid: 3-24 lower-case letters and digits");
        }
        validateContainer(container);
        try {
            ObjectKeys.validate(blob);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("blob name in container '" + container + "': " + e.getMessage(), e);
        }
    }

    /** A blob in the configured account. */
    public AzureLocation(String container, String blob) {
        this(null, container, blob);
    }

    /** Azure's rules: 3-63 of {@code a-z0-9-}, starting and ending with a letter or digit, no {@code --}. */
    static void validateContainer(String container) {
        if (container == null || !CONTAINER.matcher(container).matches()) {
            throw new IllegalArgumentException("container name '" + container + "' is not valid: 3-63 lower-case"
                    + " letters, digits and single hyphens, starting and ending with a letter or digit");
        }
    }

    /** Whether {@code url} is one of the forms {@link #parse} reads. */
    public static boolean isAzureUrl(String url) {
        if (url == null) {
            return false;
        }
        if (url.regionMatches(true, 0, SCHEME, 0, SCHEME.length())) {
            return true;
        }
        if (!url.regionMatches(true, 0, "https://", 0, 8)) {
            return false;
        }
        String rest = url.substring(8);
        int end = rest.length();
        for (char c : new char[] {'/', '?', '#'}) {
            int i = rest.indexOf(c);
            if (i >= 0 && i < end) {
                end = i;
            }
        }
        return rest.substring(0, end).toLowerCase(Locale.ROOT).endsWith(BLOB_HOST_SUFFIX);
    }

    /**
     * Parses {@code az://container/blob} or {@code https://ACCOUNT.blob.core.windows.net/container/blob}.
     *
     * @throws IllegalArgumentException saying which part is wrong
     */
    public static AzureLocation parse(String url) {
        if (url == null || !isAzureUrl(url)) {
            int colon = url == null ? -1 : url.indexOf(':');
            String scheme = colon > 0 && colon < 16 ? url.substring(0, colon) : "(none)";
            throw new IllegalArgumentException("not an Azure blob URL (az://container/blob or https://ACCOUNT"
                    + BLOB_HOST_SUFFIX + "/container/blob): scheme '" + scheme + "'"
                    + (scheme.equalsIgnoreCase("https") ? " but another host" : ""));
        }
        boolean az = url.regionMatches(true, 0, SCHEME, 0, SCHEME.length());
        String form = az ? "az" : "https";
        String rest = url.substring(az ? SCHEME.length() : 8);
        if (rest.indexOf('?') >= 0 || rest.indexOf('#') >= 0) {
            // Nothing after the '?' goes into the message: it is most likely a SAS token.
            throw new IllegalArgumentException(form + " blob URL must not have a query string or fragment ('?' or"
                    + " '#'): give a SAS token in LAZYBLOCK_AZURE_SAS_TOKEN or AZURE_STORAGE_SAS_TOKEN instead");
        }
        int slash = rest.indexOf('/');
        String authority = slash < 0 ? rest : rest.substring(0, slash);
        if (authority.indexOf('@') >= 0) {
            throw new IllegalArgumentException(form + " blob URL must not carry user info ('user@'):"
                    + " credentials come from the environment, never from the URL");
        }
        if (authority.indexOf(':') >= 0) {
            throw new IllegalArgumentException(form + " blob URL must not have a port; set the endpoint in the"
                    + " configuration (LAZYBLOCK_AZURE_ENDPOINT)");
        }
        String account = null;
        String path;
        if (az) {
            path = rest;
        } else {
            account = authority.substring(0, authority.length() - BLOB_HOST_SUFFIX.length());
            path = slash < 0 ? "" : rest.substring(slash + 1);
        }
        int s = path.indexOf('/');
        if (path.isEmpty() || s == 0) {
            throw new IllegalArgumentException(form + " blob URL has no container: expected "
                    + (az ? "az://container/blob" : "https://ACCOUNT" + BLOB_HOST_SUFFIX + "/container/blob"));
        }
        String container = s < 0 ? path : path.substring(0, s);
        if (s < 0 || s == path.length() - 1) {
            throw new IllegalArgumentException(form + " blob URL has no blob name: expected "
                    + (az ? "az://" : "https://" + authority + "/") + container + "/blob");
        }
        return new AzureLocation(account, container, path.substring(s + 1));
    }

    /** {@code az://container/blob}, or the https form when the account is known: no endpoint, no credentials. */
    public String url() {
        return account == null ? SCHEME + container + "/" + blob
                : "https://" + account + BLOB_HOST_SUFFIX + "/" + container + "/" + blob;
    }

    @Override
    public String toString() {
        return url();
    }
}
