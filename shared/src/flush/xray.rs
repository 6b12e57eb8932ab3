//! The X-Ray daemon exporter, built at the first export so that init resolves no address and
//! binds no socket.
//!
//! opentelemetry-aws translates spans into segment documents; tracekit sends them, over the
//! daemon's UDP protocol (a JSON header line, then the document), because the translator keeps
//! metadata flat and X-Ray's documents nest it by namespace: each document's namespaces are nested
//! (see `metadata`) on the way out.
use super::Loss;
use opentelemetry::{Value, trace::Status};
use opentelemetry_aws::xray_exporter::{SegmentDocument, SegmentDocumentExporter, XrayExporter};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkError,
    trace::{SpanData, SpanExporter},
};
use std::{io, net::UdpSocket};
use tokio::sync::OnceCell;

/// X-Ray reads a 4xx as the client's error (`error: true`), a 5xx as a fault, a 429 as a
/// throttle ([segment errors](https://docs.aws.amazon.com/xray/latest/devguide/xray-api-segmentdocuments.html#api-segmentdocuments-errors));
/// opentelemetry-aws's translator looks at the status code only for spans in error, and an HTTP
/// server span answering 4xx is not one (the semantic conventions leave it unset). On this
/// path only, such a span is marked in error so that its segment says `error: true`.
fn client_errors_as_errors(span: &mut SpanData) {
    if !matches!(span.status, Status::Unset) {
        return;
    }
    let status = span.attributes.iter().find_map(|kv| match &kv.value {
        Value::I64(code) if kv.key.as_str() == "http.response.status_code" => Some(*code),
        _ => None,
    });
    if let Some(code @ 400..=499) = status {
        span.status = Status::error(format!("HTTP {code}"));
    }
}

/// The daemon protocol's header line.
/// [Sending segment documents to the daemon](https://docs.aws.amazon.com/xray/latest/devguide/xray-api-sendingdata.html#xray-api-daemon)
const DAEMON_HEADER: &[u8] = b"{\"format\": \"json\", \"version\": 1}\n";

/// Sends segment documents to the daemon, one datagram each, metadata nested by namespace.
#[derive(Debug)]
struct DaemonClient {
    socket: UdpSocket,
}

impl DaemonClient {
    fn connect(address: std::net::SocketAddr) -> io::Result<Self> {
        let bind: std::net::SocketAddr = if address.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(bind)?;
        // A full socket buffer drops the datagram rather than blocking the flush.
        socket.set_nonblocking(true)?;
        socket.connect(address)?;
        Ok(DaemonClient { socket })
    }

    fn datagram(document: &SegmentDocument<'_>) -> io::Result<Vec<u8>> {
        let mut datagram = DAEMON_HEADER.to_vec();
        let mut json = serde_json::to_vec(document)?;
        // Only documents with tracekit's namespaces take the round trip through a JSON value: the
        // mark is escaped in JSON as `\u001e`.
        if json.windows(6).any(|window| window == b"\\u001e") {
            let mut value: serde_json::Value = serde_json::from_slice(&json)?;
            crate::metadata::nest_namespaces(&mut value);
            json = serde_json::to_vec(&value)?;
        }
        datagram.extend_from_slice(&json);
        Ok(datagram)
    }
}

impl SegmentDocumentExporter for DaemonClient {
    type Error = io::Error;

    async fn export_segment_documents(
        &self,
        batch: Vec<SegmentDocument<'_>>,
    ) -> Result<(), Self::Error> {
        for document in &batch {
            self.socket.send(&Self::datagram(document)?)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
pub(super) struct LazyXray {
    address: String,
    resource: Option<Resource>,
    exporter: OnceCell<XrayExporter<DaemonClient>>,
}

impl LazyXray {
    pub(super) fn new(address: String) -> Self {
        LazyXray {
            address,
            resource: None,
            exporter: OnceCell::new(),
        }
    }

    pub(super) fn set_resource(&mut self, resource: &Resource) {
        self.resource = Some(resource.clone());
    }

    async fn exporter(&self) -> Result<&XrayExporter<DaemonClient>, OTelSdkError> {
        self.exporter
            .get_or_try_init(|| async {
                let address = tokio::net::lookup_host(self.address.as_str())
                    .await
                    .ok()
                    .and_then(|mut addresses| addresses.next())
                    .ok_or_else(|| {
                        OTelSdkError::InternalFailure(format!(
                            "X-Ray daemon address {} does not resolve",
                            self.address
                        ))
                    })?;
                let client = DaemonClient::connect(address)
                    .map_err(|e| OTelSdkError::InternalFailure(e.to_string()))?;
                let mut exporter = XrayExporter::new(client);
                if let Some(resource) = &self.resource {
                    exporter.set_resource(resource);
                }
                Ok(exporter)
            })
            .await
    }

    /// Exports the spans X-Ray can hold. A span whose trace id is not an X-Ray trace id (see
    /// `propagation::is_xray_trace_id`) would be refused by the translator without a word:
    /// it is counted as lost here instead, with the reason.
    pub(super) async fn export(&self, mut batch: Vec<SpanData>) -> Result<(), Loss> {
        let now = crate::propagation::now_secs();
        let size = batch.len();
        batch
            .retain(|span| crate::propagation::is_xray_trace_id(span.span_context.trace_id(), now));
        let refused = size - batch.len();
        batch.iter_mut().for_each(|span| {
            client_errors_as_errors(span);
            crate::metadata::for_segments(span);
        });
        let exported = match self.exporter().await {
            Ok(exporter) => exporter.export(batch).await,
            Err(error) => Err(error),
        };
        match exported {
            Err(error) => Err(Loss {
                dropped: size,
                error: error.to_string(),
                said: false,
            }),
            Ok(()) if refused > 0 => Err(Loss {
                dropped: refused,
                error: format!(
                    "{refused} spans have trace ids X-Ray segment documents cannot hold (not a time of the last 30 days); the agent path (OTLP) takes them"
                ),
                said: false,
            }),
            Ok(()) => Ok(()),
        }
    }
}
