//! Trace context in and out: the composite propagator and the invocation's parent.
//!
//! The composite propagator (built from `OTEL_PROPAGATORS`) is what tracekit injects into outgoing
//! carriers (SQS message attributes, HTTP headers) and extracts from incoming ones. The invocation's
//! own parent is different: it always comes from the Lambda trace header
//! (`Lambda-Runtime-Trace-Id`, in [`lambda_runtime::Context::xray_trace_id`]), so that the invocation
//! span hangs under the segment Lambda writes with active tracing, and X-Ray shows one trace.
//! tracekit never reads `_X_AMZN_TRACE_ID`: Lambda does not set it under `run_concurrent`, and
//! setting environment variables while threads run is unsound.
//!
//! Which Lambda trace headers continue a trace:
//! - `Root=1-{8 hex}-{24 hex};Parent={16 hex}` with any `Sampled` (`0`, `1`, `?`) and other keys
//!   (`Lineage`, kept as trace state), in any order: the invocation span is a child of `Parent`;
//! - Root-only (`Root=…`, `Root=…;Sampled=1`, `Root=…;Lineage=…`: no segment recorded yet): the
//!   invocation span is the root of that trace, with no warning; the local sampler decides;
//! - anything else (a truncated or non-hex id, version 2, an unknown or empty `Sampled` value, a
//!   field that is not `key=value`, no header at all): a new trace, and one warning naming the
//!   header.

mod strict;

use crate::config::{Propagator, SampledZeroPolicy, SamplerConfig};
use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapCompositePropagator, TextMapPropagator},
    trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState},
};
use opentelemetry_sdk::propagation::BaggagePropagator;
use std::sync::atomic::{AtomicU8, Ordering};
use strict::Strict;

/// The X-Ray trace header, as HTTP and the AWS SDKs carry it.
/// [X-Ray tracing header](https://docs.aws.amazon.com/xray/latest/devguide/xray-concepts.html#xray-concepts-tracingheader)
pub const XRAY_TRACE_HEADER: &str = "X-Amzn-Trace-Id";

const ROOT_KEY: &str = "Root";
const PARENT_KEY: &str = "Parent";
const SAMPLED_KEY: &str = "Sampled";

/// Builds the composite propagator named by `OTEL_PROPAGATORS` (`none` gives one that does nothing),
/// with tracekit's strict readers for `traceparent` and `X-Amzn-Trace-Id` (see `strict`).
pub fn composite(propagators: &[Propagator]) -> TextMapCompositePropagator {
    let parts: Vec<Box<dyn TextMapPropagator + Send + Sync>> = propagators
        .iter()
        .map(|propagator| -> Box<dyn TextMapPropagator + Send + Sync> {
            match propagator {
                Propagator::TraceContext => Box::new(Strict::trace_context()),
                Propagator::Baggage => Box::new(BaggagePropagator::new()),
                Propagator::Xray | Propagator::XrayLambda => Box::new(Strict::xray()),
            }
        })
        .collect();
    TextMapCompositePropagator::new(parts)
}

/// Which W3C formats `OTEL_PROPAGATORS` names, for carriers that take only those; set with the global
/// propagator by [`install`].
static W3C_FORMATS: AtomicU8 = AtomicU8::new(0);
const TRACE_CONTEXT_FORMAT: u8 = 1;
const BAGGAGE_FORMAT: u8 = 2;

/// Installs the composite propagator named by `OTEL_PROPAGATORS` as the global propagator.
pub(crate) fn install(propagators: &[Propagator]) {
    let formats = propagators
        .iter()
        .fold(0, |formats, propagator| match propagator {
            Propagator::TraceContext => formats | TRACE_CONTEXT_FORMAT,
            Propagator::Baggage => formats | BAGGAGE_FORMAT,
            Propagator::Xray | Propagator::XrayLambda => formats,
        });
    W3C_FORMATS.store(formats, Ordering::Relaxed);
    opentelemetry::global::set_text_map_propagator(composite(propagators));
}

/// Injects only the W3C formats that the installed propagator names (`traceparent` and
/// `tracestate`, `baggage`): SQS messages carry the X-Ray header in `AWSTraceHeader` instead, and
/// writing it once more per message only to throw it away would double the cost of a send.
#[cfg(any(feature = "sqs", feature = "sns", feature = "lambda-invoke"))]
pub(crate) fn inject_w3c(cx: &Context, carrier: &mut dyn Injector) {
    let formats = W3C_FORMATS.load(Ordering::Relaxed);
    if formats & TRACE_CONTEXT_FORMAT != 0 {
        inject_trace_context(cx, carrier);
    }
    if formats & BAGGAGE_FORMAT != 0 {
        BaggagePropagator::new().inject_context(cx, carrier);
    }
}

/// Injects `cx` into `carrier` with the global propagator that [`crate::init`] installed.
pub fn inject(cx: &Context, carrier: &mut dyn Injector) {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(cx, carrier);
    });
}

/// Extracts a context from `carrier` with the global propagator that [`crate::init`] installed.
pub fn extract(carrier: &dyn Extractor) -> Context {
    opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(carrier))
}

/// Why the invocation has no remote parent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// Lambda sent no trace header.
    #[error("the invocation has no trace header")]
    Missing,
    /// The header is there but cannot be read.
    #[error("the invocation's trace header {header:?} is malformed: {reason}")]
    Malformed {
        /// The header as received.
        header: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The sampling decision an X-Ray header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XraySampled {
    /// `Sampled=1`.
    Yes,
    /// `Sampled=0`.
    No,
    /// `Sampled=?` or no `Sampled` key: the receiver decides.
    Undecided,
}

/// An X-Ray trace header, checked strictly: a header whose ids are truncated or not hex is rejected
/// as a whole rather than read as a different trace.
#[derive(Debug, Clone, PartialEq)]
pub struct XrayHeader {
    /// The trace id (`Root`).
    pub trace_id: TraceId,
    /// The parent segment or subsegment id (`Parent`).
    pub parent_id: SpanId,
    /// The sampling decision (`Sampled`).
    pub sampled: XraySampled,
    /// Other keys (such as `Lineage`), kept so they travel on.
    pub trace_state: TraceState,
}

impl XrayHeader {
    /// Parses `Root=1-{8 hex}-{24 hex};Parent={16 hex};Sampled={0|1|?}` with any other keys.
    ///
    /// This runs for every invocation and every SQS record, so the header as Lambda writes it is read
    /// at fixed places, without allocating.
    pub fn parse(header: &str) -> Result<Self, HeaderError> {
        match Self::parse_canonical(header) {
            Some(parsed) => Ok(parsed),
            None => Self::parse_any(header),
        }
    }

    /// The header exactly as Lambda writes it (`Root`, `Parent`, `Sampled`, in that order and
    /// nothing else), read at fixed places; `None` sends anything else, or anything invalid, to
    /// [`XrayHeader::parse_any`], which has the last word.
    fn parse_canonical(header: &str) -> Option<Self> {
        let header = header.as_bytes();
        if header.len() != CANONICAL.len()
            || header[..EPOCH.start] != CANONICAL[..EPOCH.start]
            || header[EPOCH.end..RANDOM.start] != CANONICAL[EPOCH.end..RANDOM.start]
            || header[RANDOM.end..PARENT.start] != CANONICAL[RANDOM.end..PARENT.start]
            || header[PARENT.end..SAMPLED] != CANONICAL[PARENT.end..SAMPLED]
        {
            return None;
        }
        let mut trace = [0u8; 16];
        let (epoch, random) = trace.split_at_mut(4);
        hex::decode_to_slice(&header[EPOCH], epoch).ok()?;
        hex::decode_to_slice(&header[RANDOM], random).ok()?;
        let mut parent = [0u8; 8];
        hex::decode_to_slice(&header[PARENT], &mut parent).ok()?;
        let sampled = match header[SAMPLED] {
            b'1' => XraySampled::Yes,
            b'0' => XraySampled::No,
            b'?' => XraySampled::Undecided,
            _ => return None,
        };
        let (trace_id, parent_id) = (TraceId::from_bytes(trace), SpanId::from_bytes(parent));
        (trace_id != TraceId::INVALID && parent_id != SpanId::INVALID).then_some(XrayHeader {
            trace_id,
            parent_id,
            sampled,
            trace_state: TraceState::NONE,
        })
    }

    /// Any key order, whitespace, other keys.
    fn parse_any(header: &str) -> Result<Self, HeaderError> {
        let malformed = |reason| HeaderError::Malformed {
            header: header.to_owned(),
            reason,
        };
        let mut trace_id = None;
        let mut parent_id = None;
        let mut sampled = XraySampled::Undecided;
        let mut others = Vec::new();
        for part in header.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| malformed("a field is not key=value"))?;
            let value = value.trim();
            match key.trim() {
                ROOT_KEY => {
                    trace_id = Some(
                        parse_root(value)
                            .ok_or_else(|| malformed("Root is not 1-{8 hex}-{24 hex}"))?,
                    )
                }
                PARENT_KEY => {
                    parent_id = Some(
                        parse_span_id(value)
                            .ok_or_else(|| malformed("Parent is not 16 hex digits"))?,
                    )
                }
                SAMPLED_KEY => {
                    sampled = match value {
                        "1" => XraySampled::Yes,
                        "0" => XraySampled::No,
                        "?" => XraySampled::Undecided,
                        _ => return Err(malformed("Sampled is not 0, 1 or ?")),
                    }
                }
                other => others.push((other.to_ascii_lowercase(), value.to_owned())),
            }
        }
        let trace_id = trace_id.ok_or_else(|| malformed("there is no Root"))?;
        let parent_id = parent_id.ok_or_else(|| malformed("there is no Parent"))?;
        // Keys that trace state cannot carry are dropped rather than failing the whole header.
        let trace_state = if others.is_empty() {
            TraceState::NONE
        } else {
            TraceState::from_key_value(others).unwrap_or_default()
        };
        Ok(XrayHeader {
            trace_id,
            parent_id,
            sampled,
            trace_state,
        })
    }

    /// The remote parent for the invocation span: the header's ids, with the sampled flag settled by
    /// `policy` and, where the header leaves the decision open, by the local root sampler.
    pub fn to_parent(&self, policy: SampledZeroPolicy, sampler: &SamplerConfig) -> SpanContext {
        let sampled = match (self.sampled, policy) {
            (XraySampled::Yes, _) => true,
            (XraySampled::No, SampledZeroPolicy::Honor) => false,
            (XraySampled::No, SampledZeroPolicy::Sample) => true,
            (XraySampled::No, SampledZeroPolicy::Defer) | (XraySampled::Undecided, _) => {
                root_decision(sampler, self.trace_id)
            }
        };
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanContext::new(
            self.trace_id,
            self.parent_id,
            flags,
            true,
            self.trace_state.clone(),
        )
    }
}

/// How far back and ahead of now X-Ray accepts a trace id's time (its first 8 hex digits, the epoch
/// seconds): 30 days, 5 minutes, as X-Ray's segment documents require
/// ([segment documents](https://docs.aws.amazon.com/xray/latest/devguide/xray-api-segmentdocuments.html)).
const XRAY_TRACE_MAX_AGE_SECS: u64 = 30 * 24 * 60 * 60;
const XRAY_TRACE_MAX_AHEAD_SECS: u64 = 5 * 60;

/// Whether X-Ray's segment documents can hold `trace_id` at `now_secs` (Unix seconds): its first
/// four bytes are a time within the last 30 days (or 5 minutes ahead). A random W3C trace id, as
/// OpenTelemetry producers make by default, almost never is; the agent and the OTLP endpoint take
/// any id.
pub(crate) fn is_xray_trace_id(trace_id: TraceId, now_secs: u64) -> bool {
    let bytes = trace_id.to_bytes();
    let epoch = u64::from(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
    epoch + XRAY_TRACE_MAX_AGE_SECS >= now_secs && epoch <= now_secs + XRAY_TRACE_MAX_AHEAD_SECS
}

/// Whether the export path can hold a remote context's `trace_id`, so that a span may continue
/// it: X-Ray segment documents (`xray_ids_only`, `OTEL_TRACES_EXPORTER=xray`) hold X-Ray ids only
/// ([`is_xray_trace_id`]), every other path any id. A context it cannot hold is linked instead (an
/// SQS or SNS producer, an `Invoke` caller, an HTTP request's own headers under `xray-lambda`):
/// continued, every span of the trace would be refused.
pub(crate) fn export_holds(xray_ids_only: bool, trace_id: TraceId) -> bool {
    !xray_ids_only || is_xray_trace_id(trace_id, now_secs())
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// What a carrier (message attributes, an envelope, an `Invoke` client context) holds for the
/// configured propagators.
pub(crate) enum Carried {
    /// No field that names a context on its own (`traceparent`, `X-Amzn-Trace-Id`) is there;
    /// `tracestate` or `baggage` alone is nothing to warn about.
    Nothing,
    /// One is, but no configured reader takes it: malformed, or a repeated `traceparent`.
    Refused,
    /// The context the carrier names (when several formats do, the last configured one's).
    Context(Context),
}

/// Reads `carrier` through every configured propagator, and says whether it held a context, a
/// refused one, or none ([`Carried`]).
pub(crate) fn extract_carried(carrier: &dyn Extractor) -> Carried {
    let keys = carrier.keys();
    let present = |field: &str| keys.iter().any(|key| key.eq_ignore_ascii_case(field));
    let names_a_context = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.fields().any(|field| {
            present(field)
                && !field.eq_ignore_ascii_case("tracestate")
                && !field.eq_ignore_ascii_case("baggage")
        })
    });
    if !names_a_context {
        return Carried::Nothing;
    }
    let context = extract(carrier);
    if context.span().span_context().is_valid() {
        Carried::Context(context)
    } else {
        Carried::Refused
    }
}

/// Whether `carrier` holds more than one `traceparent` while `OTEL_PROPAGATORS` reads them: no
/// context, by the W3C rules (another format the carrier holds still counts), and worth one
/// warning wherever it is found.
pub(crate) fn repeated_traceparent(carrier: &dyn Extractor) -> bool {
    const TRACEPARENT: &str = "traceparent";
    W3C_FORMATS.load(Ordering::Relaxed) & TRACE_CONTEXT_FORMAT != 0
        && carrier
            .get_all(TRACEPARENT)
            .is_some_and(|all| all.len() > 1)
}

/// A carrier of `key: value` pairs read whatever the keys' case: message attributes, an `Invoke`
/// client context's `custom` map. Two keys that differ only in case are one field given twice
/// ([`Extractor::get_all`]), so a repeated `traceparent` is refused as a repeated header is.
pub(crate) struct AnyCase<'a>(Vec<(&'a str, &'a str)>);

impl<'a> AnyCase<'a> {
    pub(crate) fn new(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        AnyCase(pairs.into_iter().collect())
    }
}

impl Extractor for AnyCase<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| *v)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| *k).collect()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let all: Vec<&str> = self
            .0
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| *v)
            .collect();
        (!all.is_empty()).then_some(all)
    }
}

/// The trace id of a Root-only X-Ray header: a valid `Root`, no `Parent`, and nothing malformed
/// besides (`Root=1-…;Sampled=1`, `Root=1-…;Lineage=…`, as the X-Ray developer guide and the X-Ray
/// SDKs write them when no segment has been recorded yet). Such a header names a trace but no
/// parent: the invocation span becomes a root span in that trace. `None` for anything else,
/// including a header with a `Parent` (read those with [`XrayHeader::parse`]).
pub fn root_only_trace_id(header: &str) -> Option<TraceId> {
    let mut trace_id = None;
    for part in header.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once('=')?;
        let value = value.trim();
        match key.trim() {
            ROOT_KEY => trace_id = Some(parse_root(value)?),
            PARENT_KEY => return None,
            SAMPLED_KEY if !matches!(value, "0" | "1" | "?") => return None,
            _ => {}
        }
    }
    trace_id
}

/// Reads the invocation's parent from the Lambda trace header.
pub fn invocation_parent(
    header: Option<&str>,
    policy: SampledZeroPolicy,
    sampler: &SamplerConfig,
) -> Result<SpanContext, HeaderError> {
    let header = header
        .filter(|h| !h.trim().is_empty())
        .ok_or(HeaderError::Missing)?;
    Ok(XrayHeader::parse(header)?.to_parent(policy, sampler))
}

/// What the sampler would decide for a new root with this trace id.
fn root_decision(sampler: &SamplerConfig, trace_id: TraceId) -> bool {
    // The SDK's own sampler, asked about a root span: the decision the tracer would make.
    use opentelemetry::trace::SpanKind;
    use opentelemetry_sdk::trace::{SamplingDecision, ShouldSample};
    sampler
        .sdk_sampler()
        .should_sample(None, trace_id, "", &SpanKind::Server, &[], &[])
        .decision
        == SamplingDecision::RecordAndSample
}

fn parse_root(value: &str) -> Option<TraceId> {
    let mut parts = value.split('-');
    let (version, epoch, random) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || version != "1" {
        return None;
    }
    // Strict hex of exactly the right length: no sign, no prefix, no truncated id.
    let mut bytes = [0u8; 16];
    let (epoch_bytes, random_bytes) = bytes.split_at_mut(4);
    hex::decode_to_slice(epoch, epoch_bytes).ok()?;
    hex::decode_to_slice(random, random_bytes).ok()?;
    let id = TraceId::from_bytes(bytes);
    (id != TraceId::INVALID).then_some(id)
}

fn parse_span_id(value: &str) -> Option<SpanId> {
    let mut bytes = [0u8; 8];
    hex::decode_to_slice(value, &mut bytes).ok()?;
    let id = SpanId::from_bytes(bytes);
    (id != SpanId::INVALID).then_some(id)
}

/// The X-Ray header naming `span` as the parent, exactly as opentelemetry-aws's propagator writes it
/// (`Root=1-{8 hex}-{24 hex};Parent={16 hex};Sampled={0|1|?}`, then each trace state entry with its
/// key capitalised, such as Lambda's `Lineage`), or `None` for an invalid context. tracekit sets this
/// header on every AWS SDK request and every SQS message it sends, so it is written straight into
/// one buffer rather than through a propagator and a map; a property test holds the two equal.
pub fn xray_header_value(span: &SpanContext) -> Option<String> {
    if !span.is_valid() {
        return None;
    }
    let flags = span.trace_flags();
    let sampled = if flags & TRACE_FLAG_DEFERRED == TRACE_FLAG_DEFERRED {
        b'?'
    } else if flags.is_sampled() {
        b'1'
    } else {
        b'0'
    };
    let mut layout = *CANONICAL;
    let trace = span.trace_id().to_bytes();
    let (epoch, random) = trace.split_at(4);
    // Each slot is exactly twice its input's length, which is all `encode_to_slice` checks.
    hex::encode_to_slice(epoch, &mut layout[EPOCH]).ok()?;
    hex::encode_to_slice(random, &mut layout[RANDOM]).ok()?;
    hex::encode_to_slice(span.span_id().to_bytes(), &mut layout[PARENT]).ok()?;
    layout[SAMPLED] = sampled;
    let layout = std::str::from_utf8(&layout).ok()?;
    let state = span.trace_state().header_delimited("=", ";");
    if state.is_empty() {
        return Some(layout.to_owned());
    }
    let mut header = String::with_capacity(layout.len() + state.len() + 1);
    header.push_str(layout);
    for entry in state.split_terminator(';') {
        let mut chars = entry.chars();
        if let Some(first) = chars.next() {
            header.push(';');
            header.push(first.to_ascii_uppercase());
            header.push_str(chars.as_str());
        }
    }
    Some(header)
}

/// What the SDK's `TraceContextPropagator` injects, without its formatting machinery: `traceparent`
/// and `tracestate` (possibly empty), or nothing for an invalid context.
#[cfg(any(feature = "sqs", feature = "sns", feature = "lambda-invoke"))]
fn inject_trace_context(cx: &Context, carrier: &mut dyn Injector) {
    let span = opentelemetry::trace::TraceContextExt::span(cx);
    let span = span.span_context();
    if let Some(traceparent) = traceparent_value(span) {
        carrier.set("traceparent", traceparent);
        carrier.set("tracestate", span.trace_state().header());
    }
}

/// The `traceparent` naming `span` as the parent, exactly as the SDK's `TraceContextPropagator`
/// writes it (`00-{32 hex}-{16 hex}-{01|00}`: version 0, only the sampled flag), or `None` for an
/// invalid context. Every SQS message tracekit sends carries it, so it is filled into a fixed
/// template rather than formatted; a property test holds the two equal.
/// [traceparent](https://www.w3.org/TR/trace-context/#traceparent-header)
#[cfg(any(feature = "sqs", feature = "sns", feature = "lambda-invoke"))]
fn traceparent_value(span: &SpanContext) -> Option<String> {
    const LAYOUT: &[u8; 55] = b"00-00000000000000000000000000000000-0000000000000000-00";
    const TRACE: std::ops::Range<usize> = 3..35;
    const PARENT: std::ops::Range<usize> = 36..52;
    const SAMPLED: usize = 54;
    if !span.is_valid() {
        return None;
    }
    let mut layout = *LAYOUT;
    hex::encode_to_slice(span.trace_id().to_bytes(), &mut layout[TRACE]).ok()?;
    hex::encode_to_slice(span.span_id().to_bytes(), &mut layout[PARENT]).ok()?;
    if span.is_sampled() {
        layout[SAMPLED] = b'1';
    }
    String::from_utf8(layout.to_vec()).ok()
}

/// The header as Lambda and the AWS SDKs write it, with the places of its ids and decision.
const CANONICAL: &[u8; 74] =
    b"Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0";
const EPOCH: std::ops::Range<usize> = 7..15;
const RANDOM: std::ops::Range<usize> = 16..40;
const PARENT: std::ops::Range<usize> = 48..64;
const SAMPLED: usize = 73;

/// The flag opentelemetry-aws's propagator sets for `Sampled=?`.
const TRACE_FLAG_DEFERRED: TraceFlags = TraceFlags::new(0x02);

/// Formats a trace id the X-Ray way: `1-{8 hex}-{24 hex}`.
pub fn xray_trace_id(trace_id: TraceId) -> String {
    let hex = format!("{trace_id:032x}");
    format!("1-{}-{}", &hex[..8], &hex[8..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RootSampler;
    use opentelemetry::trace::TraceContextExt;
    #[cfg(feature = "sqs")]
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use std::collections::HashMap;

    const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";
    const PARENT: &str = "53995c3f42cd8ad8";

    fn trace_id() -> TraceId {
        TraceId::from_hex("5759e988bd862e3fe1be46a994272793").expect("valid")
    }

    #[test]
    fn xray_trace_ids_are_those_of_the_last_thirty_days() {
        let now: u64 = 1_800_000_000;
        let at = |epoch: u64| {
            TraceId::from_hex(&format!("{epoch:08x}bd862e3fe1be46a994272793")).expect("hex")
        };
        // (trace id, X-Ray takes it, reason)
        let cases = [
            (at(now), true, "now"),
            (at(now - 29 * 86_400), true, "29 days old"),
            (at(now - 31 * 86_400), false, "31 days old"),
            (at(now + 4 * 60), true, "4 minutes ahead"),
            (at(now + 6 * 60), false, "6 minutes ahead"),
            (
                TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").expect("hex"),
                false,
                "the W3C spec's random example id",
            ),
        ];
        for (trace_id, expected, reason) in cases {
            assert_eq!(is_xray_trace_id(trace_id, now), expected, "{reason}");
        }
    }

    #[test]
    fn only_segment_documents_refuse_a_trace_id_x_ray_cannot_hold() {
        let fresh =
            TraceId::from_hex(&format!("{:08x}bd862e3fe1be46a994272793", now_secs())).expect("hex");
        let w3c = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").expect("hex");
        // (segment documents, trace id, the export path holds it, reason)
        let cases = [
            (true, fresh, true, "segments: an X-Ray id of now"),
            (true, w3c, false, "segments: a random W3C id"),
            (true, trace_id(), false, "segments: an X-Ray id of 2016"),
            (false, w3c, true, "the agent and OTLP take any id"),
        ];
        for (xray_ids_only, trace_id, expected, reason) in cases {
            assert_eq!(export_holds(xray_ids_only, trace_id), expected, "{reason}");
        }
    }

    #[test]
    fn a_carrier_holds_a_context_a_refused_one_or_nothing() {
        install(&[
            Propagator::TraceContext,
            Propagator::Baggage,
            Propagator::Xray,
        ]);
        const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        const OTHER_TP: &str = "00-11111111111111111111111111111111-2222222222222222-01";
        let xray = format!("Root={ROOT};Parent={PARENT};Sampled=1");
        let w3c = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").expect("hex");
        #[derive(Debug, PartialEq)]
        enum Seen {
            Nothing,
            Refused,
            Context(TraceId),
        }
        // (fields, what the carrier holds, reason)
        type Case<'a> = (&'a [(&'a str, &'a str)], Seen, &'a str);
        let cases: &[Case<'_>] = &[
            (&[("traceparent", TP)], Seen::Context(w3c), "a traceparent"),
            (
                &[("TraceParent", TP)],
                Seen::Context(w3c),
                "keys in any case",
            ),
            (
                &[("x-amzn-trace-id", &xray)],
                Seen::Context(trace_id()),
                "an X-Ray header alone",
            ),
            (
                &[("X-Amzn-Trace-Id", &xray), ("traceparent", TP)],
                Seen::Context(trace_id()),
                "both: the last configured format's",
            ),
            (
                &[("traceparent", TP), ("Traceparent", OTHER_TP)],
                Seen::Refused,
                "a traceparent given twice is refused",
            ),
            (
                &[("traceparent", TP), ("TRACEPARENT", TP)],
                Seen::Refused,
                "even with the same value",
            ),
            (
                &[
                    ("traceparent", TP),
                    ("Traceparent", TP),
                    ("x-amzn-trace-id", &xray),
                ],
                Seen::Context(trace_id()),
                "a repeated traceparent leaves the other format",
            ),
            (&[("traceparent", "00-zz")], Seen::Refused, "malformed"),
            (
                &[(
                    "x-amzn-trace-id",
                    "Root=1-5759e988-bd862e3fe1be46a994272793",
                )],
                Seen::Refused,
                "Root-only: no parent to continue",
            ),
            (
                &[("tracestate", "a=b"), ("baggage", "k=v")],
                Seen::Nothing,
                "no field that names a context on its own",
            ),
            (&[("tenant", "a")], Seen::Nothing, "unrelated keys"),
            (&[], Seen::Nothing, "empty"),
        ];
        for (fields, expected, reason) in cases {
            let carried = extract_carried(&AnyCase::new(fields.iter().copied()));
            let actual = match carried {
                Carried::Nothing => Seen::Nothing,
                Carried::Refused => Seen::Refused,
                Carried::Context(cx) => Seen::Context(cx.span().span_context().trace_id()),
            };
            assert_eq!(actual, *expected, "{reason}");
        }
    }

    #[test]
    fn root_only_headers_name_a_trace_and_nothing_else_does() {
        let trace = Some(trace_id());
        // (header, trace id, reason)
        let cases = [
            (
                format!("Root={ROOT};Sampled=1"),
                trace,
                "the X-Ray guide's sampled form",
            ),
            (
                format!("Root={ROOT}"),
                trace,
                "the bare form ALB and API Gateway send",
            ),
            (
                format!("Root={ROOT};Lineage=a87bd80c:1|68fd508a:5"),
                trace,
                "the pass-through form with Lineage",
            ),
            (
                format!(" Sampled=? ; Root={ROOT} "),
                trace,
                "any order and spacing",
            ),
            (
                format!("Root={ROOT};Parent={PARENT};Sampled=1"),
                None,
                "a Parent: a parent, read by XrayHeader::parse",
            ),
            (
                format!("Root={ROOT};Sampled=2"),
                None,
                "a Sampled value X-Ray does not define",
            ),
            (
                format!("Root={ROOT};Sampled="),
                None,
                "an empty Sampled: not 0, 1 or ?",
            ),
            (
                "Root=1-abc-123;Sampled=1".to_owned(),
                None,
                "a truncated Root",
            ),
            (
                "Root=2-5759e988-bd862e3fe1be46a994272793".to_owned(),
                None,
                "version 2",
            ),
            (
                format!("Root={ROOT};junk"),
                None,
                "a field that is not key=value",
            ),
            ("Sampled=1".to_owned(), None, "no Root"),
        ];
        for (header, expected, reason) in cases {
            assert_eq!(root_only_trace_id(&header), expected, "{header}: {reason}");
        }
    }

    #[test]
    fn parent_is_taken_from_the_trace_header() {
        let header = format!("Root={ROOT};Parent={PARENT};Sampled=1;Lineage=a87bd80c:1|68fd508a:5");
        let parent = invocation_parent(
            Some(&header),
            SampledZeroPolicy::Defer,
            &SamplerConfig::AlwaysOff,
        )
        .expect("valid header");
        assert_eq!(parent.trace_id(), trace_id());
        assert_eq!(parent.span_id(), SpanId::from_hex(PARENT).expect("valid"));
        assert!(
            parent.is_sampled(),
            "Sampled=1 is followed whatever the sampler"
        );
        assert!(parent.is_remote());
        assert_eq!(
            parent.trace_state().get("lineage"),
            Some("a87bd80c:1|68fd508a:5"),
            "other keys travel on"
        );
    }

    #[test]
    fn sampled_zero_and_undecided_follow_the_policy() {
        let on = SamplerConfig::ParentBased(RootSampler::AlwaysOn);
        let off = SamplerConfig::ParentBased(RootSampler::AlwaysOff);
        // (Sampled value, policy, sampler, expected sampled flag, reason)
        let cases = [
            (
                "0",
                SampledZeroPolicy::Defer,
                &on,
                true,
                "defer: the local sampler says yes",
            ),
            (
                "0",
                SampledZeroPolicy::Defer,
                &off,
                false,
                "defer: the local sampler says no",
            ),
            (
                "0",
                SampledZeroPolicy::Honor,
                &on,
                false,
                "honor: not sampled",
            ),
            (
                "0",
                SampledZeroPolicy::Sample,
                &off,
                true,
                "sample: always recorded",
            ),
            (
                "?",
                SampledZeroPolicy::Honor,
                &on,
                true,
                "? is undecided: the sampler decides",
            ),
            (
                "?",
                SampledZeroPolicy::Defer,
                &off,
                false,
                "? with a sampler that says no",
            ),
            (
                "1",
                SampledZeroPolicy::Honor,
                &off,
                true,
                "1 is always followed",
            ),
        ];
        for (sampled, policy, sampler, expected, reason) in cases {
            let header = format!("Root={ROOT};Parent={PARENT};Sampled={sampled}");
            let parent = invocation_parent(Some(&header), policy, sampler).expect(reason);
            assert_eq!(parent.is_sampled(), expected, "{reason}");
            assert_eq!(parent.trace_id(), trace_id(), "{reason}: trace id kept");
        }
        let header = format!("Root={ROOT};Parent={PARENT}");
        let parent =
            invocation_parent(Some(&header), SampledZeroPolicy::Honor, &on).expect("valid");
        assert!(parent.is_sampled(), "no Sampled key: the sampler decides");
    }

    #[test]
    fn an_undecided_header_is_decided_as_the_sdk_sampler_decides_a_root() {
        use opentelemetry::trace::SpanKind;
        use opentelemetry_sdk::trace::{Sampler, SamplingDecision, ShouldSample};
        let sdk = Sampler::TraceIdRatioBased(0.5);
        let mut sampled = 0;
        for seed in 0u128..200 {
            let id = TraceId::from(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835));
            let sdk_says = sdk
                .should_sample(None, id, "x", &SpanKind::Server, &[], &[])
                .decision
                == SamplingDecision::RecordAndSample;
            let ours = root_decision(
                &SamplerConfig::ParentBased(RootSampler::TraceIdRatio(0.5)),
                id,
            );
            assert_eq!(ours, sdk_says, "trace id {id}");
            sampled += usize::from(ours);
        }
        assert!((60..140).contains(&sampled), "about half: {sampled}");
    }

    #[test]
    fn malformed_trace_header_starts_new_root() {
        // (header, reason) — each must be rejected, never read as another trace.
        let cases = [
            ("", "empty"),
            ("garbage", "no key=value"),
            ("Root=;Parent=;Sampled=", "empty values"),
            (&format!("Parent={PARENT};Sampled=1") as &str, "no Root"),
            (&format!("Root={ROOT};Sampled=1"), "no Parent"),
            (
                "Root=1-5759e988-bd862e3fe1be46a9;Parent=53995c3f42cd8ad8",
                "Root truncated",
            ),
            (
                &format!("Root={ROOT};Parent=53995c3f42cd"),
                "Parent truncated",
            ),
            (
                &format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=yes"),
                "bad Sampled",
            ),
            (
                &format!("Root={ROOT};Parent={PARENT};Sampled="),
                "an empty Sampled is not 0, 1 or ?",
            ),
            (
                &format!("Root={ROOT};Parent={PARENT};Sampled= "),
                "a blank Sampled is not 0, 1 or ? either",
            ),
            (
                "Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
                "unknown version",
            ),
            (
                "Root=1-5759e98g-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
                "not hex",
            ),
            (
                "Root=1-00000000-000000000000000000000000;Parent=53995c3f42cd8ad8",
                "all-zero trace id",
            ),
            (
                &format!("Root={ROOT};Parent=0000000000000000"),
                "all-zero parent",
            ),
            (
                &format!("Root={ROOT};Parent=+3995c3f42cd8ad8"),
                "sign is not hex",
            ),
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793-ff;Parent=53995c3f42cd8ad8",
                "extra part",
            ),
            (
                "Root=1-é759e988-bd862e3fe1be46a99427279;Parent=53995c3f42cd8ad8",
                "non-ASCII",
            ),
            (
                &format!("Root={ROOT};Parent={PARENT};Sampled=1;junk"),
                "trailing field without =",
            ),
        ];
        for (header, reason) in cases {
            let result = invocation_parent(
                Some(header),
                SampledZeroPolicy::Defer,
                &SamplerConfig::AlwaysOn,
            );
            assert!(result.is_err(), "{reason}: {header:?} gave {result:?}");
        }
        assert_eq!(
            invocation_parent(None, SampledZeroPolicy::Defer, &SamplerConfig::AlwaysOn),
            Err(HeaderError::Missing)
        );
    }

    #[test]
    fn whitespace_and_key_order_are_tolerated() {
        let header = format!(" Sampled=1 ; Parent={PARENT} ;Root={ROOT}; ");
        let parent = invocation_parent(
            Some(&header),
            SampledZeroPolicy::Defer,
            &SamplerConfig::AlwaysOff,
        )
        .expect("valid");
        assert_eq!(parent.trace_id(), trace_id());
        assert!(parent.is_sampled());
    }

    #[test]
    fn xray_trace_id_round_trips() {
        assert_eq!(xray_trace_id(trace_id()), ROOT);
    }

    #[test]
    fn composite_injects_every_configured_format() {
        let cx = Context::new().with_remote_span_context(SpanContext::new(
            trace_id(),
            SpanId::from_hex(PARENT).expect("valid"),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        ));
        let propagator = composite(&[Propagator::TraceContext, Propagator::Xray]);
        let mut carrier = HashMap::new();
        propagator.inject_context(&cx, &mut carrier);
        assert_eq!(
            carrier.get("traceparent").map(String::as_str),
            Some("00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01")
        );
        assert_eq!(
            carrier.get("x-amzn-trace-id").map(String::as_str),
            Some("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
        );
        let none = composite(&[]);
        let mut empty = HashMap::new();
        none.inject_context(&cx, &mut empty);
        assert!(empty.is_empty(), "`none` injects nothing");
    }

    mod round_trips {
        use super::*;
        use opentelemetry::baggage::BaggageExt;
        use proptest::prelude::*;

        fn span_context(trace: u128, span: u64, sampled: bool, state: TraceState) -> SpanContext {
            let flags = if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            };
            SpanContext::new(
                TraceId::from_bytes(trace.to_be_bytes()),
                SpanId::from_bytes(span.to_be_bytes()),
                flags,
                true,
                state,
            )
        }

        fn round_trip(
            propagators: &[Propagator],
            cx: &Context,
        ) -> (HashMap<String, String>, Context) {
            let propagator = composite(propagators);
            let mut carrier = HashMap::new();
            propagator.inject_context(cx, &mut carrier);
            let extracted = propagator.extract(&carrier);
            (carrier, extracted)
        }

        /// W3C `tracestate` members: a lowercase key and a printable value without `,` or `=`.
        fn trace_state() -> impl Strategy<Value = TraceState> {
            proptest::collection::btree_map("[a-z][a-z0-9_*/-]{0,15}", "[!-+--<>-~]{1,16}", 0..6)
                .prop_map(|members| TraceState::from_key_value(members).unwrap_or_default())
        }

        proptest! {
            #[test]
            fn xray_inject_then_extract_keeps_ids_and_decision(
                trace in 1u128.., span in 1u64.., sampled: bool,
            ) {
                let cx = Context::new()
                    .with_remote_span_context(span_context(trace, span, sampled, TraceState::default()));
                let (carrier, extracted) = round_trip(&[Propagator::Xray], &cx);
                let header = carrier.get("x-amzn-trace-id").expect("x-amzn-trace-id injected");
                let expected = cx.span().span_context().clone();
                let got = extracted.span().span_context().clone();
                prop_assert_eq!(got.trace_id(), expected.trace_id());
                prop_assert_eq!(got.span_id(), expected.span_id());
                prop_assert_eq!(got.is_sampled(), sampled);
                // tracekit's own strict parser reads what the propagator writes.
                let parsed = XrayHeader::parse(header).expect("the injected header parses");
                prop_assert_eq!(parsed.trace_id, expected.trace_id());
                prop_assert_eq!(parsed.parent_id, expected.span_id());
                prop_assert_eq!(parsed.sampled, if sampled { XraySampled::Yes } else { XraySampled::No });
            }

            #[test]
            fn xray_header_value_is_what_opentelemetry_aws_writes(
                trace: u128, span: u64, flags in 0u8..4, state in proptest::option::of(trace_state()),
            ) {
                let context = SpanContext::new(
                    TraceId::from(trace),
                    SpanId::from(span),
                    TraceFlags::new(flags),
                    false,
                    state.unwrap_or_default(),
                );
                let ours = xray_header_value(&context);
                prop_assert_eq!(
                    &ours,
                    &opentelemetry_aws::trace::xray_propagator::span_context_to_string(&context)
                );
                // (Trace state values may hold `;`, which the X-Ray format cannot carry.)
                if let (Some(header), "") = (ours, context.trace_state().header().as_str()) {
                    let parsed = XrayHeader::parse(&header).expect("the header tracekit writes parses");
                    prop_assert_eq!(parsed.trace_id, context.trace_id());
                    prop_assert_eq!(parsed.parent_id, context.span_id());
                }
            }

            #[cfg(feature = "sqs")]
            #[test]
            fn trace_context_is_what_the_sdk_propagator_writes(
                trace: u128, span: u64, flags: u8, state in proptest::option::of(trace_state()),
            ) {
                let cx = Context::new().with_remote_span_context(SpanContext::new(
                    TraceId::from(trace),
                    SpanId::from(span),
                    TraceFlags::new(flags),
                    true,
                    state.unwrap_or_default(),
                ));
                let mut ours = HashMap::new();
                inject_trace_context(&cx, &mut ours);
                let mut sdk = HashMap::new();
                TraceContextPropagator::new().inject_context(&cx, &mut sdk);
                prop_assert_eq!(ours, sdk);
            }

            #[test]
            fn the_fixed_place_reader_agrees_with_the_general_parser(
                trace: u128, span: u64, sampled in "[01?x ]", damage in proptest::option::of((0usize..74, any::<u8>())),
            ) {
                let mut header = format!(
                    "Root=1-{:08x}-{:024x};Parent={span:016x};Sampled={sampled}",
                    trace >> 96,
                    trace & ((1 << 96) - 1),
                ).into_bytes();
                if let Some((at, byte)) = damage {
                    header[at] = byte;
                }
                let Ok(header) = std::str::from_utf8(&header) else {
                    return Ok(());
                };
                // Whatever the fixed-place reader accepts, the general parser reads the same way.
                let fast = XrayHeader::parse_canonical(header);
                if let Some(parsed) = &fast {
                    prop_assert_eq!(Ok(parsed.clone()), XrayHeader::parse_any(header));
                }
                // And it does accept Lambda's own form, so the usual header takes the fast path.
                if damage.is_none() && sampled != "x" && sampled != " " && trace != 0 && span != 0 {
                    prop_assert!(fast.is_some(), "{header:?} missed the fixed-place reader");
                }
            }

            #[test]
            fn w3c_inject_then_extract_keeps_ids_flags_and_trace_state(
                trace in 1u128.., span in 1u64.., sampled: bool, state in trace_state(),
            ) {
                let expected = span_context(trace, span, sampled, state);
                let cx = Context::new().with_remote_span_context(expected.clone());
                let (_, extracted) = round_trip(&[Propagator::TraceContext], &cx);
                let got = extracted.span().span_context().clone();
                prop_assert_eq!(got, expected);
            }

            #[test]
            fn baggage_inject_then_extract_keeps_every_entry(
                entries in proptest::collection::btree_map(
                    "[A-Za-z0-9!#$&'*+.^_`|~-]{1,16}",
                    "[^\\s,;=%]{0,16}|[a-z]{1,4}( [a-z]{1,4}){0,2}|[\\p{L}\\p{N}]{1,8}",
                    1..8,
                ),
            ) {
                let cx = Context::new().with_baggage(
                    entries.iter().map(|(k, v)| opentelemetry::KeyValue::new(k.clone(), v.clone())),
                );
                let (_, extracted) = round_trip(&[Propagator::Baggage], &cx);
                for (key, value) in &entries {
                    let got = extracted.baggage().get(key.as_str()).map(|v| v.as_str().to_owned());
                    prop_assert_eq!(got.as_deref(), Some(value.as_str()), "baggage key {}", key);
                }
            }

            #[test]
            fn every_format_together_round_trips(
                trace in 1u128.., span in 1u64.., sampled: bool, state in trace_state(),
                value in "[a-z0-9]{1,12}",
            ) {
                let expected = span_context(trace, span, sampled, state);
                let cx = Context::new()
                    .with_remote_span_context(expected.clone())
                    .with_baggage([opentelemetry::KeyValue::new("tenant", value.clone())]);
                let (carrier, extracted) = round_trip(
                    &[Propagator::TraceContext, Propagator::Baggage, Propagator::Xray],
                    &cx,
                );
                prop_assert!(carrier.contains_key("traceparent") && carrier.contains_key("x-amzn-trace-id"));
                let got = extracted.span().span_context().clone();
                prop_assert_eq!(got.trace_id(), expected.trace_id());
                prop_assert_eq!(got.span_id(), expected.span_id());
                prop_assert_eq!(got.is_sampled(), sampled);
                prop_assert_eq!(
                    extracted.baggage().get("tenant").map(|v| v.as_str().to_owned()),
                    Some(value)
                );
            }
        }
    }
}
