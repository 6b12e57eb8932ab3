//! Ended spans kept as OTLP `Span` messages, encoded the moment they end.
//!
//! On the agent and OTLP/HTTP paths a span is only ever read once more, to be encoded: tracekit's
//! own span records are encoded as they close (their attribute, event and link storage then goes
//! back to the record for the next span), and spans made through the OpenTelemetry SDK are encoded
//! as the span processor receives them. Packing a request copies the bytes; nothing is built,
//! moved or dropped per span at flush.

use super::encode::{Message, SpanMessage, SpanParts};
use super::pack::Packable;
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::trace::SpanData;
use std::time::SystemTime;

/// Encoded spans, in the order they ended.
#[derive(Debug, Default)]
pub(crate) struct Encoded {
    /// The spans' messages, back to back.
    bytes: Vec<u8>,
    spans: Vec<Entry>,
    /// The scopes the spans name: a handful per process (tracekit's, and one per library that
    /// makes spans through the OpenTelemetry API).
    scopes: Vec<InstrumentationScope>,
}

/// Where one span's message is, and what the flush needs to know of it without decoding it.
#[derive(Debug, Clone, Copy)]
struct Entry {
    start: usize,
    end: usize,
    scope: usize,
    sampled: bool,
    end_time: SystemTime,
}

/// One encoded span, as packing reads it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EncodedSpan<'a> {
    message: &'a [u8],
    scope: &'a InstrumentationScope,
    sampled: bool,
}

impl Packable for EncodedSpan<'_> {
    fn is_sampled(&self) -> bool {
        self.sampled
    }

    fn scope(&self) -> &InstrumentationScope {
        self.scope
    }

    fn encoded_len(&self) -> usize {
        self.message.len()
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.message);
    }
}

impl Encoded {
    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// When the span that ended first ended.
    pub(crate) fn oldest_end(&self) -> Option<SystemTime> {
        self.spans.first().map(|entry| entry.end_time)
    }

    /// Adds a span from its parts.
    pub(crate) fn push_parts(
        &mut self,
        parts: &SpanParts<'_>,
        scope: &InstrumentationScope,
        sampled: bool,
    ) {
        self.push(parts, scope, sampled, parts.end_time);
    }

    /// Adds a span the SDK ended.
    pub(crate) fn push_data(&mut self, span: &SpanData) {
        self.push(
            &SpanMessage(span),
            &span.instrumentation_scope,
            span.span_context.is_sampled(),
            span.end_time,
        );
    }

    fn push(
        &mut self,
        message: &impl Message,
        scope: &InstrumentationScope,
        sampled: bool,
        end_time: SystemTime,
    ) {
        let start = self.bytes.len();
        message.encode(&mut self.bytes);
        let scope = match self.scopes.iter().position(|known| known == scope) {
            Some(index) => index,
            None => {
                self.scopes.push(scope.clone());
                self.scopes.len() - 1
            }
        };
        self.spans.push(Entry {
            start,
            end: self.bytes.len(),
            scope,
            sampled,
            end_time,
        });
    }

    /// The spans, in the order they ended.
    pub(crate) fn iter(&self) -> impl Iterator<Item = EncodedSpan<'_>> + Clone {
        self.spans.iter().map(|entry| EncodedSpan {
            message: &self.bytes[entry.start..entry.end],
            scope: &self.scopes[entry.scope],
            sampled: entry.sampled,
        })
    }

    /// Empties the store, keeping its allocations.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
        self.scopes.clear();
    }

    /// Moves the first `count` spans into `into` (emptied first), keeping the rest here.
    pub(crate) fn move_front(&mut self, count: usize, into: &mut Encoded) {
        into.clear();
        let count = count.min(self.spans.len());
        let Some(split) = self.spans.get(count).map(|entry| entry.start) else {
            // All of them.
            std::mem::swap(self, into);
            return;
        };
        into.bytes.extend_from_slice(&self.bytes[..split]);
        into.scopes.extend(self.scopes.iter().cloned());
        into.spans.extend_from_slice(&self.spans[..count]);
        self.bytes.drain(..split);
        self.spans.drain(..count);
        for entry in &mut self.spans {
            entry.start -= split;
            entry.end -= split;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{
        SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};

    fn span(n: u64, scope: &str) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(7u128),
                SpanId::from(n),
                TraceFlags::new((n % 2) as u8),
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: format!("span {n}").into(),
            start_time: SystemTime::UNIX_EPOCH,
            end_time: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(n),
            attributes: vec![opentelemetry::KeyValue::new("n", n as i64)],
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder(scope.to_owned()).build(),
        }
    }

    fn messages(store: &Encoded) -> Vec<(Vec<u8>, String, bool)> {
        store
            .iter()
            .map(|span| {
                let mut out = Vec::new();
                span.encode(&mut out);
                (out, span.scope().name().to_owned(), span.is_sampled())
            })
            .collect()
    }

    #[test]
    fn spans_keep_their_message_scope_and_sampling_when_the_front_moves() {
        let spans: Vec<SpanData> = (1..=5)
            .map(|n| span(n, if n == 3 { "other" } else { "tracekit" }))
            .collect();
        let mut store = Encoded::default();
        spans.iter().for_each(|span| store.push_data(span));
        let expected: Vec<(Vec<u8>, String, bool)> = spans
            .iter()
            .map(|span| {
                let mut out = Vec::new();
                SpanMessage(span).encode(&mut out);
                (
                    out,
                    span.instrumentation_scope.name().to_owned(),
                    span.span_context.is_sampled(),
                )
            })
            .collect();
        assert_eq!(messages(&store), expected);
        assert_eq!(store.oldest_end(), Some(spans[0].end_time));

        let mut front = Encoded::default();
        store.move_front(2, &mut front);
        assert_eq!(messages(&front), expected[..2]);
        assert_eq!(messages(&store), expected[2..]);
        assert_eq!(store.oldest_end(), Some(spans[2].end_time));

        store.move_front(10, &mut front);
        assert_eq!(messages(&front), expected[2..]);
        assert!(store.is_empty());
        assert_eq!(store.oldest_end(), None);
    }
}
