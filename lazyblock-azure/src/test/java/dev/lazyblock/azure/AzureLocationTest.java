package dev.lazyblock.azure;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class AzureLocationTest {
    @Test
    void bothUrlFormsParse() {
        AzureLocation a = AzureLocation.parse("az://images/prod/rootfs.ext4");
        assertNull(a.account());
        assertEquals("images", a.container());
        assertEquals("prod/rootfs.ext4", a.blob());
        assertEquals("az://images/prod/rootfs.ext4", a.url());

        AzureLocation h = AzureLocation.parse("https://myaccount.blob.core.windows.net/images/prod/rootfs.ext4");
        assertEquals("myaccount", h.account());
        assertEquals("images", h.container());
        assertEquals("prod/rootfs.ext4", h.blob());
        assertEquals("https://myaccount.blob.core.windows.net/images/prod/rootfs.ext4", h.url());
        assertTrue(AzureLocation.isAzureUrl("HTTPS://myaccount.BLOB.core.windows.net/c/b"));
        assertFalse(AzureLocation.isAzureUrl("https://example.com/images/a.img"));
    }

    @Test
    void badUrlsSayWhatIsWrongAndNeverRepeatASasToken() {
        String sas = "sv=2024-01-01&sig=c2VjcmV0c2lnbmF0dXJl";
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> AzureLocation.parse("https://acct1.blob.core.windows.net/images/a.img?" + sas));
        assertTrue(e.getMessage().contains("query string"), e.getMessage());
        assertFalse(e.getMessage().contains("c2VjcmV0"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> AzureLocation.parse("az://images"));
        assertTrue(e.getMessage().contains("no blob name: expected az://images/blob"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> AzureLocation.parse("az://ab/x"));
        assertTrue(e.getMessage().contains("container name 'ab' is not valid"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> AzureLocation.parse("az://a--b/x"));
        assertTrue(e.getMessage().contains("container name 'a--b'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> AzureLocation.parse("az://user:pw@images/x"));
        assertTrue(e.getMessage().contains("user info") && !e.getMessage().contains("pw"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> AzureLocation.parse("az://images:10000/x"));
        assertTrue(e.getMessage().contains("port"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> AzureLocation.parse("az://images/a//b"));
        assertTrue(e.getMessage().contains("empty segment"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> AzureLocation.parse("s3://images/a"));
        assertTrue(e.getMessage().contains("scheme 's3'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> AzureLocation.parse("https://Not_An_Account.blob.core.windows.net/images/a"));
        assertTrue(e.getMessage().contains("storage account name"), e.getMessage());
    }
}
