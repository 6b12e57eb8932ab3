//! The HTTP plumbing the stand-in servers share: bind 127.0.0.1:0, serve HTTP/1.1 with hyper, stop on
//! drop. Plus a one-shot client for health checks and tests.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::{JoinHandle, JoinSet};

use crate::{Error, Result};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The body every stand-in server answers with.
pub(crate) type Body = Full<Bytes>;

/// A running server; dropping it stops the accept loop and every open connection.
#[derive(Debug)]
pub(crate) struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
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
        let bind = || -> std::io::Result<_> {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            listener.set_nonblocking(true)?;
            let addr = listener.local_addr()?;
            Ok((tokio::net::TcpListener::from_std(listener)?, addr))
        };
        let (listener, addr) = bind().map_err(Error::io(format!("binding the {what}")))?;
        let task = tokio::spawn(async move {
            // Connections live in this set so that aborting the accept loop ends them too.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let handler = handler.clone();
                        let service = service_fn(move |request| {
                            let response = handler(request);
                            async move { Ok::<_, Infallible>(response.await) }
                        });
                        connections.spawn(async move {
                            // A client hanging up mid-request is not the harness's failure.
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Server { addr, task })
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
    let response = request_with_timeout(request, timeout).await?;
    Ok((response.status(), response.into_body()))
}

/// Sends one HTTP/1.1 request on a fresh connection to the plain-HTTP server its URI names
/// (`http://127.0.0.1:PORT/path`) and reads the whole response, within 10 s.
///
/// For tests that talk to the stand-in servers or the emulators directly.
pub async fn request(request: Request<Bytes>) -> Result<Response<Bytes>> {
    request_with_timeout(request, REQUEST_TIMEOUT).await
}

async fn request_with_timeout(
    request: Request<Bytes>,
    timeout: Duration,
) -> Result<Response<Bytes>> {
    let what = format!("{} {}", request.method(), request.uri());
    let (mut parts, body) = request.into_parts();
    let host = parts
        .uri
        .host()
        .ok_or_else(|| Error::Invalid(format!("{what}: the URI has no host")))?
        .to_owned();
    let port = parts.uri.port_u16().unwrap_or(80);
    // On the wire the request line carries the path only; the host goes in `Host`.
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    parts.uri = Uri::try_from(path).map_err(|error| Error::Invalid(format!("{what}: {error}")))?;
    let host_header = HeaderValue::try_from(format!("{host}:{port}"))
        .map_err(|error| Error::Invalid(format!("{what}: {error}")))?;
    parts.headers.entry(header::HOST).or_insert(host_header);
    let request = Request::from_parts(parts, Full::new(body));

    let exchange = async {
        let stream = TcpStream::connect((host.as_str(), port)).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
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
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result.map_err(Error::io(what)),
        Err(_) => Err(Error::Timeout(format!(
            "{what} got no answer within {timeout:?}"
        ))),
    }
}
