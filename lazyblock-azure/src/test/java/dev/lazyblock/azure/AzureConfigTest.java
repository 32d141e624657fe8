package dev.lazyblock.azure;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Map;
import java.util.Properties;
import org.junit.jupiter.api.Test;

class AzureConfigTest {
    private static final String KEY = "c2VjcmV0LWtleS1mb3ItYS10ZXN0LW9ubHk=";

    @Test
    void settingsComeFromPropertiesThenLazyblockVariablesThenAzureVariables() {
        Properties p = new Properties();
        p.setProperty("lazyblock.azure.callTimeout", "90s");
        AzureConfig c = AzureConfig.fromEnvironment(Map.of(
                "AZURE_STORAGE_ACCOUNT", "fromazure",
                "LAZYBLOCK_AZURE_ACCOUNT", "fromlazyblock",
                "AZURE_STORAGE_KEY", KEY,
                "LAZYBLOCK_AZURE_CALL_TIMEOUT", "10s",
                "LAZYBLOCK_AZURE_MAX_ATTEMPTS", "6",
                "LAZYBLOCK_AZURE_BLOCK_SIZE", "8MiB"), p);
        assertEquals("fromlazyblock", c.account());
        assertEquals(Duration.ofSeconds(90), c.callTimeout());
        assertEquals(6, c.maxAttempts());
        assertEquals(8L << 20, c.blockSize());
        assertEquals("shared key", c.credentialsKind());
        assertFalse(c.toString().contains(KEY), c.toString());
    }

    @Test
    void badValuesNameTheirSource() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> AzureConfig.fromEnvironment(Map.of("LAZYBLOCK_AZURE_READ_TIMEOUT", "soon"), new Properties()));
        assertTrue(e.getMessage().startsWith("environment variable LAZYBLOCK_AZURE_READ_TIMEOUT: 'soon' is not a"
                + " duration"), e.getMessage());
        // A key without an account: fine for https://ACCOUNT.blob.core.windows.net URLs, refused for az://.
        AzureConfig keyOnly = AzureConfig.fromEnvironment(Map.of("AZURE_STORAGE_KEY", KEY), new Properties());
        e = assertThrows(IllegalArgumentException.class, () -> keyOnly.clients(AzureLocation.parse("az://box/b")));
        assertTrue(e.getMessage().contains("no storage account for az://box/...") || e.getMessage().contains(
                "an account key is set but no account name"), e.getMessage());
        assertFalse(e.getMessage().contains(KEY));
        AzureConfig keyAndEndpoint = AzureConfig.fromEnvironment(Map.of("AZURE_STORAGE_KEY", KEY,
                "LAZYBLOCK_AZURE_ENDPOINT", "http://127.0.0.1:10000/acct"), new Properties());
        e = assertThrows(IllegalArgumentException.class, () -> keyAndEndpoint.clients(AzureLocation.parse("az://box/b")));
        assertTrue(e.getMessage().contains("an account key is set but no account name"), e.getMessage());
        AzureConfig keyForAcct1 = AzureConfig.fromEnvironment(Map.of("AZURE_STORAGE_KEY", KEY, "AZURE_STORAGE_ACCOUNT",
                "acct1"), new Properties());
        e = assertThrows(IllegalArgumentException.class, () -> keyForAcct1.clients(
                AzureLocation.parse("https://acct2.blob.core.windows.net/box/b")));
        assertEquals("the account key is for account 'acct1' (the configured account), but the URL names account"
                + " 'acct2'", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> AzureConfig.fromEnvironment(
                Map.of("AZURE_STORAGE_CONNECTION_STRING", "AccountName=acct1;notapair"), new Properties()));
        assertTrue(e.getMessage().contains("part without 'name=value'"), e.getMessage());
        assertFalse(e.getMessage().contains(KEY));
    }

    @Test
    void connectionStringsAndAzUrlsWithoutAnAccount() {
        AzureConfig dev = AzureConfig.fromEnvironment(Map.of("AZURE_STORAGE_CONNECTION_STRING",
                "UseDevelopmentStorage=true"), new Properties());
        assertEquals("devstoreaccount1", dev.account());
        assertEquals("http://127.0.0.1:10000/devstoreaccount1", dev.endpoint().toString());
        AzureConfig cs = AzureConfig.fromEnvironment(Map.of("AZURE_STORAGE_CONNECTION_STRING",
                "DefaultEndpointsProtocol=https;AccountName=acct1;AccountKey=" + KEY + ";EndpointSuffix=core.windows.net"),
                new Properties());
        assertEquals("acct1", cs.account());
        assertEquals("https://acct1.blob.core.windows.net", cs.clients(null, "images").endpointForLogs());

        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> AzureConfig.defaults().clients(new AzureLocation("images", "a.img")));
        assertTrue(e.getMessage().contains("no storage account for az://images/...: set LAZYBLOCK_AZURE_ACCOUNT"),
                e.getMessage());
        assertEquals("https://other1.blob.core.windows.net", AzureConfig.defaults()
                .clients(AzureLocation.parse("https://other1.blob.core.windows.net/images/a.img")).endpointForLogs());
    }
}
