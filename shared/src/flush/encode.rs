//! OTLP protobuf written straight from a span's parts ([`SpanData`], or tracekit's own span
//! records), for the agent and OTLP/HTTP paths.
//!
//! opentelemetry-proto's way is to convert each span into its generated message types (every id, name,
//! key and string value copied into a new allocation) and let prost encode those. On the agent path
//! that conversion and its teardown were most of what an export cost (`make bench`, callgrind:
//! about 96,000 of the 187,000 instructions tracekit added per invocation of 11 spans). This module
//! writes the same bytes from the spans as they are, with no allocation but the output buffer. The
//! property test below holds it byte for byte equal to opentelemetry-proto's conversion encoded by
//! prost, for any span.
//!
//! The encoding follows prost's rules for proto3: fields in the order of their numbers, scalars left
//! out when they hold their default, message fields and `oneof` members always written.
//! [OTLP trace.proto](https://github.com/open-telemetry/opentelemetry-proto/blob/main/opentelemetry/proto/trace/v1/trace.proto)

use opentelemetry::{
    Array, KeyValue, Value,
    trace::{SpanContext, SpanId, SpanKind, Status},
};
use opentelemetry_sdk::trace::SpanData;
use prost::encoding::encoded_len_varint;
use std::time::{SystemTime, UNIX_EPOCH};

/// Protobuf wire types.
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

/// OTLP's bits in `Span.flags` and `Link.flags` above the W3C trace flags: whether the parent (or the
/// linked span) being remote is known, and whether it is.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

/// `value` as a protobuf varint: the bytes, and how many of them are used.
fn varint_bytes(mut value: u64) -> ([u8; 10], usize) {
    let mut buffer = [0u8; 10];
    let mut length = 0;
    while value >= 0x80 {
        buffer[length] = (value as u8) | 0x80;
        value >>= 7;
        length += 1;
    }
    buffer[length] = value as u8;
    (buffer, length + 1)
}

/// Where encoded bytes go: a buffer, or a counter that only measures them.
pub(crate) trait Out {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);

    /// A length-delimited message field: its key, its length, then the message.
    fn message(&mut self, field: u32, message: &impl Message);

    fn varint(&mut self, value: u64) {
        let (buffer, length) = varint_bytes(value);
        self.put(&buffer[..length]);
    }

    fn key(&mut self, field: u32, wire_type: u32) {
        self.varint(u64::from((field << 3) | wire_type));
    }

    /// A `bytes` or `string` field, left out when empty.
    fn bytes(&mut self, field: u32, value: &[u8]) {
        if !value.is_empty() {
            self.bytes_always(field, value);
        }
    }

    /// A `bytes` or `string` field written even when empty (a `oneof` member).
    fn bytes_always(&mut self, field: u32, value: &[u8]) {
        self.key(field, LEN);
        self.varint(value.len() as u64);
        self.put(value);
    }

    /// A `fixed64` field, left out when zero.
    fn fixed64(&mut self, field: u32, value: u64) {
        if value != 0 {
            self.key(field, FIXED64);
            self.put(&value.to_le_bytes());
        }
    }

    /// A `fixed32` field, left out when zero.
    fn fixed32(&mut self, field: u32, value: u32) {
        if value != 0 {
            self.key(field, FIXED32);
            self.put(&value.to_le_bytes());
        }
    }

    /// A `uint32` or enum field, left out when zero.
    fn uint(&mut self, field: u32, value: u32) {
        if value != 0 {
            self.key(field, VARINT);
            self.varint(u64::from(value));
        }
    }
}

impl Out for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    // Byte by byte: most varints here are one or two bytes (keys, lengths), where a slice copy
    // costs more than the bytes.
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.push(value as u8);
    }

    // Encoded once: the length is written after the message, into the byte left for it. Most
    // messages here (attributes, values, status) are shorter than 128 bytes, whose length takes
    // that one byte; a longer one moves its message up to make room.
    fn message(&mut self, field: u32, message: &impl Message) {
        self.key(field, LEN);
        let at = self.len();
        self.push(0);
        message.encode(self);
        let length = self.len() - at - 1;
        if length < 0x80 {
            self[at] = length as u8;
        } else {
            let (prefix, used) = varint_bytes(length as u64);
            self.splice(at..=at, prefix[..used].iter().copied());
        }
    }
}

/// Counts the bytes an encoding would take.
#[derive(Debug, Default)]
pub(crate) struct Count(pub(crate) usize);

impl Out for Count {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }

    fn varint(&mut self, value: u64) {
        self.0 += encoded_len_varint(value);
    }

    fn message(&mut self, field: u32, message: &impl Message) {
        let length = encoded_len(message);
        self.0 +=
            encoded_len_varint(u64::from(field << 3)) + encoded_len_varint(length as u64) + length;
    }
}

/// A protobuf message tracekit writes.
pub(crate) trait Message {
    fn encode(&self, out: &mut impl Out);
}

/// The length of `message`'s encoding.
pub(crate) fn encoded_len(message: &impl Message) -> usize {
    let mut count = Count::default();
    message.encode(&mut count);
    count.0
}

/// `opentelemetry.proto.trace.v1.Span`, from a [`SpanData`].
pub(crate) struct SpanMessage<'a>(pub(crate) &'a SpanData);

impl Message for SpanMessage<'_> {
    fn encode(&self, out: &mut impl Out) {
        let span = self.0;
        SpanParts {
            context: &span.span_context,
            parent_span_id: span.parent_span_id,
            parent_span_is_remote: span.parent_span_is_remote,
            name: &span.name,
            kind: &span.span_kind,
            start_time: span.start_time,
            end_time: span.end_time,
            attributes: &span.attributes,
            dropped_attributes: span.dropped_attributes_count,
            events: &span.events.events,
            dropped_events: span.events.dropped_count,
            links: &span.links.links,
            dropped_links: span.links.dropped_count,
            status: &span.status,
        }
        .encode(out);
    }
}

/// `opentelemetry.proto.trace.v1.Span`, from a span's parts wherever they are kept: a
/// [`SpanData`] ([`SpanMessage`]) or tracekit's own span records, which are encoded as they end
/// and never become a `SpanData`.
pub(crate) struct SpanParts<'a> {
    pub(crate) context: &'a SpanContext,
    pub(crate) parent_span_id: SpanId,
    pub(crate) parent_span_is_remote: bool,
    pub(crate) name: &'a str,
    pub(crate) kind: &'a SpanKind,
    pub(crate) start_time: SystemTime,
    pub(crate) end_time: SystemTime,
    pub(crate) attributes: &'a [KeyValue],
    pub(crate) dropped_attributes: u32,
    pub(crate) events: &'a [opentelemetry::trace::Event],
    pub(crate) dropped_events: u32,
    pub(crate) links: &'a [opentelemetry::trace::Link],
    pub(crate) dropped_links: u32,
    pub(crate) status: &'a Status,
}

impl Message for SpanParts<'_> {
    fn encode(&self, out: &mut impl Out) {
        let context = self.context;
        out.bytes(1, &context.trace_id().to_bytes());
        out.bytes(2, &context.span_id().to_bytes());
        out.bytes(3, context.trace_state().header().as_bytes());
        if self.parent_span_id != SpanId::INVALID {
            out.bytes(4, &self.parent_span_id.to_bytes());
        }
        out.bytes(5, self.name.as_bytes());
        out.uint(6, kind(self.kind));
        out.fixed64(7, nanos(self.start_time));
        out.fixed64(8, nanos(self.end_time));
        for attribute in self.attributes {
            out.message(9, &KeyValueMessage(attribute));
        }
        out.uint(10, self.dropped_attributes);
        for event in self.events {
            out.message(11, &EventMessage(event));
        }
        out.uint(12, self.dropped_events);
        for link in self.links {
            out.message(13, &LinkMessage(link));
        }
        out.uint(14, self.dropped_links);
        out.message(15, &StatusMessage(self.status));
        out.fixed32(16, flags(context, self.parent_span_is_remote));
    }
}

/// `Span.flags` (and `Link.flags`): the W3C trace flags, and whether the context is remote.
fn flags(context: &SpanContext, remote: bool) -> u32 {
    let mut flags = u32::from(context.trace_flags().to_u8()) | HAS_IS_REMOTE;
    if remote {
        flags |= IS_REMOTE;
    }
    flags
}

fn kind(kind: &SpanKind) -> u32 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// Nanoseconds since the Unix epoch; zero for a time before it, as opentelemetry-proto writes it.
fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}

struct KeyValueMessage<'a>(&'a KeyValue);

impl Message for KeyValueMessage<'_> {
    fn encode(&self, out: &mut impl Out) {
        out.bytes(1, self.0.key.as_str().as_bytes());
        out.message(2, &AnyValueMessage(&self.0.value));
    }
}

/// `AnyValue`: its `value` is a `oneof`, so even a default value is written.
struct AnyValueMessage<'a>(&'a Value);

impl Message for AnyValueMessage<'_> {
    fn encode(&self, out: &mut impl Out) {
        match self.0 {
            Value::String(value) => out.bytes_always(1, value.as_str().as_bytes()),
            Value::Bool(value) => {
                out.key(2, VARINT);
                out.varint(u64::from(*value));
            }
            Value::I64(value) => {
                out.key(3, VARINT);
                out.varint(*value as u64);
            }
            Value::F64(value) => {
                out.key(4, FIXED64);
                out.put(&value.to_bits().to_le_bytes());
            }
            Value::Array(array) => out.message(5, &ArrayMessage(array)),
            // A kind of value newer than this encoder: an empty AnyValue rather than a panic.
            _ => {}
        }
    }
}

struct ArrayMessage<'a>(&'a Array);

impl Message for ArrayMessage<'_> {
    fn encode(&self, out: &mut impl Out) {
        match self.0 {
            Array::Bool(values) => {
                for value in values {
                    out.message(1, &AnyValueMessage(&Value::Bool(*value)));
                }
            }
            Array::I64(values) => {
                for value in values {
                    out.message(1, &AnyValueMessage(&Value::I64(*value)));
                }
            }
            Array::F64(values) => {
                for value in values {
                    out.message(1, &AnyValueMessage(&Value::F64(*value)));
                }
            }
            Array::String(values) => {
                for value in values {
                    out.message(1, &StringAnyValue(value.as_str()));
                }
            }
            _ => {}
        }
    }
}

/// A string `AnyValue` without building a `Value` for it.
struct StringAnyValue<'a>(&'a str);

impl Message for StringAnyValue<'_> {
    fn encode(&self, out: &mut impl Out) {
        out.bytes_always(1, self.0.as_bytes());
    }
}

struct EventMessage<'a>(&'a opentelemetry::trace::Event);

impl Message for EventMessage<'_> {
    fn encode(&self, out: &mut impl Out) {
        let event = self.0;
        out.fixed64(1, nanos(event.timestamp));
        out.bytes(2, event.name.as_bytes());
        for attribute in &event.attributes {
            out.message(3, &KeyValueMessage(attribute));
        }
        out.uint(4, event.dropped_attributes_count);
    }
}

struct LinkMessage<'a>(&'a opentelemetry::trace::Link);

impl Message for LinkMessage<'_> {
    fn encode(&self, out: &mut impl Out) {
        let link = self.0;
        let context = &link.span_context;
        out.bytes(1, &context.trace_id().to_bytes());
        out.bytes(2, &context.span_id().to_bytes());
        out.bytes(3, context.trace_state().header().as_bytes());
        for attribute in &link.attributes {
            out.message(4, &KeyValueMessage(attribute));
        }
        out.uint(5, link.dropped_attributes_count);
        out.fixed32(6, flags(context, context.is_remote()));
    }
}

struct StatusMessage<'a>(&'a Status);

impl Message for StatusMessage<'_> {
    fn encode(&self, out: &mut impl Out) {
        let (message, code) = match self.0 {
            Status::Unset => ("", 0),
            Status::Ok => ("", 1),
            Status::Error { description } => (description.as_ref(), 2),
        };
        out.bytes(2, message.as_bytes());
        out.uint(3, code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Event, Link, SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry_proto::tonic::trace::v1::Span as ProtoSpan;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use proptest::prelude::*;
    use prost::Message as _;
    use std::time::Duration;

    fn value() -> impl Strategy<Value = Value> {
        let text = "[a-zé\u{1F600} .:/-]{0,40}";
        prop_oneof![
            text.prop_map(|s: String| Value::from(s)),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::I64),
            // NaN never equals itself; the bytes would still match, the messages would not.
            any::<f64>()
                .prop_filter("comparable", |f| !f.is_nan())
                .prop_map(Value::F64),
            prop::collection::vec(any::<bool>(), 0..4).prop_map(|v| Value::Array(v.into())),
            prop::collection::vec(any::<i64>(), 0..4).prop_map(|v| Value::Array(v.into())),
            prop::collection::vec(-1e9f64..1e9, 0..4).prop_map(|v| Value::Array(v.into())),
            prop::collection::vec(text, 0..4).prop_map(|v| Value::Array(
                v.into_iter()
                    .map(opentelemetry::StringValue::from)
                    .collect::<Vec<_>>()
                    .into()
            )),
        ]
    }

    fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
        prop::collection::vec(
            ("[a-z._]{0,20}", value()).prop_map(|(k, v)| KeyValue::new(k, v)),
            0..6,
        )
    }

    fn context() -> impl Strategy<Value = SpanContext> {
        (
            any::<u128>(),
            any::<u64>(),
            any::<u8>(),
            any::<bool>(),
            prop::option::of("[a-z]{1,8}=[a-z0-9]{1,8}"),
        )
            .prop_map(|(trace, span, flags, remote, state)| {
                let state = state
                    .and_then(|s| s.parse::<TraceState>().ok())
                    .unwrap_or_default();
                SpanContext::new(
                    TraceId::from(trace),
                    SpanId::from(span),
                    TraceFlags::new(flags),
                    remote,
                    state,
                )
            })
    }

    fn time() -> impl Strategy<Value = SystemTime> {
        // Zero too: a time at the epoch is left out of the encoding.
        (0u64..2_000_000_000_000_000_000).prop_map(|n| UNIX_EPOCH + Duration::from_nanos(n))
    }

    prop_compose! {
        fn span_data()(
            context in context(),
            parent in prop_oneof![Just(0u64), any::<u64>()],
            parent_remote in any::<bool>(),
            kind in 0..5u8,
            name in "[a-zA-Z /.é]{0,30}",
            start in time(),
            end in time(),
            attributes in attributes(),
            dropped in prop_oneof![Just(0u32), any::<u32>()],
            events in prop::collection::vec((time(), "[a-z ]{0,12}", attributes(), 0..3u32), 0..4),
            dropped_events in 0..3u32,
            links in prop::collection::vec((context(), attributes(), 0..3u32), 0..3),
            dropped_links in 0..3u32,
            status in prop_oneof![
                Just(Status::Unset),
                Just(Status::Ok),
                "[a-z ]{0,20}".prop_map(Status::error),
            ],
        ) -> SpanData {
            let kind = [SpanKind::Internal, SpanKind::Server, SpanKind::Client, SpanKind::Producer, SpanKind::Consumer][kind as usize].clone();
            let mut span_events = SpanEvents::default();
            span_events.events = events
                .into_iter()
                .map(|(at, name, attributes, dropped)| Event::new(name, at, attributes, dropped))
                .collect();
            span_events.dropped_count = dropped_events;
            let mut span_links = SpanLinks::default();
            span_links.links = links
                .into_iter()
                .map(|(context, attributes, dropped)| Link::new(context, attributes, dropped))
                .collect();
            span_links.dropped_count = dropped_links;
            SpanData {
                span_context: context,
                parent_span_id: SpanId::from(parent),
                parent_span_is_remote: parent_remote,
                span_kind: kind,
                name: name.into(),
                start_time: start,
                end_time: end,
                attributes,
                dropped_attributes_count: dropped,
                events: span_events,
                links: span_links,
                status,
                instrumentation_scope: Default::default(),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// tracekit's encoding of a span is opentelemetry-proto's conversion encoded by prost, byte
        /// for byte, and decodes to the same message.
        #[test]
        fn a_span_encodes_as_opentelemetry_proto_encodes_it(span in span_data()) {
            let mut ours = Vec::new();
            SpanMessage(&span).encode(&mut ours);
            prop_assert_eq!(encoded_len(&SpanMessage(&span)), ours.len());
            let expected = ProtoSpan::from(span);
            let decoded = ProtoSpan::decode(ours.as_slice()).expect("valid protobuf");
            prop_assert_eq!(&decoded, &expected);
            prop_assert_eq!(ours, expected.encode_to_vec());
        }
    }

    #[test]
    fn varints_take_the_bytes_prost_gives_them() {
        for value in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut ours = Vec::new();
            ours.varint(value);
            let mut theirs = Vec::new();
            prost::encoding::encode_varint(value, &mut theirs);
            assert_eq!(ours, theirs, "{value}");
            assert_eq!(ours.len(), encoded_len_varint(value), "{value}");
        }
    }
}
