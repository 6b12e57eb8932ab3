//! Spans packed into OTLP `ExportTraceServiceRequest`s by their exact encoded size: the agent's
//! datagrams (at most 49,104 bytes of protobuf each) and the requests to X-Ray's OTLP endpoint (at
//! most 10,000 spans and 5 MB each, 200 KB per span) are both filled here, with
//! [`encode`](super::encode)'s lengths, so a limit is met by construction and never by a retry.
//!
//! A span keeps its order within its scope and never straddles two requests; one too large for any
//! request (or over the per-span limit) is left out and counted, never cut into invalid protobuf.

use super::encode::{self, Message as _, Out as _, SpanMessage};
use opentelemetry::InstrumentationScope;
use opentelemetry_proto::tonic::{
    common::v1::InstrumentationScope as ProtoScope,
    resource::v1::Resource as ProtoResource,
    trace::v1::{ResourceSpans, ScopeSpans},
};
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_sdk::{Resource, trace::SpanData};
use prost::{Message, encoding::encoded_len_varint};

/// What one request may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Encoded bytes of the whole `ExportTraceServiceRequest`.
    pub(crate) max_bytes: usize,
    /// Spans.
    pub(crate) max_spans: usize,
    /// Encoded bytes of one span.
    pub(crate) max_span_bytes: usize,
}

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

/// A span packing can place: its scope, the length of its `Span` message, and the message.
pub(crate) trait Packable: Copy {
    fn is_sampled(&self) -> bool;
    fn scope(&self) -> &InstrumentationScope;
    fn encoded_len(&self) -> usize;
    fn encode(&self, out: &mut Vec<u8>);
}

impl Packable for &SpanData {
    fn is_sampled(&self) -> bool {
        self.span_context.is_sampled()
    }

    fn scope(&self) -> &InstrumentationScope {
        &self.instrumentation_scope
    }

    fn encoded_len(&self) -> usize {
        encode::encoded_len(&SpanMessage(self))
    }

    fn encode(&self, out: &mut Vec<u8>) {
        SpanMessage(self).encode(out);
    }
}

/// Spans packed into requests. The requests borrow the spans: packing moves no span (a `SpanData`
/// is hundreds of bytes, and the agent path packs every span of every flush).
#[derive(Debug)]
pub(crate) struct Packed<'a, S> {
    /// Requests within the limits, in order.
    pub(crate) requests: Vec<Request<'a, S>>,
    /// Spans left out: over the per-span limit, or too large for a request on their own.
    pub(crate) oversized: usize,
}

/// Packs `spans` into as few requests as `limits` allow.
pub(crate) fn pack<'a, S: Packable>(
    spans: impl IntoIterator<Item = S>,
    resource: &'a EncodedResource,
    limits: Limits,
) -> Packed<'a, S> {
    let mut packed = Packed {
        requests: Vec::new(),
        oversized: 0,
    };
    let mut request = Request::new(resource);
    for span in spans {
        let length = span.encoded_len();
        if length > limits.max_span_bytes {
            packed.oversized += 1;
            continue;
        }
        let field = field_len(length);
        if request.spans >= limits.max_spans || request.len_with(span, field) > limits.max_bytes {
            if !request.is_empty() {
                packed
                    .requests
                    .push(std::mem::replace(&mut request, Request::new(resource)));
            }
            if request.len_with(span, field) > limits.max_bytes {
                packed.oversized += 1;
                continue;
            }
        }
        request.push(span, length);
    }
    if !request.is_empty() {
        packed.requests.push(request);
    }
    packed
}

/// Bytes a length-delimited field of `len` bytes takes: its key (every field number here is below
/// 16, so one byte), the length, and the value.
fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// One `ExportTraceServiceRequest`: one resource, one `ScopeSpans` per scope, with its encoded
/// length kept exactly as spans are added.
#[derive(Debug)]
pub(crate) struct Request<'a, S> {
    resource: &'a EncodedResource,
    scopes: Vec<Scope<S>>,
    spans: usize,
}

/// The spans of one instrumentation scope, and the scope's own fields, encoded.
#[derive(Debug)]
struct Scope<S> {
    /// The `scope` field of `ScopeSpans`.
    scope: Vec<u8>,
    /// Its `schema_url` field.
    schema_url: Vec<u8>,
    /// Each span with the length of its message.
    spans: Vec<(S, usize)>,
    /// Encoded length of the `ScopeSpans` message.
    len: usize,
}

impl<S: Packable> Scope<S> {
    /// The scope of `first`, holding no span yet.
    fn new(first: S) -> Self {
        let key = first.scope();
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
            len: scope.len() + schema_url.len(),
            scope,
            schema_url,
            spans: Vec::new(),
        }
    }
}

/// The same scope: most often the very same one (every span of tracekit's names it).
fn same(a: &InstrumentationScope, b: &InstrumentationScope) -> bool {
    std::ptr::eq(a, b) || a == b
}

impl<S: Packable> Scope<S> {
    fn key(&self) -> Option<&InstrumentationScope> {
        self.spans.first().map(|(span, _)| span.scope())
    }
}

impl<'a, S: Packable> Request<'a, S> {
    fn new(resource: &'a EncodedResource) -> Self {
        Request {
            resource,
            scopes: Vec::new(),
            spans: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.spans == 0
    }

    /// Spans in the request.
    pub(crate) fn spans(&self) -> usize {
        self.spans
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

    /// Encoded length of the request.
    #[cfg(test)]
    fn encoded_len(&self) -> usize {
        field_len(self.resource_spans_len())
    }

    /// The request's encoded length once a span field of `span_field` bytes is added under `scope`.
    fn len_with(&self, span: S, span_field: usize) -> usize {
        let current = self.resource_spans_len();
        let scope = span.scope();
        let known = self
            .scopes
            .iter()
            .find(|entry| entry.key().is_some_and(|key| same(key, scope)));
        let resource_spans = match known {
            Some(entry) => current - field_len(entry.len) + field_len(entry.len + span_field),
            None => current + field_len(Scope::new(span).len + span_field),
        };
        field_len(resource_spans)
    }

    fn push(&mut self, span: S, len: usize) {
        let index = match self
            .scopes
            .iter()
            .position(|entry| entry.key().is_some_and(|key| same(key, span.scope())))
        {
            Some(index) => index,
            None => {
                self.scopes.push(Scope::new(span));
                self.scopes.len() - 1
            }
        };
        let scope = &mut self.scopes[index];
        scope.len += field_len(len);
        scope.spans.push((span, len));
        self.spans += 1;
    }

    /// The request, encoded.
    pub(crate) fn protobuf(&self) -> Vec<u8> {
        let resource_spans = self.resource_spans_len();
        let mut protobuf = Vec::with_capacity(field_len(resource_spans));
        // ExportTraceServiceRequest.resource_spans (1) → ResourceSpans: resource (1), scope_spans
        // (2), schema_url (3) → ScopeSpans: scope (1), spans (2), schema_url (3).
        protobuf.key(1, 2);
        protobuf.varint(resource_spans as u64);
        protobuf.put(&self.resource.resource);
        for scope in &self.scopes {
            protobuf.key(2, 2);
            protobuf.varint(scope.len as u64);
            protobuf.put(&scope.scope);
            for (span, len) in &scope.spans {
                protobuf.key(2, 2);
                protobuf.varint(*len as u64);
                span.encode(&mut protobuf);
            }
            protobuf.put(&scope.schema_url);
        }
        protobuf.put(&self.resource.schema_url);
        debug_assert_eq!(protobuf.len(), field_len(resource_spans));
        protobuf
    }

    /// The request's spans, grouped by scope (the order the encoding has them in).
    pub(crate) fn spans_by_scope(&self) -> impl Iterator<Item = S> + '_ {
        self.scopes
            .iter()
            .flat_map(|scope| scope.spans.iter().map(|(span, _)| *span))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_spans::{sdk_resource, span, span_ids};
    use opentelemetry::KeyValue;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

    #[test]
    fn a_request_is_what_opentelemetry_proto_would_encode() {
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
        let resource = EncodedResource::new(&sdk_resource());
        let attributes = ResourceAttributesWithSchema::from(&sdk_resource());
        for count in 1..=spans.len() {
            let mut request = Request::new(&resource);
            let mut predicted = 0;
            for span in &spans[..count] {
                let length = encode::encoded_len(&SpanMessage(span));
                predicted = request.len_with(span, field_len(length));
                request.push(span, length);
            }
            assert_eq!(request.spans(), count);
            assert_eq!(predicted, request.encoded_len(), "{count} spans");
            let protobuf = request.protobuf();
            let decoded =
                ExportTraceServiceRequest::decode(protobuf.as_slice()).expect("a valid request");
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
                protobuf,
                expected.encode_to_vec(),
                "{count} spans: byte for byte"
            );
        }
    }

    /// X-Ray's OTLP endpoint's limits, scaled down so the test stays small: every request is within
    /// its byte and span limits, every span that fits arrives once and in order, and a span over
    /// the per-span limit is counted.
    #[test]
    fn requests_keep_to_every_limit() {
        let limits = Limits {
            max_bytes: 4_000,
            max_spans: 7,
            max_span_bytes: 1_000,
        };
        let spans: Vec<SpanData> = (1..=100u64)
            .map(|id| {
                let width = if id == 50 {
                    2_000
                } else {
                    (id as usize % 9) * 60
                };
                span(id, vec![KeyValue::new("padding", "x".repeat(width))])
            })
            .collect();
        let resource = EncodedResource::new(&sdk_resource());
        let packed = pack(&spans, &resource, limits);
        assert_eq!(packed.oversized, 1, "span 50 is over the per-span limit");
        let mut seen = Vec::new();
        for request in &packed.requests {
            let protobuf = request.protobuf();
            assert!(
                protobuf.len() <= limits.max_bytes,
                "{} bytes",
                protobuf.len()
            );
            let decoded =
                ExportTraceServiceRequest::decode(protobuf.as_slice()).expect("a valid request");
            let carried = span_ids(&decoded);
            assert!(carried.len() <= limits.max_spans, "{} spans", carried.len());
            assert_eq!(carried.len(), request.spans());
            seen.extend(carried);
        }
        let expected: Vec<u64> = (1..=100u64).filter(|id| *id != 50).collect();
        assert_eq!(seen, expected);
        let spans: Vec<u64> = packed
            .requests
            .iter()
            .flat_map(Request::spans_by_scope)
            .map(|span| u64::from_be_bytes(span.span_context.span_id().to_bytes()))
            .collect();
        assert_eq!(spans, expected, "spans_by_scope gives back what was packed");
    }
}
