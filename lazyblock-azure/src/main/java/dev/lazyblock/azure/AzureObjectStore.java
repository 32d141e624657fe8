package dev.lazyblock.azure;

import com.azure.core.util.BinaryData;
import com.azure.core.util.Context;
import com.azure.storage.blob.models.ParallelTransferOptions;
import com.azure.storage.blob.options.BlobParallelUploadOptions;
import com.azure.storage.blob.options.BlobUploadFromFileOptions;
import dev.lazyblock.upstream.ObjectKeys;
import dev.lazyblock.upstream.ObjectStore;
import dev.lazyblock.upstream.Upstream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An {@link ObjectStore} over a container, with an optional name prefix: layers are block blobs.
 * A file larger than the single-upload threshold goes up in blocks of {@code blockSize}, several
 * in flight, and becomes visible only when its block list is committed (atomically); blocks of a
 * failed upload stay uncommitted, invisible, and Azure drops them after a week. Keys are
 * validated before any request.
 */
public final class AzureObjectStore implements ObjectStore {
    private static final Logger log = LoggerFactory.getLogger(AzureObjectStore.class);

    private final AzureConfig config;
    private final AzureConfig.Clients clients;
    private final String account;
    private final String container;
    private final String prefix;
    private final AzureErrors errors;

    private AzureObjectStore(AzureConfig config, String account, String container, String prefix) {
        this.config = config;
        this.account = account;
        this.container = container;
        this.prefix = prefix;
        this.clients = config.clients(account, container);
        this.errors = new AzureErrors(config.secrets(), config.maxAttempts());
    }

    /**
     * The store of {@code container} (in {@code account}, or the configured account when null),
     * keys under {@code prefix} ("" for none). No request is made yet.
     */
    public static AzureObjectStore open(AzureConfig config, String account, String container, String prefix) {
        Objects.requireNonNull(config, "config");
        AzureLocation.validateContainer(container);
        String p = prefix == null ? "" : prefix;
        if (!p.isEmpty()) {
            ObjectKeys.validate(p);
        }
        return new AzureObjectStore(config, account, container, p);
    }

    @Override
    public String name() {
        String base = new AzureLocation(account, container, "x").url();
        base = base.substring(0, base.length() - 2);
        return prefix.isEmpty() ? base : base + "/" + prefix;
    }

    private AzureLocation at(String key) {
        ObjectKeys.validate(key);
        return new AzureLocation(account, container, prefix.isEmpty() ? key : prefix + "/" + key);
    }

    @Override
    public Upstream open(String key) {
        return new AzureBlobUpstream(clients, at(key), config, errors);
    }

    @Override
    public void put(String key, Path file) throws IOException {
        AzureLocation at = at(key);
        long size = Files.size(file);
        ParallelTransferOptions transfer = new ParallelTransferOptions()
                .setBlockSizeLong(config.blockSize())
                .setMaxSingleUploadSizeLong(config.singleUploadThreshold())
                .setMaxConcurrency(config.uploadConcurrency());
        try {
            clients.sync().getBlobClient(at.blob()).uploadFromFileWithResponse(
                    new BlobUploadFromFileOptions(file.toString()).setParallelTransferOptions(transfer),
                    config.uploadTimeout(), Context.NONE);
        } catch (RuntimeException e) {
            throw errors.store("uploading " + file + " (" + size + " bytes) to", at.url(), e);
        }
        log.debug("{}: uploaded {} bytes", at.url(), size);
    }

    @Override
    public void put(String key, byte[] bytes) throws IOException {
        AzureLocation at = at(key);
        try {
            clients.sync().getBlobClient(at.blob()).uploadWithResponse(
                    new BlobParallelUploadOptions(BinaryData.fromBytes(bytes)), config.callTimeout(), Context.NONE);
        } catch (RuntimeException e) {
            throw errors.store("uploading " + bytes.length + " bytes to", at.url(), e);
        }
    }

    @Override
    public boolean exists(String key) throws IOException {
        AzureLocation at = at(key);
        try {
            return clients.sync().getBlobClient(at.blob()).existsWithResponse(config.callTimeout(), Context.NONE)
                    .getValue();
        } catch (RuntimeException e) {
            throw errors.store("checking whether a blob exists at", at.url(), e);
        }
    }

    @Override
    public java.util.List<Listed> list(String keyPrefix) throws IOException {
        String full = prefix.isEmpty() ? keyPrefix : prefix + "/" + keyPrefix;
        java.util.List<Listed> out = new java.util.ArrayList<>();
        try {
            for (var item : clients.sync().listBlobs(new com.azure.storage.blob.models.ListBlobsOptions().setPrefix(full),
                    config.callTimeout())) {
                String name = item.getName();
                out.add(new Listed(prefix.isEmpty() ? name : name.substring(prefix.length() + 1),
                        item.getProperties().getContentLength(), item.getProperties().getLastModified().toInstant()));
            }
        } catch (RuntimeException e) {
            throw errors.store("listing", name() + "/" + keyPrefix, e);
        }
        return out;
    }

    @Override
    public void delete(String key) throws IOException {
        AzureLocation at = at(key);
        try {
            clients.sync().getBlobClient(at.blob()).deleteIfExistsWithResponse(null, null, config.callTimeout(),
                    Context.NONE);
        } catch (RuntimeException e) {
            throw errors.store("deleting", at.url(), e);
        }
    }

    @Override
    public void close() {}

    @Override
    public String toString() {
        return "AzureObjectStore[" + name() + "]";
    }
}
