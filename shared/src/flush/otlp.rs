//! OTLP/HTTP(S): to a collector, a vendor, or straight to X-Ray's OTLP endpoint.
//!
//! Each batch is packed ([`pack`](super::pack)) into requests that keep to the endpoint's limits —
//! X-Ray's (10,000 spans and 5 MB uncompressed per request, 200 KB per span) when the endpoint is
//! X-Ray's, 5 MB per request otherwise — then encoded (protobuf with tracekit's encoder, JSON with
//! opentelemetry-proto's serde mapping), gzipped when asked, signed for X-Ray, and posted.
//!
//! Only 429, 502, 503 and 504 are retried, as the OTLP specification asks, after `Retry-After`
//! when the server sends one (else 100 ms, then 200 ms, 400 ms), and only while the retry still
//! fits in the flush's bound. Anything else fails the request: its spans and the batch's later
//! ones are counted as lost, and the flush logs one line. The error never holds the response's
//! body (X-Ray's 403 echoes the canonical request), a header, or a credential.
//!
//! opentelemetry-otlp's HTTP exporter is not used: it sends a batch as one request whatever its
//! size, retries within its own timeout rather than the flush's bound, and reports a failed
//! connection (a certificate refused) only as "network error".
//! [OTLP/HTTP](https://opentelemetry.io/docs/specs/otlp/#otlphttp)

use super::BatchSpan;
use super::pack::{self, EncodedResource, Limits};
use super::{ExporterError, Loss, Progress, http1::Http1Client};
use crate::config::{OtlpCompression, OtlpConfig, OtlpProtocol};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri, header};
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_sdk::{Resource, trace::SpanData};
use std::time::Duration;
use tokio::time::Instant;

/// X-Ray's OTLP endpoint's limits (CloudWatch "OTLP endpoints").
const XRAY_LIMITS: Limits = Limits {
    max_bytes: 5_000_000,
    max_spans: 10_000,
    max_span_bytes: 200_000,
};
/// Other collectors: requests of at most 5 MB (below the OpenTelemetry Collector's 20 MiB default
/// `max_request_body_size` and most vendors' limits), any span that fits.
const COLLECTOR_LIMITS: Limits = Limits {
    max_bytes: 5_000_000,
    max_spans: usize::MAX,
    max_span_bytes: usize::MAX,
};
/// Retries after the first attempt.
const MAX_RETRIES: u32 = 3;
/// The first retry's delay when the server gives none; doubled for each later one.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

const PROTOBUF: HeaderValue = HeaderValue::from_static("application/x-protobuf");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const GZIP: HeaderValue = HeaderValue::from_static("gzip");

/// One per process: the size of its larger variant does not matter.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Transport {
    Http(Http1Client),
    #[cfg(feature = "https")]
    Https(super::tls::TlsClient),
}

impl Transport {
    async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, String> {
        match self {
            Transport::Http(client) => client.send(request).await,
            #[cfg(feature = "https")]
            Transport::Https(client) => client.send(request).await,
        }
    }
}

/// The OTLP/HTTP(S) exporter.
#[derive(Debug)]
pub(crate) struct OtlpHttp {
    endpoint: Uri,
    protocol: OtlpProtocol,
    compression: OtlpCompression,
    headers: HeaderMap,
    timeout: Duration,
    limits: Limits,
    transport: Transport,
    #[cfg(feature = "sigv4")]
    signer: Option<super::sigv4::Signer>,
    resource: EncodedResource,
    json_resource: ResourceAttributesWithSchema,
}

impl OtlpHttp {
    /// Checks the settings and reads the trusted roots' file, if any; opens no connection.
    pub(crate) fn new(config: &OtlpConfig) -> Result<Self, ExporterError> {
        let bad_endpoint = || ExporterError::Endpoint(config.endpoint.clone());
        let endpoint: Uri = config.endpoint.parse().map_err(|_| bad_endpoint())?;
        if endpoint.host().is_none() {
            return Err(bad_endpoint());
        }
        let transport = match endpoint.scheme_str() {
            Some("http") => Transport::Http(Http1Client::new(&endpoint).ok_or_else(bad_endpoint)?),
            #[cfg(feature = "https")]
            Some("https") => {
                Transport::Https(super::tls::TlsClient::new(config.certificate.as_deref())?)
            }
            #[cfg(not(feature = "https"))]
            Some("https") => return Err(ExporterError::HttpsNotBuilt(config.endpoint.clone())),
            _ => return Err(bad_endpoint()),
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let (Ok(name), Ok(mut value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) else {
                return Err(ExporterError::Header(name.clone()));
            };
            // An API key is a secret: kept out of `Debug` output.
            value.set_sensitive(true);
            headers.append(name, value);
        }
        let signing = config.xray.as_ref().filter(|xray| xray.sign);
        #[cfg(not(feature = "sigv4"))]
        if signing.is_some() {
            return Err(ExporterError::SigV4NotBuilt);
        }
        // Without the SDK's chain the environment is the only source: a build that cannot sign
        // says so at init, as for any setting the build leaves out.
        #[cfg(all(feature = "sigv4", not(feature = "sigv4-chain")))]
        if signing.is_some()
            && super::sigv4::environment_credentials(|name| std::env::var(name)).is_none()
        {
            return Err(ExporterError::CredentialsChainNotBuilt);
        }
        Ok(OtlpHttp {
            endpoint,
            protocol: config.protocol,
            compression: config.compression,
            headers,
            timeout: config.timeout,
            limits: if config.xray.is_some() {
                XRAY_LIMITS
            } else {
                COLLECTOR_LIMITS
            },
            transport,
            #[cfg(feature = "sigv4")]
            signer: signing.map(|xray| super::sigv4::Signer::new(xray.region.clone())),
            resource: EncodedResource::default(),
            json_resource: ResourceAttributesWithSchema::default(),
        })
    }

    /// How request bodies are encoded.
    pub(crate) fn protocol(&self) -> OtlpProtocol {
        self.protocol
    }

    pub(crate) fn set_resource(&mut self, resource: &Resource) {
        self.resource = EncodedResource::new(resource);
        self.json_resource = ResourceAttributesWithSchema::from(resource);
    }

    /// Exports `batch` in as many requests as the limits ask, each before `deadline`. The first
    /// failed request ends the export: its spans and the rest are the loss.
    pub(crate) async fn export<'a>(
        &self,
        batch: impl IntoIterator<Item = BatchSpan<'a>>,
        deadline: Instant,
        progress: &Progress,
    ) -> Result<(), Loss> {
        let packed = pack::pack(batch, &self.resource, self.limits);
        let mut oversized = packed.oversized;
        let mut lost = 0;
        let mut failure = None;
        // Each request is encoded just before it is sent: after a failure the rest are only counted.
        let mut bodies = Vec::new();
        for request in packed.requests {
            if failure.is_some() {
                lost += request.spans();
                continue;
            }
            match self.protocol {
                OtlpProtocol::HttpProtobuf => bodies.push((request.protobuf(), request.spans())),
                OtlpProtocol::HttpJson => {
                    let spans: Vec<&SpanData> = request
                        .spans_by_scope()
                        .filter_map(BatchSpan::whole)
                        .collect();
                    // (None is left out: see `BatchSpan::whole`; counted all the same.)
                    oversized += request.spans() - spans.len();
                    oversized += self.json(&spans, &mut bodies);
                }
            }
            for (body, spans) in bodies.drain(..) {
                if failure.is_some() {
                    lost += spans;
                    continue;
                }
                progress.sending(spans);
                match self.post(body, deadline).await {
                    Ok(()) => progress.accepted(),
                    // Sent, and no answer in time: the collector may have the spans; they stay
                    // on `progress` as unconfirmed, not lost.
                    Err(Failed::Unanswered(error)) => failure = Some(error),
                    Err(Failed::Refused(error)) => {
                        progress.refused();
                        lost += spans;
                        failure = Some(error);
                    }
                }
            }
        }
        if failure.is_none() && lost == 0 && oversized == 0 {
            return Ok(());
        }
        let mut error = failure.unwrap_or_default();
        if oversized > 0 {
            if !error.is_empty() {
                error.push_str("; ");
            }
            error.push_str(&format!(
                "{oversized} span(s) over the endpoint's limit of {} bytes per span or {} per request",
                self.limits.max_span_bytes.min(self.limits.max_bytes),
                self.limits.max_bytes
            ));
        }
        Err(Loss {
            dropped: lost + oversized,
            error,
            said: false,
        })
    }

    /// JSON bodies of `spans`, halved until each is within the byte limit (the JSON mapping is
    /// larger than the protobuf the requests were packed by). Returns the spans that fit nowhere.
    fn json(&self, spans: &[&SpanData], bodies: &mut Vec<(Vec<u8>, usize)>) -> usize {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        let count = spans.len();
        let request = ExportTraceServiceRequest {
            resource_spans:
                opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope(
                    spans.iter().map(|span| (*span).clone()).collect(),
                    &self.json_resource,
                ),
        };
        match serde_json::to_vec(&request) {
            Ok(body) if body.len() <= self.limits.max_bytes => {
                bodies.push((body, count));
                0
            }
            _ if count == 1 => 1,
            _ => {
                let (first, second) = spans.split_at(count / 2);
                self.json(first, bodies) + self.json(second, bodies)
            }
        }
    }

    /// Posts one body, retrying what may be retried while the bound allows.
    async fn post(&self, body: Vec<u8>, deadline: Instant) -> Result<(), Failed> {
        let (body, encoding) = match self.compression {
            OtlpCompression::None => (Bytes::from(body), None),
            OtlpCompression::Gzip => (gzip(&body).map_err(Failed::Refused)?, Some(GZIP)),
        };
        let host = self.endpoint.host().unwrap_or_default();
        let mut backoff = FIRST_BACKOFF;
        for attempt in 0..=MAX_RETRIES {
            let mut request = Request::post(self.endpoint.clone())
                .body(body.clone())
                .map_err(|error| {
                    Failed::Refused(format!("cannot build the OTLP request: {error}"))
                })?;
            let headers = request.headers_mut();
            headers.clone_from(&self.headers);
            headers.insert(
                header::CONTENT_TYPE,
                match self.protocol {
                    OtlpProtocol::HttpProtobuf => PROTOBUF,
                    OtlpProtocol::HttpJson => JSON,
                },
            );
            if let Some(encoding) = &encoding {
                headers.insert(header::CONTENT_ENCODING, encoding.clone());
            }
            #[cfg(feature = "sigv4")]
            if let Some(signer) = &self.signer {
                signer.sign(&mut request).await.map_err(Failed::Refused)?;
            }
            let bound = deadline.min(Instant::now() + self.timeout);
            let response = match tokio::time::timeout_at(bound, self.transport.send(request)).await
            {
                Ok(Ok(response)) => response,
                Ok(Err(error)) => return Err(Failed::Refused(format!("{host}: {error}"))),
                Err(_elapsed) => {
                    return Err(Failed::Unanswered(format!("{host} did not answer in time")));
                }
            };
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let retryable = matches!(status.as_u16(), 429 | 502 | 503 | 504);
            if retryable && attempt < MAX_RETRIES {
                let delay = retry_after(response.headers()).unwrap_or(backoff);
                backoff *= 2;
                if Instant::now() + delay < deadline {
                    tokio::time::sleep(delay).await;
                    continue;
                }
                return Err(Failed::Refused(format!(
                    "{host} answered {status}, and a retry in {} ms would not fit in the flush",
                    delay.as_millis()
                )));
            }
            let advice = if self.limits == XRAY_LIMITS {
                xray_advice(status)
            } else {
                ""
            };
            return Err(Failed::Refused(format!("{host} answered {status}{advice}")));
        }
        Err(Failed::Refused(format!(
            "{host} still refused after {MAX_RETRIES} retries"
        )))
    }
}

/// Why a request's spans did not arrive, as far as the exporter can tell.
#[derive(Debug)]
enum Failed {
    /// Not sent, or answered with a refusal: the spans are lost.
    Refused(String),
    /// Sent (or being sent) and not answered in time: the collector may have them.
    Unanswered(String),
}

/// What a user can do about X-Ray's OTLP endpoint's answer, where it is not obvious.
fn xray_advice(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 | 403 => {
            " (X-Ray's OTLP endpoint needs Transaction Search enabled, and the role needs \
             xray:PutTraceSegments, xray:PutSpans and xray:PutSpansForIndexing)"
        }
        413 => " (the request was too large for it)",
        _ => "",
    }
}

/// `Retry-After` as seconds or an HTTP date, capped at a minute (the flush's bound cuts it
/// further).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    let delay = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    };
    Some(delay.min(Duration::from_secs(60)))
}

fn gzip(body: &[u8]) -> Result<Bytes, String> {
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    encoder
        .write_all(body)
        .and_then(|()| encoder.finish())
        .map(Bytes::from)
        .map_err(|error| format!("gzip: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates_and_caps_them() {
        let cases = [
            ("2", Some(Duration::from_secs(2)), "seconds"),
            ("3600", Some(Duration::from_secs(60)), "capped at a minute"),
            (
                "Thu, 01 Jan 1970 00:00:00 GMT",
                Some(Duration::ZERO),
                "a date in the past: now",
            ),
            ("soon", None, "neither"),
        ];
        for (value, expected, reason) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static(value));
            assert_eq!(retry_after(&headers), expected, "{reason}");
        }
        let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&later).expect("a header"),
        );
        let delay = retry_after(&headers).expect("a date");
        assert!(
            delay > Duration::from_secs(25) && delay <= Duration::from_secs(30),
            "{delay:?}"
        );
    }

    /// The JSON mapping is larger than the protobuf requests are packed by: a JSON body over the
    /// limit is halved until every body fits, and every span goes exactly once.
    #[test]
    fn json_bodies_are_halved_until_they_fit() {
        use opentelemetry::KeyValue;
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        let mut config = crate::Config::from_lookup(|_| None).expect("defaults");
        let crate::config::ExporterConfig::Otlp(otlp) = &mut config.exporter else {
            panic!("OTLP/HTTP outside Lambda");
        };
        otlp.protocol = OtlpProtocol::HttpJson;
        let mut exporter = OtlpHttp::new(otlp).expect("exporter");
        exporter.limits.max_bytes = 10_000;
        let spans: Vec<SpanData> = (1..=50u64)
            .map(|id| crate::test_spans::span(id, vec![KeyValue::new("padding", "x".repeat(900))]))
            .collect();
        let mut bodies = Vec::new();
        let spans: Vec<&SpanData> = spans.iter().collect();
        assert_eq!(exporter.json(&spans, &mut bodies), 0, "every span fits");
        assert!(bodies.len() >= 5, "{} bodies", bodies.len());
        let mut total = 0;
        for (body, count) in &bodies {
            assert!(body.len() <= 10_000, "{} bytes", body.len());
            let request: ExportTraceServiceRequest =
                serde_json::from_slice(body).expect("OTLP JSON");
            let spans = crate::test_spans::span_ids(&request).len();
            assert_eq!(spans, *count);
            total += spans;
        }
        assert_eq!(total, 50);
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let body = b"{\"resourceSpans\":[]}".repeat(100);
        let compressed = gzip(&body).expect("gzip");
        assert!(compressed.len() < body.len());
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(compressed.as_ref())
            .read_to_end(&mut decoded)
            .expect("gunzip");
        assert_eq!(decoded, body);
    }
}
