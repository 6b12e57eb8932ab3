//! The OTLP exporter's HTTPS client: rustls, the TLS stack the AWS SDK already links (with the same
//! aws-lc-rs provider and hyper-rustls connector), over hyper's HTTP/1.1 client.
//!
//! Roots are the platform's (`rustls-native-certs`, the AWS SDK's own choice: in Lambda, the
//! image's CA bundle, which AWS keeps current), or the PEM file `OTEL_EXPORTER_OTLP_CERTIFICATE`
//! names instead (a private CA; the tests' own). The file is read at init, so a wrong path fails
//! the init; the platform's roots are loaded, and the first connection opened, at the first export,
//! after the first response. The connection is kept for every later export.

use super::ExporterError;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, pem::PemObject};
use std::{path::Path, sync::Arc, time::Duration};
use tokio::sync::OnceCell;

/// An idle connection older than this is closed rather than reused: a server (or a NAT on the
/// way) may have dropped it while Lambda kept the process frozen, and a request written into a
/// dead connection is lost.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// An HTTPS client, built at its first request.
#[derive(Debug)]
pub(super) struct TlsClient {
    /// The roots from `OTEL_EXPORTER_OTLP_CERTIFICATE`; `None`: the platform's.
    roots: Option<Vec<CertificateDer<'static>>>,
    client: OnceCell<HttpsClient>,
}

impl TlsClient {
    /// Reads `certificate` (PEM, one or more certificates) when given; opens nothing.
    pub(super) fn new(certificate: Option<&Path>) -> Result<Self, ExporterError> {
        let roots = match certificate {
            None => None,
            Some(path) => {
                let invalid = |reason: String| ExporterError::Certificate {
                    path: path.display().to_string(),
                    reason,
                };
                let certificates = CertificateDer::pem_file_iter(path)
                    .map_err(|error| invalid(error.to_string()))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|error| invalid(error.to_string()))?;
                if certificates.is_empty() {
                    return Err(invalid("no PEM certificate in the file".into()));
                }
                Some(certificates)
            }
        };
        Ok(TlsClient {
            roots,
            client: OnceCell::new(),
        })
    }

    fn build(&self) -> Result<HttpsClient, String> {
        let mut store = RootCertStore::empty();
        match &self.roots {
            Some(roots) => {
                let (added, _ignored) = store.add_parsable_certificates(roots.iter().cloned());
                if added == 0 {
                    return Err(
                        "no usable root certificate in OTEL_EXPORTER_OTLP_CERTIFICATE".into(),
                    );
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                let (added, _ignored) = store.add_parsable_certificates(native.certs);
                if added == 0 {
                    return Err(format!(
                        "no root certificates found on this system ({} errors); set \
                         OTEL_EXPORTER_OTLP_CERTIFICATE to a PEM file of trusted roots",
                        native.errors.len()
                    ));
                }
            }
        }
        // The provider is named, not taken from the process default: a function that links both
        // of rustls's providers (ring through an older crate) would otherwise panic here.
        let config = ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS configuration: {error}"))?
        .with_root_certificates(store)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        // The connector checks the scheme; plain TCP must be allowed through to it.
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        Ok(Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(1)
            .build(connector))
    }

    /// Sends `request` (an absolute `https://` URI) and reads the answer.
    pub(super) async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, String> {
        let client = self
            .client
            .get_or_try_init(|| async { self.build() })
            .await?;
        let (parts, body) = request.into_parts();
        let response = client
            .request(Request::from_parts(parts, Full::new(body)))
            .await
            .map_err(|error| super::answer::describe(&error))?;
        super::answer::read_response(response).await
    }
}
