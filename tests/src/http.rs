//! The HTTP plumbing the stand-in servers share: bind 127.0.0.1:0 (or an address a tool is given),
//! serve HTTP/1.1 with hyper (over TLS when asked), stop on drop. Plus a one-shot client for health checks and tests.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::{Error, Result};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that connects and says nothing must not hold a connection slot for ever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// 127.0.0.1 on a free port: where every stand-in listens unless told otherwise.
pub(crate) const LOOPBACK_ANY_PORT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// The body every stand-in server answers with.
pub(crate) type Body = Full<Bytes>;

/// A running server; dropping it stops the accept loop and every open connection.
#[derive(Debug)]
pub(crate) struct Server {
    addr: SocketAddr,
    tls: bool,
    handshake_failures: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

/// What runs between accepting a TCP connection and speaking HTTP on it.
#[derive(Clone)]
enum Transport {
    Plain,
    Tls(TlsAcceptor),
}

impl Transport {
    /// Serves one connection to the end. A failed TLS handshake is counted, not reported: the
    /// client's side of it (a refused certificate, say) is what a test asserts on.
    async fn serve<F, Fut>(self, stream: TcpStream, handler: F, handshake_failures: &AtomicUsize)
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        match self {
            Transport::Plain => serve_http(stream, handler).await,
            Transport::Tls(acceptor) => {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => serve_http(stream, handler).await,
                    Ok(Err(_)) | Err(_) => {
                        handshake_failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }
    }
}

async fn serve_http<I, F, Fut>(io: I, handler: F)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let service = service_fn(move |request| {
        let response = handler(request);
        async move { Ok::<_, Infallible>(response.await) }
    });
    // A client hanging up mid-request is not the harness's failure.
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

impl Server {
    /// Binds 127.0.0.1 on a free port and serves each request with `handler`.
    ///
    /// Synchronous so that constructors need no `.await`; must run inside a Tokio runtime.
    pub(crate) fn start<F, Fut>(what: &str, handler: F) -> Result<Server>
    where
        F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        Server::start_at(what, LOOPBACK_ANY_PORT, handler)
    }

    /// [`Server::start`] on `address` (port 0: a free one), for a tool whose address a user chose.
    pub(crate) fn start_at<F, Fut>(what: &str, address: SocketAddr, handler: F) -> Result<Server>
    where
        F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        Server::serve(what, address, Transport::Plain, handler)
    }

    /// [`Server::start`] over TLS with `config`: HTTPS.
    pub(crate) fn start_tls<F, Fut>(
        what: &str,
        config: Arc<rustls::ServerConfig>,
        handler: F,
    ) -> Result<Server>
    where
        F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let transport = Transport::Tls(TlsAcceptor::from(config));
        Server::serve(what, LOOPBACK_ANY_PORT, transport, handler)
    }

    fn serve<F, Fut>(
        what: &str,
        address: SocketAddr,
        transport: Transport,
        handler: F,
    ) -> Result<Server>
    where
        F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let bind = || -> std::io::Result<_> {
            let listener = std::net::TcpListener::bind(address)?;
            listener.set_nonblocking(true)?;
            let addr = listener.local_addr()?;
            Ok((tokio::net::TcpListener::from_std(listener)?, addr))
        };
        let (listener, addr) =
            bind().map_err(Error::io(format!("binding the {what} to {address}")))?;
        let tls = matches!(transport, Transport::Tls(_));
        let handshake_failures = Arc::new(AtomicUsize::new(0));
        let failures = Arc::clone(&handshake_failures);
        let connections_accepted = Arc::new(AtomicUsize::new(0));
        let accepted_count = Arc::clone(&connections_accepted);
        let task = tokio::spawn(async move {
            // Connections live in this set so that aborting the accept loop ends them too.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        accepted_count.fetch_add(1, Ordering::SeqCst);
                        // The handshake runs in the connection's task: a slow client does not hold
                        // up the accept loop.
                        let (transport, handler) = (transport.clone(), handler.clone());
                        let failures = Arc::clone(&failures);
                        connections.spawn(async move {
                            transport.serve(stream, handler, &failures).await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Server {
            addr,
            tls,
            handshake_failures,
            connections: connections_accepted,
            task,
        })
    }

    /// `https` for a TLS server, else `http`.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    /// TLS handshakes that failed or timed out (always 0 for a plain server).
    pub(crate) fn handshake_failures(&self) -> usize {
        self.handshake_failures.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A response with `status` and `body`.
pub(crate) fn respond(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

/// Reads a request body to the end; `None` when the client went away.
pub(crate) async fn read_body(request: Request<Incoming>) -> Option<Bytes> {
    request
        .into_body()
        .collect()
        .await
        .ok()
        .map(|body| body.to_bytes())
}

/// `GET url`, bounded by `timeout`: the status and the body.
pub(crate) async fn get(url: &str, timeout: Duration) -> Result<(StatusCode, Bytes)> {
    let request = Request::get(url)
        .body(Bytes::new())
        .map_err(|error| Error::Invalid(format!("GET {url}: {error}")))?;
    let response = request_with_timeout(request, None, timeout).await?;
    Ok((response.status(), response.into_body()))
}

/// Sends one HTTP/1.1 request on a fresh connection to the plain-HTTP server its URI names
/// (`http://127.0.0.1:PORT/path`) and reads the whole response, within 10 s.
///
/// For tests that talk to the stand-in servers or the emulators directly.
pub async fn request(request: Request<Bytes>) -> Result<Response<Bytes>> {
    request_with_timeout(request, None, REQUEST_TIMEOUT).await
}

/// [`request`] over TLS with `tls` (e.g. [`crate::TestCa::client_config`]) to an
/// `https://HOST:PORT/path` URI; the host is the name the server's certificate must carry. A refused
/// certificate is an [`Error::Io`] whose message carries rustls' reason.
pub async fn https_request(
    request: Request<Bytes>,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Response<Bytes>> {
    request_with_timeout(request, Some(tls), REQUEST_TIMEOUT).await
}

async fn request_with_timeout(
    request: Request<Bytes>,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
) -> Result<Response<Bytes>> {
    let what = format!("{} {}", request.method(), request.uri());
    let (mut parts, body) = request.into_parts();
    let host = parts
        .uri
        .host()
        .ok_or_else(|| Error::Invalid(format!("{what}: the URI has no host")))?
        .to_owned();
    let port = parts
        .uri
        .port_u16()
        .unwrap_or(if tls.is_some() { 443 } else { 80 });
    // On the wire the request line carries the path only; the host goes in `Host`.
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    parts.uri = Uri::try_from(path).map_err(|error| Error::Invalid(format!("{what}: {error}")))?;
    let host_header = HeaderValue::try_from(format!("{host}:{port}"))
        .map_err(|error| Error::Invalid(format!("{what}: {error}")))?;
    parts.headers.entry(header::HOST).or_insert(host_header);
    let request = Request::from_parts(parts, Full::new(body));

    let exchange = async {
        let stream = TcpStream::connect((host.as_str(), port)).await?;
        match tls {
            None => exchange(stream, request).await,
            Some(config) => {
                let name = ServerName::try_from(host.clone()).map_err(|error| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, error)
                })?;
                let stream = TlsConnector::from(config).connect(name, stream).await?;
                exchange(stream, request).await
            }
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result.map_err(Error::io(what)),
        Err(_) => Err(Error::Timeout(format!(
            "{what} got no answer within {timeout:?}"
        ))),
    }
}

/// One request and its whole response on an open connection.
async fn exchange<I>(io: I, request: Request<Body>) -> std::io::Result<Response<Bytes>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(std::io::Error::other)?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    Ok(Response::from_parts(parts, body))
}
