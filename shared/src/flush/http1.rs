//! The OTLP exporter's HTTP client: the HTTP/1.1 client that lambda_runtime polls the Runtime
//! API with, a second instance of it based at the collector. Calling the runtime's own
//! (non-generic) client code rather than instantiating hyper's client again keeps one copy of
//! that code in the function's binary. opentelemetry-http's hyper client would also bring
//! HTTP/2, which no collector in a Lambda sandbox needs.
use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use lambda_runtime_api_client::{PooledClient, body::Body};
use opentelemetry_http::{HttpClient, HttpError};
use std::time::Duration;

/// A collector's answer is a small status message; anything larger is not read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Keeps one connection pool for the life of the process: the connection opened by the first
/// export is reused by every later one.
#[derive(Debug)]
pub(super) struct Http1Client {
    client: PooledClient,
    timeout: Duration,
}

impl Http1Client {
    /// A client for the collector at `endpoint` (an `http://` URL with a host); `None` if it
    /// is not one. Opens no connection.
    pub(super) fn new(endpoint: &str, timeout: Duration) -> Option<Self> {
        let endpoint: Uri = endpoint.parse().ok()?;
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
        Some(Http1Client { client, timeout })
    }
}

#[async_trait::async_trait]
impl HttpClient for Http1Client {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        // The client takes the path from the request and would panic without one.
        if request.uri().path_and_query().is_none() {
            return Err(format!("no path in the export URL {}", request.uri()).into());
        }
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, Body::from(body));
        let exchange = async {
            let (parts, body) = self.client.call(request).await?.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await?
                .to_bytes();
            Ok::<_, HttpError>(Response::from_parts(parts, body))
        };
        tokio::time::timeout(self.timeout, exchange).await?
    }
}
