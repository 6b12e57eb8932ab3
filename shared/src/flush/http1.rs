//! The OTLP exporter's plain-HTTP client: the HTTP/1.1 client that lambda_runtime polls the Runtime
//! API with, a second instance of it based at the collector. Calling the runtime's own
//! (non-generic) client code rather than instantiating hyper's client again keeps one copy of
//! that code in the function's binary; no collector in a Lambda sandbox needs HTTP/2.
use bytes::Bytes;
use http::{Request, Response, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use lambda_runtime_api_client::{PooledClient, body::Body};

/// Keeps one connection pool for the life of the process: the connection opened by the first
/// export is reused by every later one.
#[derive(Debug)]
pub(super) struct Http1Client {
    client: PooledClient,
}

impl Http1Client {
    /// A client for the collector at `endpoint` (an `http://` URL with a host); `None` if it
    /// is not one. Opens no connection.
    pub(super) fn new(endpoint: &Uri) -> Option<Self> {
        // The client puts its base's scheme and authority in front of each request's path.
        let origin = Uri::builder()
            .scheme(endpoint.scheme()?.clone())
            .authority(endpoint.authority()?.clone())
            .path_and_query("/")
            .build()
            .ok()?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = PooledClient::builder()
            .with_connector(connector)
            .with_endpoint(origin)
            .build();
        Some(Http1Client { client })
    }

    /// Sends `request` and reads the answer.
    pub(super) async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, String> {
        // The client takes the path from the request and would panic without one.
        if request.uri().path_and_query().is_none() {
            return Err(format!("no path in the export URL {}", request.uri()));
        }
        let (parts, body) = request.into_parts();
        let response = self
            .client
            .call(Request::from_parts(parts, Body::from(body)))
            .await
            .map_err(|error| super::answer::describe(&*error))?;
        super::answer::read_response(response).await
    }
}
