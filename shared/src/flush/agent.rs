//! OTLP over UDP to Lambda's embedded X-Ray agent: the collector-less default.
//!
//! The datagram is the one AWS's distributions send (aws-otel-python-instrumentation's
//! `otlp_udp_exporter.py`, `OTLPUdpSpanExporter`): the line `{"format":"json","version":1}`, a
//! newline, `T1S` for sampled spans or `T1U` for unsampled ones (Application Signals), then the
//! standard base64 of a protobuf `ExportTraceServiceRequest`. One datagram carries at most 65,507
//! bytes (UDP over IPv4), so spans are packed by their encoded size into as few datagrams as fit; a
//! span too large for a datagram on its own is dropped and counted, never cut into invalid protobuf.
//!
//! The socket is bound and the address resolved at the first export, after the first response, and
//! kept: init sends nothing. The socket is connected (the kernel then reports a refused port on a
//! later send instead of losing it silently) and non-blocking: a full send buffer is a counted loss,
//! never a wait.

use super::Loss;
use super::encode::{self, Message as _, Out as _, SpanMessage};
use opentelemetry_proto::tonic::{
    common::v1::InstrumentationScope as ProtoScope,
    resource::v1::Resource as ProtoResource,
    trace::v1::{ResourceSpans, ScopeSpans},
};
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_sdk::{Resource, trace::SpanData};
use prost::{Message, encoding::encoded_len_varint};
use std::{
    io,
    net::{SocketAddr, UdpSocket},
};
use tokio::sync::OnceCell;

/// The agent's protocol header, newline included.
pub(crate) const HEADER: &[u8] = b"{\"format\":\"json\",\"version\":1}\n";
/// Prefix of a datagram of sampled spans.
pub(crate) const SAMPLED: &[u8] = b"T1S";
/// Prefix of a datagram of unsampled spans (Application Signals counts them; X-Ray keeps no trace).
pub(crate) const UNSAMPLED: &[u8] = b"T1U";
/// The most one UDP datagram over IPv4 carries: 65,535 less the IP (20) and UDP (8) headers.
pub(crate) const MAX_DATAGRAM: usize = 65_507;
/// The largest protobuf a datagram holds: what the header and prefix leave, at base64's four
/// characters per three bytes.
pub(crate) const MAX_PROTOBUF: usize = (MAX_DATAGRAM - HEADER.len() - SAMPLED.len()) / 4 * 3;

/// The resource's part of every request, encoded once: the `resource` field of `ResourceSpans`
/// and its `schema_url` field.
#[derive(Debug, Default)]
pub(crate) struct EncodedResource {
    resource: Vec<u8>,
    schema_url: Vec<u8>,
}

impl EncodedResource {
    pub(crate) fn new(resource: &Resource) -> Self {
        let resource = ResourceAttributesWithSchema::from(resource);
        EncodedResource {
            resource: ResourceSpans {
                resource: Some(ProtoResource {
                    attributes: resource.attributes.0,
                    dropped_attributes_count: 0,
                    entity_refs: Vec::new(),
                }),
                ..ResourceSpans::default()
            }
            .encode_to_vec(),
            schema_url: ResourceSpans {
                schema_url: resource.schema_url.unwrap_or_default(),
                ..ResourceSpans::default()
            }
            .encode_to_vec(),
        }
    }
}

/// Spans packed into datagrams.
#[derive(Debug, Default)]
pub(crate) struct Packed {
    /// Whole datagrams, ready to send, each with the number of spans it carries.
    pub(crate) datagrams: Vec<(Vec<u8>, usize)>,
    /// Spans too large for a datagram on their own, dropped.
    pub(crate) oversized: usize,
}

/// Packs `spans` into as few datagrams of at most [`MAX_DATAGRAM`] bytes as their encoded sizes
/// allow, each prefixed with `prefix`. Spans keep their order within their scope; a span never
/// straddles two datagrams.
pub(crate) fn pack(spans: Vec<SpanData>, resource: &EncodedResource, prefix: &[u8]) -> Packed {
    let mut packed = Packed::default();
    let mut request = Request::new(resource);
    for span in spans {
        let length = encode::encoded_len(&SpanMessage(&span));
        let field = field_len(length);
        let scope = &span.instrumentation_scope;
        if request.len_with(scope, field) > MAX_PROTOBUF {
            if !request.is_empty() {
                packed.datagrams.push(request.take(prefix));
            }
            if request.len_with(scope, field) > MAX_PROTOBUF {
                packed.oversized += 1;
                continue;
            }
        }
        request.push(span, length);
    }
    if !request.is_empty() {
        packed.datagrams.push(request.take(prefix));
    }
    packed
}

/// Bytes a length-delimited field of `len` bytes takes: its key (every field number here is below
/// 16, so one byte), the length, and the value.
fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// One `ExportTraceServiceRequest` being filled: one resource, one `ScopeSpans` per scope, with its
/// encoded length kept exactly as spans are added.
struct Request<'r> {
    resource: &'r EncodedResource,
    scopes: Vec<Scope>,
    spans: usize,
}

/// The spans of one instrumentation scope, and the scope's own fields, encoded.
struct Scope {
    key: opentelemetry::InstrumentationScope,
    /// The `scope` field of `ScopeSpans`.
    scope: Vec<u8>,
    /// Its `schema_url` field.
    schema_url: Vec<u8>,
    /// Each span with the length of its message.
    spans: Vec<(SpanData, usize)>,
    /// Encoded length of the `ScopeSpans` message.
    len: usize,
}

impl Scope {
    fn new(key: &opentelemetry::InstrumentationScope) -> Self {
        let scope = ScopeSpans {
            scope: Some(ProtoScope::from((key, None))),
            ..ScopeSpans::default()
        }
        .encode_to_vec();
        let schema_url = ScopeSpans {
            schema_url: key.schema_url().unwrap_or_default().to_owned(),
            ..ScopeSpans::default()
        }
        .encode_to_vec();
        Scope {
            key: key.clone(),
            len: scope.len() + schema_url.len(),
            scope,
            schema_url,
            spans: Vec::new(),
        }
    }
}

impl<'r> Request<'r> {
    fn new(resource: &'r EncodedResource) -> Self {
        Request {
            resource,
            scopes: Vec::new(),
            spans: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.spans == 0
    }

    /// Encoded length of the `ResourceSpans` message as it stands.
    fn resource_spans_len(&self) -> usize {
        self.resource.resource.len()
            + self.resource.schema_url.len()
            + self
                .scopes
                .iter()
                .map(|scope| field_len(scope.len))
                .sum::<usize>()
    }

    /// The request's encoded length once a span field of `span_field` bytes is added under `scope`.
    fn len_with(&self, scope: &opentelemetry::InstrumentationScope, span_field: usize) -> usize {
        let current = self.resource_spans_len();
        let resource_spans = match self.scopes.iter().find(|entry| &entry.key == scope) {
            Some(entry) => current - field_len(entry.len) + field_len(entry.len + span_field),
            None => current + field_len(Scope::new(scope).len + span_field),
        };
        field_len(resource_spans)
    }

    fn push(&mut self, span: SpanData, len: usize) {
        let index = match self
            .scopes
            .iter()
            .position(|entry| entry.key == span.instrumentation_scope)
        {
            Some(index) => index,
            None => {
                self.scopes.push(Scope::new(&span.instrumentation_scope));
                self.scopes.len() - 1
            }
        };
        let scope = &mut self.scopes[index];
        scope.len += field_len(len);
        scope.spans.push((span, len));
        self.spans += 1;
    }

    /// The datagram of what was added, leaving the request empty.
    fn take(&mut self, prefix: &[u8]) -> (Vec<u8>, usize) {
        let resource_spans = self.resource_spans_len();
        let mut protobuf = Vec::with_capacity(field_len(resource_spans));
        // ExportTraceServiceRequest.resource_spans (1) → ResourceSpans: resource (1), scope_spans
        // (2), schema_url (3) → ScopeSpans: scope (1), spans (2), schema_url (3).
        protobuf.key(1, 2);
        protobuf.varint(resource_spans as u64);
        protobuf.put(&self.resource.resource);
        for scope in self.scopes.drain(..) {
            protobuf.key(2, 2);
            protobuf.varint(scope.len as u64);
            protobuf.put(&scope.scope);
            for (span, len) in &scope.spans {
                protobuf.key(2, 2);
                protobuf.varint(*len as u64);
                SpanMessage(span).encode(&mut protobuf);
            }
            protobuf.put(&scope.schema_url);
        }
        protobuf.put(&self.resource.schema_url);
        debug_assert_eq!(protobuf.len(), field_len(resource_spans));
        let spans = std::mem::take(&mut self.spans);
        (datagram(prefix, &protobuf), spans)
    }
}

/// Header, prefix, base64 of the protobuf.
fn datagram(prefix: &[u8], protobuf: &[u8]) -> Vec<u8> {
    let encoded = aws_smithy_types::base64::encode(protobuf);
    let mut datagram = Vec::with_capacity(HEADER.len() + prefix.len() + encoded.len());
    datagram.extend_from_slice(HEADER);
    datagram.extend_from_slice(prefix);
    datagram.extend_from_slice(encoded.as_bytes());
    datagram
}

/// The agent exporter: packs, then sends each datagram without waiting.
#[derive(Debug)]
pub(crate) struct Agent {
    address: String,
    resource: EncodedResource,
    socket: OnceCell<UdpSocket>,
}

impl Agent {
    pub(crate) fn new(address: String) -> Self {
        Agent {
            address,
            resource: EncodedResource::default(),
            socket: OnceCell::new(),
        }
    }

    pub(crate) fn set_resource(&mut self, resource: &Resource) {
        self.resource = EncodedResource::new(resource);
    }

    /// The socket, connected to the agent: resolved and bound once, at the first export. A failure
    /// is not kept, so a later flush tries again.
    async fn socket(&self) -> Result<&UdpSocket, String> {
        self.socket
            .get_or_try_init(|| async {
                let address = match self.address.parse::<SocketAddr>() {
                    Ok(address) => address,
                    Err(_) => tokio::net::lookup_host(self.address.as_str())
                        .await
                        .ok()
                        .and_then(|mut addresses| addresses.next())
                        .ok_or_else(|| {
                            format!(
                                "the X-Ray agent's address {} does not resolve",
                                self.address
                            )
                        })?,
                };
                connect(address).map_err(|error| {
                    format!("cannot open a UDP socket to the X-Ray agent at {address}: {error}")
                })
            })
            .await
    }

    /// Sends `batch`: sampled spans as `T1S`, unsampled ones as `T1U`. Every datagram is tried; the
    /// spans of those that failed, and spans too large to send, are the loss.
    pub(crate) async fn export(&self, batch: Vec<SpanData>) -> Result<(), Loss> {
        let total = batch.len();
        let socket = match self.socket().await {
            Ok(socket) => socket,
            Err(error) => {
                return Err(Loss {
                    dropped: total,
                    error,
                });
            }
        };
        let (sampled, unsampled): (Vec<SpanData>, Vec<SpanData>) = batch
            .into_iter()
            .partition(|span| span.span_context.is_sampled());
        let mut dropped = 0;
        let mut oversized = 0;
        let mut failure: Option<io::Error> = None;
        for (spans, prefix) in [(sampled, SAMPLED), (unsampled, UNSAMPLED)] {
            if spans.is_empty() {
                continue;
            }
            let packed = pack(spans, &self.resource, prefix);
            oversized += packed.oversized;
            for (datagram, spans) in packed.datagrams {
                if let Err(error) = socket.send(&datagram) {
                    dropped += spans;
                    failure.get_or_insert(error);
                }
            }
        }
        if dropped == 0 && oversized == 0 {
            return Ok(());
        }
        let mut error = match failure {
            Some(error) => format!(
                "sending to the X-Ray agent at {} failed: {error}",
                self.address
            ),
            None => String::new(),
        };
        if oversized > 0 {
            if !error.is_empty() {
                error.push_str("; ");
            }
            error.push_str(&format!(
                "{oversized} span(s) larger than a {MAX_DATAGRAM}-byte datagram on their own"
            ));
        }
        Err(Loss {
            dropped: dropped + oversized,
            error,
        })
    }
}

fn connect(address: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = if address.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(address)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::{
        KeyValue,
        trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState},
    };
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use std::time::SystemTime;

    fn span(id: u64, attributes: Vec<KeyValue>) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(0x6900_0000_1234_5678_9abc_def0_1234_5678u128),
                SpanId::from(id),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::from(0xfeed),
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: format!("step {id}").into(),
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: opentelemetry::InstrumentationScope::builder("tracekit").build(),
        }
    }

    fn sdk_resource() -> Resource {
        Resource::builder_empty()
            .with_service_name("orders")
            .build()
    }

    fn resource() -> EncodedResource {
        EncodedResource::new(&sdk_resource())
    }

    /// The protobuf a datagram carries, checked for the agent's framing.
    fn protobuf(datagram: &[u8], prefix: &[u8]) -> Vec<u8> {
        assert!(datagram.len() <= MAX_DATAGRAM, "{} bytes", datagram.len());
        let rest = datagram.strip_prefix(HEADER).expect("the agent's header");
        let encoded = rest.strip_prefix(prefix).expect("the prefix");
        let text = std::str::from_utf8(encoded).expect("base64 is ASCII");
        aws_smithy_types::base64::decode(text).expect("standard base64")
    }

    /// The request a datagram carries.
    fn decode(datagram: &[u8], prefix: &[u8]) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest::decode(protobuf(datagram, prefix).as_slice())
            .expect("a valid request")
    }

    fn span_ids(request: &ExportTraceServiceRequest) -> Vec<u64> {
        request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| u64::from_be_bytes(s.span_id.as_slice().try_into().expect("8 bytes")))
            .collect()
    }

    #[test]
    fn the_header_and_size_limit_are_the_agents() {
        assert_eq!(HEADER, b"{\"format\":\"json\",\"version\":1}\n");
        // 30 bytes of header, 3 of prefix: 65,472 base64 characters, 49,104 bytes of protobuf.
        assert_eq!(MAX_PROTOBUF, 49_104);
        let full = datagram(SAMPLED, &vec![0xa5; MAX_PROTOBUF]);
        assert!(full.len() <= MAX_DATAGRAM, "{}", full.len());
        let over = datagram(SAMPLED, &vec![0xa5; MAX_PROTOBUF + 1]);
        assert!(over.len() > MAX_DATAGRAM, "{}", over.len());
    }

    #[test]
    fn a_datagram_carries_what_opentelemetry_proto_would_encode() {
        // Spans under two scopes, so the per-scope accounting and grouping are exercised.
        let other = opentelemetry::InstrumentationScope::builder("user")
            .with_version("1.2")
            .with_schema_url("https://opentelemetry.io/schemas/1.30.0")
            .build();
        let spans: Vec<SpanData> = (1..=20u64)
            .map(|id| {
                let mut span = span(id, vec![KeyValue::new("n", id as i64)]);
                if id % 3 == 0 {
                    span.instrumentation_scope = other.clone();
                }
                span
            })
            .collect();
        let resource = resource();
        let attributes = ResourceAttributesWithSchema::from(&sdk_resource());
        for count in 1..=spans.len() {
            let mut request = Request::new(&resource);
            let mut predicted = 0;
            for span in spans[..count].iter().cloned() {
                let length = encode::encoded_len(&SpanMessage(&span));
                predicted = request.len_with(&span.instrumentation_scope, field_len(length));
                request.push(span, length);
            }
            let (datagram, carried) = request.take(SAMPLED);
            assert_eq!(carried, count);
            let decoded = decode(&datagram, SAMPLED);
            assert_eq!(predicted, decoded.encoded_len(), "{count} spans");
            let expected = ExportTraceServiceRequest {
                resource_spans:
                    opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope(
                        spans[..count].to_vec(),
                        &attributes,
                    ),
            };
            assert_eq!(decoded, expected, "{count} spans");
            assert_eq!(
                protobuf(&datagram, SAMPLED),
                expected.encode_to_vec(),
                "{count} spans: byte for byte"
            );
        }
    }

    #[test]
    fn ten_thousand_spans_pack_into_full_valid_datagrams() {
        let spans: Vec<SpanData> = (1..=10_000u64)
            .map(|id| span(id, vec![KeyValue::new("step", id as i64)]))
            .collect();
        let packed = pack(spans, &resource(), SAMPLED);
        assert_eq!(packed.oversized, 0);
        let mut seen = Vec::new();
        for (index, (datagram, count)) in packed.datagrams.iter().enumerate() {
            let request = decode(datagram, SAMPLED);
            let ids = span_ids(&request);
            assert_eq!(ids.len(), *count);
            // Every datagram but the last is full: the next span would not have fitted.
            if index + 1 < packed.datagrams.len() {
                assert!(datagram.len() > MAX_DATAGRAM - 300, "{}", datagram.len());
            }
            seen.extend(ids);
        }
        assert_eq!(
            seen,
            (1..=10_000u64).collect::<Vec<_>>(),
            "every span once, in order"
        );
        assert!(
            packed.datagrams.len() < 10_000 / 100,
            "{}",
            packed.datagrams.len()
        );
    }

    #[test]
    fn a_span_with_hundreds_of_attributes_fits_or_is_dropped_whole() {
        let wide = |n: usize| -> Vec<KeyValue> {
            (0..n)
                .map(|i| KeyValue::new(format!("attribute.{i}"), "x".repeat(100)))
                .collect()
        };
        // ~300 attributes of ~115 bytes: ~35 KB, one datagram each.
        let spans = vec![span(1, wide(300)), span(2, wide(300)), span(3, vec![])];
        let packed = pack(spans, &resource(), SAMPLED);
        assert_eq!(packed.oversized, 0);
        assert_eq!(
            packed.datagrams.len(),
            2,
            "two wide spans never share a datagram"
        );
        let ids: Vec<u64> = packed
            .datagrams
            .iter()
            .flat_map(|(d, _)| span_ids(&decode(d, SAMPLED)))
            .collect();
        assert_eq!(ids, [1, 2, 3]);

        // ~600 attributes: ~70 KB, larger than any datagram. Dropped and counted; the rest go.
        let spans = vec![span(1, vec![]), span(2, wide(600)), span(3, vec![])];
        let packed = pack(spans, &resource(), UNSAMPLED);
        assert_eq!(packed.oversized, 1);
        let ids: Vec<u64> = packed
            .datagrams
            .iter()
            .flat_map(|(d, _)| span_ids(&decode(d, UNSAMPLED)))
            .collect();
        assert_eq!(ids, [1, 3]);
    }

    #[test]
    fn spans_of_one_scope_share_one_scope_spans() {
        let mut spans: Vec<SpanData> = (1..=4u64).map(|id| span(id, vec![])).collect();
        spans[2].instrumentation_scope =
            opentelemetry::InstrumentationScope::builder("user").build();
        let packed = pack(spans, &resource(), SAMPLED);
        let request = decode(&packed.datagrams[0].0, SAMPLED);
        assert_eq!(request.resource_spans.len(), 1);
        let scopes: Vec<(&str, usize)> = request.resource_spans[0]
            .scope_spans
            .iter()
            .map(|s| {
                (
                    s.scope.as_ref().map_or("", |s| s.name.as_str()),
                    s.spans.len(),
                )
            })
            .collect();
        assert_eq!(scopes, [("tracekit", 3), ("user", 1)]);
        let service = request.resource_spans[0]
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"));
        assert!(service.is_some(), "the resource travels in every datagram");
    }

    #[tokio::test]
    async fn sampled_and_unsampled_spans_go_in_datagrams_of_their_own() {
        let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut agent = Agent::new(receiver.local_addr().expect("address").to_string());
        agent.set_resource(
            &Resource::builder_empty()
                .with_service_name("orders")
                .build(),
        );
        let mut unsampled = span(2, vec![]);
        unsampled.span_context = SpanContext::new(
            unsampled.span_context.trace_id(),
            SpanId::from(2),
            TraceFlags::default(),
            false,
            TraceState::default(),
        );
        agent
            .export(vec![span(1, vec![]), unsampled, span(3, vec![])])
            .await
            .expect("sent");
        let mut buffer = vec![0; 70_000];
        let mut prefixes = Vec::new();
        for _ in 0..2 {
            let length = receiver.recv(&mut buffer).expect("a datagram");
            let datagram = &buffer[..length];
            let prefix = &datagram[HEADER.len()..HEADER.len() + 3];
            let ids = span_ids(&decode(datagram, prefix));
            prefixes.push((String::from_utf8_lossy(prefix).into_owned(), ids));
        }
        assert_eq!(
            prefixes,
            [("T1S".to_owned(), vec![1, 3]), ("T1U".to_owned(), vec![2])]
        );
    }

    #[tokio::test]
    async fn an_unresolvable_agent_loses_the_batch_and_says_why() {
        let agent = Agent::new("no-such-host.invalid:2000".into());
        let loss = agent
            .export(vec![span(1, vec![]), span(2, vec![])])
            .await
            .expect_err("nothing can be sent");
        assert_eq!(loss.dropped, 2);
        assert!(loss.error.contains("does not resolve"), "{}", loss.error);
    }
}
