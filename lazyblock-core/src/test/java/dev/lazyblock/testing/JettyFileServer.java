package dev.lazyblock.testing;

import java.net.URI;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;
import org.eclipse.jetty.http.content.HttpContent;
import org.eclipse.jetty.http.content.ResourceHttpContentFactory;
import org.eclipse.jetty.io.ByteBufferPool;
import org.eclipse.jetty.io.ConnectionStatistics;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.server.handler.ResourceHandler;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.resource.ResourceFactory;

/**
 * A real HTTP server on loopback serving a directory with Jetty's own ResourceHandler, which
 * implements HEAD, Range, 206 and 416 itself. Two switches bend it for tests of our client:
 * HEAD can be refused (as a URL signed for GET refuses it), and {@code /moved/x} redirects to
 * {@code /x}. Neither touches how ranges are served.
 */
public final class JettyFileServer implements AutoCloseable {
    private final Server server = new Server();
    private final ServerConnector connector = new ServerConnector(server);
    private final ConnectionStatistics connections = new ConnectionStatistics();
    private final AtomicInteger heads = new AtomicInteger();
    private final AtomicInteger gets = new AtomicInteger();
    private volatile boolean refuseHead;

    public JettyFileServer(Path root) throws Exception {
        this(root, false);
    }

    /** With {@code etags}, answers carry a (weak) ETag and honour If-Match. */
    public JettyFileServer(Path root, boolean etags) throws Exception {
        connector.setHost("127.0.0.1");
        connector.setPort(0);
        connector.addBean(connections);
        server.addConnector(connector);
        ResourceHandler files = new ResourceHandler() {
            @Override
            protected HttpContent.Factory newHttpContentFactory(ByteBufferPool.Sized pool) {
                // No cache of contents or validators: a file replaced on disk is served as it is
                // now, as an object store serves a replaced object.
                return new ResourceHttpContentFactory(getBaseResource(), getMimeTypes(), pool);
            }
        };
        files.setBaseResource(ResourceFactory.of(files).newResource(root));
        files.setDirAllowed(false);
        files.setEtags(etags);
        server.setHandler(new Handler.Wrapper(files) {
            @Override
            public boolean handle(Request request, Response response, Callback callback) throws Exception {
                (request.getMethod().equals("HEAD") ? heads : gets).incrementAndGet();
                if (refuseHead && request.getMethod().equals("HEAD")) {
                    response.setStatus(403);
                    callback.succeeded();
                    return true;
                }
                String path = Request.getPathInContext(request);
                if (path.startsWith("/moved/")) {
                    Response.sendRedirect(request, response, callback, 302, path.substring("/moved".length()), false);
                    return true;
                }
                return super.handle(request, response, callback);
            }
        });
        server.start();
    }

    public URI uri(String path) {
        return URI.create("http://127.0.0.1:" + connector.getLocalPort() + path);
    }

    public void refuseHead(boolean refuse) {
        refuseHead = refuse;
    }

    public int heads() {
        return heads.get();
    }

    public int gets() {
        return gets.get();
    }

    /** Connections open now. */
    public long openConnections() {
        return connections.getConnections();
    }

    /** Connections ever accepted. */
    public long acceptedConnections() {
        return connections.getConnectionsTotal();
    }

    @Override
    public void close() throws Exception {
        server.stop();
    }
}
