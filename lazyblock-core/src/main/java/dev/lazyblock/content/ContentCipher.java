package dev.lazyblock.content;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.util.Arrays;
import javax.crypto.Cipher;
import javax.crypto.Mac;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;

/**
 * Convergent encryption of content-addressed chunks, per tenant: a chunk's key is derived from
 * its own bytes and the tenant's secret, so the same chunk encrypts to the same object within a
 * tenant (and dedups), while another tenant's secret gives another object (tenants stay apart,
 * and the bucket cannot confirm a guessed chunk without the secret).
 *
 * <ul>
 *   <li>chunk key = HMAC-SHA256(K1, SHA-256(plain)), K1 = HMAC-SHA256(secret, "lazyblock chunk keys v1");
 *   <li>stored bytes = AES-256-GCM(chunk key, nonce 0, plain): a key encrypts one plaintext only
 *       (it is derived from it), so the fixed nonce is never reused for different bytes, and the
 *       tag authenticates the chunk a second time after its name;
 *   <li>the header holds each chunk key wrapped (AES key wrap, RFC 3394) under
 *       K2 = HMAC-SHA256(secret, "lazyblock key wrap v1"), never in the clear.
 * </ul>
 * The secret itself is never stored or logged; {@link #toString} hides it. Thread-safe: each
 * call makes its own {@link Cipher} and {@link Mac} (a chunk is at least 64 KiB of work).
 */
public final class ContentCipher {
    public static final int TAG_BYTES = 16;
    public static final int WRAPPED_BYTES = 40;
    private static final byte[] NONCE = new byte[12];

    private final byte[] chunkKeys;
    private final SecretKeySpec wrapKey;

    private ContentCipher(byte[] chunkKeys, byte[] wrapKey) {
        this.chunkKeys = chunkKeys;
        this.wrapKey = new SecretKeySpec(wrapKey, "AES");
    }

    /** @param secret the tenant's secret: at least 16 bytes */
    public static ContentCipher fromSecret(byte[] secret) {
        if (secret == null || secret.length < 16) {
            throw new IllegalArgumentException("a tenant secret must be at least 16 bytes, got "
                    + (secret == null ? "none" : secret.length));
        }
        return new ContentCipher(hmac(secret, "lazyblock chunk keys v1".getBytes(StandardCharsets.US_ASCII)),
                hmac(secret, "lazyblock key wrap v1".getBytes(StandardCharsets.US_ASCII)));
    }

    private static byte[] hmac(byte[] key, byte[] data) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
            return mac.doFinal(data);
        } catch (GeneralSecurityException e) {
            throw new AssertionError("every JDK has HmacSHA256", e);
        }
    }

    /** The key of the chunk whose plain bytes hash (SHA-256) to {@code plainHash}. */
    public byte[] chunkKey(byte[] plainHash) {
        return hmac(chunkKeys, plainHash);
    }

    /** Encrypts {@code plain} into {@code out} (at least {@code plain.remaining() + TAG_BYTES}); returns the bytes written. */
    public int encrypt(byte[] key, ByteBuffer plain, ByteBuffer out) {
        try {
            Cipher c = Cipher.getInstance("AES/GCM/NoPadding");
            c.init(Cipher.ENCRYPT_MODE, new SecretKeySpec(key, "AES"), new GCMParameterSpec(TAG_BYTES * 8, NONCE));
            return c.doFinal(plain, out);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("AES-GCM encryption failed", e);
        }
    }

    /**
     * Decrypts {@code stored} into {@code out}; returns the bytes written.
     *
     * @throws GeneralSecurityException if the bytes or the key are not this chunk's (the tag fails)
     */
    public int decrypt(byte[] key, ByteBuffer stored, ByteBuffer out) throws GeneralSecurityException {
        Cipher c = Cipher.getInstance("AES/GCM/NoPadding");
        c.init(Cipher.DECRYPT_MODE, new SecretKeySpec(key, "AES"), new GCMParameterSpec(TAG_BYTES * 8, NONCE));
        return c.doFinal(stored, out);
    }

    /** {@code key} wrapped for the header ({@link #WRAPPED_BYTES} bytes). */
    public byte[] wrap(byte[] key) {
        try {
            Cipher c = Cipher.getInstance("AESWrap");
            c.init(Cipher.WRAP_MODE, wrapKey);
            return c.wrap(new SecretKeySpec(key, "AES"));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("AES key wrap failed", e);
        }
    }

    /**
     * The chunk key {@code wrapped} holds.
     *
     * @throws GeneralSecurityException if it was not wrapped with this tenant's secret
     */
    public byte[] unwrap(byte[] wrapped) throws GeneralSecurityException {
        Cipher c = Cipher.getInstance("AESWrap");
        c.init(Cipher.UNWRAP_MODE, wrapKey);
        return c.unwrap(wrapped, "AES", Cipher.SECRET_KEY).getEncoded();
    }

    @Override
    public String toString() {
        return "ContentCipher[secret hidden]";
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ContentCipher c && Arrays.equals(chunkKeys, c.chunkKeys);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(chunkKeys);
    }
}
