//! The X-Ray daemon exporter, built at the first export so that init resolves no address and
//! binds no socket.
use super::Loss;
use opentelemetry::{Value, trace::Status};
use opentelemetry_aws::xray_exporter::{XrayExporter, daemon_client::XrayDaemonClient};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkError,
    trace::{SpanData, SpanExporter},
};
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

#[derive(Debug)]
pub(super) struct LazyXray {
    address: String,
    resource: Option<Resource>,
    exporter: OnceCell<XrayExporter<XrayDaemonClient>>,
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

    async fn exporter(&self) -> Result<&XrayExporter<XrayDaemonClient>, OTelSdkError> {
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
                let client = XrayDaemonClient::new(address)
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
        batch.iter_mut().for_each(client_errors_as_errors);
        let exported = match self.exporter().await {
            Ok(exporter) => exporter.export(batch).await,
            Err(error) => Err(error),
        };
        match exported {
            Err(error) => Err(Loss {
                dropped: size,
                error: error.to_string(),
            }),
            Ok(()) if refused > 0 => Err(Loss {
                dropped: refused,
                error: format!(
                    "{refused} spans have trace ids X-Ray segment documents cannot hold (not a time of the last 30 days); the agent path (OTLP) takes them"
                ),
            }),
            Ok(()) => Ok(()),
        }
    }
}
