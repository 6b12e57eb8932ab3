//! The readers tracekit extracts context with, one per header format, on every path (the
//! invocation's HTTP carrier under `xray-lambda`, an `Invoke`'s `ClientContext.custom`, SQS message
//! attributes, SNS envelopes), strict to
//! the format's own rules: a header that breaks them is no context at all, never a different one.
//!
//! - `traceparent` / `tracestate`: the W3C Trace Context rules
//!   ([Level 1](https://www.w3.org/TR/trace-context/), [Level 2](https://www.w3.org/TR/trace-context-2/)):
//!   two lowercase hex digits of version (not `ff`), exactly 32 and 16 lowercase hex digits of
//!   non-zero ids, two of flags, nothing after them for version `00` and only `-…` for later ones;
//!   one `traceparent` only. `tracestate` members are checked key by key and value by value, at
//!   most 32, no key twice, headers concatenated; a `tracestate` that breaks a rule is dropped and
//!   the `traceparent` kept. opentelemetry's own reader accepts `000`, 31-digit ids (padded into a
//!   different id), one- and three-digit flags.
//! - `X-Amzn-Trace-Id`: [`XrayHeader::parse`](super::XrayHeader::parse), the reader the invocation
//!   header and `AWSTraceHeader` go through. opentelemetry-aws's reads `Root=1-abc-123` as the trace
//!   `…abc123` and takes version-2 roots and any `Sampled` value.
//!
//! Injection is the libraries' own (opentelemetry-sdk's and opentelemetry-aws's propagators).

use super::XrayHeader;
use super::XraySampled;
use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter},
    trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState},
};
use opentelemetry_aws::trace::XrayPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";
/// `traceparent` of version `00`: `vv-{32}-{16}-ff`.
const TRACEPARENT_LEN: usize = 55;
const MAX_TRACESTATE_MEMBERS: usize = 32;
/// opentelemetry-aws's flag for `Sampled=?` (the sampling decision is the receiver's), kept so that
/// both readers hand the sampler the same context.
const XRAY_DEFERRED: TraceFlags = TraceFlags::new(0x02);

/// The W3C `traceparent` fields: trace id, parent id, flags (the sampled bit only, as
/// opentelemetry keeps it).
pub(crate) fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
    let value = value.trim_matches([' ', '\t']).as_bytes();
    if value.len() < TRACEPARENT_LEN {
        return None;
    }
    let version = hex_byte(&value[0..2])?;
    if version == 0xff || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    // Version 00 ends with its flags; a later version may add fields, each after a `-`.
    let ends_right = match version {
        0 => value.len() == TRACEPARENT_LEN,
        _ => value.len() == TRACEPARENT_LEN || value[TRACEPARENT_LEN] == b'-',
    };
    if !ends_right {
        return None;
    }
    let mut trace = [0u8; 16];
    let mut parent = [0u8; 8];
    for (slot, digits) in trace.iter_mut().zip(value[3..35].chunks(2)) {
        *slot = hex_byte(digits)?;
    }
    for (slot, digits) in parent.iter_mut().zip(value[36..52].chunks(2)) {
        *slot = hex_byte(digits)?;
    }
    let flags = hex_byte(&value[53..55])?;
    let (trace_id, span_id) = (TraceId::from_bytes(trace), SpanId::from_bytes(parent));
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    Some((
        trace_id,
        span_id,
        TraceFlags::new(flags) & TraceFlags::SAMPLED,
    ))
}

/// Two lowercase hex digits.
fn hex_byte(digits: &[u8]) -> Option<u8> {
    let digit = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    match digits {
        [high, low] => Some(digit(*high)? << 4 | digit(*low)?),
        _ => None,
    }
}

/// A `tracestate` (its headers joined with `,`) checked member by member; `None` if any rule is
/// broken.
pub(crate) fn parse_tracestate(value: &str) -> Option<TraceState> {
    let mut members: Vec<(String, String)> = Vec::new();
    for member in value.split(',') {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        let (key, value) = member.split_once('=')?;
        if !valid_key(key) || !valid_value(value) || members.iter().any(|(k, _)| k == key) {
            return None;
        }
        members.push((key.to_owned(), value.to_owned()));
        if members.len() > MAX_TRACESTATE_MEMBERS {
            return None;
        }
    }
    if members.is_empty() {
        return Some(TraceState::NONE);
    }
    TraceState::from_key_value(members).ok()
}

/// `simple-key` or `tenant-id@system-id`.
fn valid_key(key: &str) -> bool {
    let rest = |part: &[u8], max: usize| {
        part.len() <= max
            && part.iter().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'_' | b'-' | b'*' | b'/')
            })
    };
    match key.split_once('@') {
        None => match key.as_bytes() {
            [first, tail @ ..] => first.is_ascii_lowercase() && rest(tail, 255),
            [] => false,
        },
        Some((tenant, system)) => {
            let tenant_ok = match tenant.as_bytes() {
                [first, tail @ ..] => {
                    (first.is_ascii_lowercase() || first.is_ascii_digit()) && rest(tail, 240)
                }
                [] => false,
            };
            let system_ok = match system.as_bytes() {
                [first, tail @ ..] => first.is_ascii_lowercase() && rest(tail, 13),
                [] => false,
            };
            tenant_ok && system_ok
        }
    }
}

/// `0*255(chr) nblk-chr`: printable ASCII but `,` and `=`, spaces inside only.
fn valid_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    let nblk = |b: &u8| matches!(b, 0x21..=0x2b | 0x2d..=0x3c | 0x3e..=0x7e);
    !bytes.is_empty()
        && bytes.len() <= 256
        && bytes.last().is_some_and(nblk)
        && bytes.iter().all(|b| *b == b' ' || nblk(b))
}

/// A propagator that reads with tracekit's strict reader `read` and writes with the library's
/// `writer`.
#[derive(Debug)]
pub(crate) struct Strict<W> {
    writer: W,
    read: fn(&dyn Extractor) -> Option<SpanContext>,
}

impl Strict<TraceContextPropagator> {
    /// W3C Trace Context, read strictly (see the module docs), written by opentelemetry-sdk.
    pub(crate) fn trace_context() -> Self {
        Strict {
            writer: TraceContextPropagator::new(),
            read: read_trace_context,
        }
    }
}

impl Strict<XrayPropagator> {
    /// `X-Amzn-Trace-Id`, read by [`XrayHeader::parse`], written by opentelemetry-aws.
    pub(crate) fn xray() -> Self {
        Strict {
            writer: XrayPropagator::new(),
            read: read_xray,
        }
    }
}

impl<W: TextMapPropagator> TextMapPropagator for Strict<W> {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        self.writer.inject_context(cx, injector);
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match (self.read)(extractor) {
            Some(span_context) => cx.with_remote_span_context(span_context),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        self.writer.fields()
    }
}

/// The W3C Trace Context of `extractor`'s carrier, if it keeps every rule.
fn read_trace_context(extractor: &dyn Extractor) -> Option<SpanContext> {
    // A repeated traceparent is no traceparent.
    if extractor
        .get_all(TRACEPARENT)
        .is_some_and(|all| all.len() > 1)
    {
        return None;
    }
    let (trace_id, span_id, flags) = parse_traceparent(extractor.get(TRACEPARENT)?)?;
    let trace_state = match extractor.get_all(TRACESTATE) {
        Some(all) if all.len() > 1 => parse_tracestate(&all.join(",")),
        _ => extractor
            .get(TRACESTATE)
            .map_or(Some(TraceState::NONE), parse_tracestate),
    }
    .unwrap_or_default();
    Some(SpanContext::new(
        trace_id,
        span_id,
        flags,
        true,
        trace_state,
    ))
}

/// The X-Ray context of `extractor`'s carrier, read as the invocation's header is.
fn read_xray(extractor: &dyn Extractor) -> Option<SpanContext> {
    let header = XrayHeader::parse(extractor.get(super::XRAY_TRACE_HEADER)?.trim()).ok()?;
    let flags = match header.sampled {
        XraySampled::Yes => TraceFlags::SAMPLED,
        XraySampled::No => TraceFlags::default(),
        XraySampled::Undecided => XRAY_DEFERRED,
    };
    Some(SpanContext::new(
        header.trace_id,
        header.parent_id,
        flags,
        true,
        header.trace_state,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Request headers as HTTP carries them: repeatable, names in any case.
    use crate::propagation::AnyCase as Headers;

    fn ours(headers: &[(&str, &str)]) -> Option<SpanContext> {
        read_trace_context(&Headers::new(headers.iter().copied()))
    }

    fn sdk(headers: &[(&str, &str)]) -> Option<SpanContext> {
        let cx = TraceContextPropagator::new().extract(&Headers::new(headers.iter().copied()));
        let span_context = cx.span().span_context().clone();
        span_context.is_valid().then_some(span_context)
    }

    const TRACE: &str = "12345678901234567890123456789012";
    const TP: &str = "00-12345678901234567890123456789012-1234567890123456-01";

    /// The traceparent cases of the W3C test suite
    /// (<https://github.com/w3c/trace-context/blob/main/test/test.py>), and the ones
    /// opentelemetry's reader takes though the rules refuse them.
    #[test]
    fn traceparent_follows_the_w3c_rules() {
        // (headers, continues the trace, reason)
        type Case<'a> = (&'a [(&'a str, &'a str)], bool, &'a str);
        let cases: &[Case<'_>] = &[
            (&[("traceparent", TP)], true, "the canonical form"),
            (&[("TrAcEpArEnT", TP)], true, "any name casing"),
            (
                &[(
                    "traceparent",
                    " \t00-12345678901234567890123456789012-1234567890123456-01 \t",
                )],
                true,
                "OWS around the value",
            ),
            (
                &[(
                    "traceparent",
                    "cc-12345678901234567890123456789012-1234567890123456-01",
                )],
                true,
                "a future version",
            ),
            (
                &[(
                    "traceparent",
                    "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
                )],
                true,
                "a future version's extra fields",
            ),
            (
                &[(
                    "traceparent",
                    "cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like",
                )],
                false,
                "a future version's fields follow a -",
            ),
            (
                &[(
                    "traceparent",
                    "00-12345678901234567890123456789012-1234567890123456-01.",
                )],
                false,
                "version 00 ends with its flags",
            ),
            (
                &[(
                    "traceparent",
                    "00-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
                )],
                false,
                "version 00 has no more fields",
            ),
            (
                &[(
                    "traceparent",
                    "ff-12345678901234567890123456789012-1234567890123456-01",
                )],
                false,
                "version ff is invalid",
            ),
            (
                &[(
                    "traceparent",
                    ".0-12345678901234567890123456789012-1234567890123456-01",
                )],
                false,
                "a version that is not hex",
            ),
            (
                &[(
                    "traceparent",
                    "000-12345678901234567890123456789012-1234567890123456-01",
                )],
                false,
                "a three-digit version (opentelemetry takes it)",
            ),
            (
                &[(
                    "traceparent",
                    "0-12345678901234567890123456789012-1234567890123456-01",
                )],
                false,
                "a one-digit version (opentelemetry takes it)",
            ),
            (
                &[(
                    "traceparent",
                    "00-00000000000000000000000000000000-1234567890123456-01",
                )],
                false,
                "an all-zero trace id",
            ),
            (
                &[(
                    "traceparent",
                    "00-.2345678901234567890123456789012-1234567890123456-01",
                )],
                false,
                "a trace id that is not hex",
            ),
            (
                &[(
                    "traceparent",
                    "00-123456789012345678901234567890123-1234567890123456-01",
                )],
                false,
                "a 33-digit trace id",
            ),
            (
                &[(
                    "traceparent",
                    "00-1234567890123456789012345678901-1234567890123456-01",
                )],
                false,
                "a 31-digit trace id (opentelemetry pads it into another id)",
            ),
            (
                &[(
                    "traceparent",
                    "00-12345678901234567890123456789012-0000000000000000-01",
                )],
                false,
                "an all-zero parent id",
            ),
            (
                &[(
                    "traceparent",
                    "00-12345678901234567890123456789012-12345678901234567-01",
                )],
                false,
                "a 17-digit parent id",
            ),
            (
                &[(
                    "traceparent",
                    "00-12345678901234567890123456789012-123456789012345-01",
                )],
                false,
                "a 15-digit parent id (opentelemetry pads it)",
            ),
            (
                &[(
                    "traceparent",
                    "00-12345678901234567890123456789012-1234567890123456-.0",
                )],
                false,
                "flags that are not hex",
            ),
            (
                &[(
                    "traceparent",
                    "00-12345678901234567890123456789012-1234567890123456-001",
                )],
                false,
                "three-digit flags (opentelemetry takes them)",
            ),
            (
                &[(
                    "traceparent",
                    "00-12345678901234567890123456789012-1234567890123456-1",
                )],
                false,
                "one-digit flags (opentelemetry takes them)",
            ),
            (
                &[(
                    "traceparent",
                    "00-ABCDEF78901234567890123456789012-1234567890123456-01",
                )],
                false,
                "uppercase hex",
            ),
            (
                &[
                    (
                        "traceparent",
                        "00-12345678901234567890123456789011-1234567890123456-01",
                    ),
                    ("traceparent", TP),
                ],
                false,
                "a repeated traceparent",
            ),
            (&[("trace-parent", TP)], false, "a wrong header name"),
        ];
        for (headers, continues, reason) in cases {
            let context = ours(headers);
            assert_eq!(context.is_some(), *continues, "{reason}: {headers:?}");
            if let Some(context) = context {
                assert_eq!(format!("{:032x}", context.trace_id()), TRACE, "{reason}");
                assert!(context.is_remote(), "{reason}");
            }
        }
    }

    #[test]
    fn tracestate_follows_the_w3c_rules() {
        let key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
        let vendor_key = format!("{key}@a-z0-9_-*/");
        let value: String = (0x20u8..=0x2b)
            .chain(0x2d..=0x3c)
            .chain(0x3e..=0x7e)
            .map(char::from)
            .collect();
        let all_allowed = format!("{key}={value}");
        let vendor_allowed = format!("{vendor_key}={value}");
        let thirty_two: String = (0..32)
            .map(|n| format!("k{n}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let thirty_three = format!("{thirty_two},k32=v");
        // (tracestate headers, the tracestate kept, reason)
        let cases: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
            (vec!["foo=1,bar=2"], Some("foo=1,bar=2"), "two members"),
            (
                vec!["foo=1,bar=2", "rojo=1,congo=2", "baz=3"],
                Some("foo=1,bar=2,rojo=1,congo=2,baz=3"),
                "headers concatenated in order",
            ),
            (
                vec!["foo=1 \t , \t bar=2, \t baz=3"],
                Some("foo=1,bar=2,baz=3"),
                "OWS between members",
            ),
            (
                vec!["", "foo=1"],
                Some("foo=1"),
                "an empty header beside another",
            ),
            (vec!["foo=1,foo=1"], None, "a key twice"),
            (vec!["foo=1", "foo=2"], None, "a key twice across headers"),
            (vec!["foo =1"], None, "a space in a key"),
            (vec!["FOO=1"], None, "an uppercase key"),
            (vec!["foo.bar=1"], None, "a dot in a key"),
            (vec!["foo@=1,bar=2"], None, "an empty system id"),
            (vec!["@foo=1,bar=2"], None, "an empty tenant id"),
            (vec!["foo@@bar=1,bar=2"], None, "two @"),
            (vec!["foo@bar@baz=1,bar=2"], None, "two @, apart"),
            (vec!["foo="], None, "an empty value"),
            (
                vec![thirty_two.as_str()],
                Some(thirty_two.as_str()),
                "32 members",
            ),
            (vec![thirty_three.as_str()], None, "33 members"),
            (
                vec![all_allowed.as_str()],
                Some(all_allowed.as_str()),
                "every allowed character",
            ),
            (
                vec![vendor_allowed.as_str()],
                Some(vendor_allowed.as_str()),
                "every allowed character, with a vendor",
            ),
        ];
        for (states, kept, reason) in cases {
            let mut headers = vec![("traceparent", TP)];
            headers.extend(states.iter().map(|state| ("tracestate", *state)));
            let context =
                ours(&headers).unwrap_or_else(|| panic!("{reason}: the traceparent is kept"));
            assert_eq!(
                context.trace_state().header(),
                kept.unwrap_or(""),
                "{reason}"
            );
        }
    }

    /// A traceparent in any valid form, with an optional tracestate of valid members.
    fn valid_headers() -> impl Strategy<Value = (String, Option<String>)> {
        let version = (0u8..=0xfe).prop_map(|v| format!("{v:02x}"));
        let id = |bytes: usize| {
            proptest::collection::vec(any::<u8>(), bytes)
                .prop_filter("non-zero", |b| b.iter().any(|x| *x != 0))
                .prop_map(|b| b.iter().map(|x| format!("{x:02x}")).collect::<String>())
        };
        let member = ("[a-z][a-z0-9_*/-]{0,8}", "[!-+\\--<>-~]{1,8}")
            .prop_map(|(key, value)| format!("{key}={value}"));
        let state = proptest::collection::vec(member, 0..5).prop_map(|members| {
            let mut seen = std::collections::HashSet::new();
            members
                .into_iter()
                .filter(|m| seen.insert(m.split('=').next().unwrap_or_default().to_owned()))
                .collect::<Vec<_>>()
                .join(",")
        });
        (
            version,
            id(16),
            id(8),
            any::<u8>(),
            proptest::option::of(state),
        )
            .prop_map(|(version, trace, parent, flags, state)| {
                (format!("{version}-{trace}-{parent}-{flags:02x}"), state)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Where opentelemetry's reader is right (every valid header), both read the same
        /// context.
        #[test]
        fn valid_headers_read_as_opentelemetry_reads_them((traceparent, tracestate) in valid_headers()) {
            let mut headers = vec![("traceparent", traceparent.as_str())];
            if let Some(state) = &tracestate {
                headers.push(("tracestate", state.as_str()));
            }
            prop_assert_eq!(ours(&headers), sdk(&headers));
        }

        /// Whatever ours accepts, opentelemetry's reader reads the same: tracekit is only ever
        /// stricter.
        #[test]
        fn what_ours_accepts_opentelemetry_reads_the_same(
            (traceparent, _) in valid_headers(),
            at in 0usize..60,
            byte in prop::sample::select(vec![b'0', b'f', b'F', b'-', b'.', b' ', b'g']),
            edit in 0u8..3,
        ) {
            let mut bytes = traceparent.into_bytes();
            let at = at.min(bytes.len());
            match edit {
                0 => bytes.insert(at, byte),
                1 if at < bytes.len() => { bytes.remove(at); }
                _ if at < bytes.len() => bytes[at] = byte,
                _ => {}
            }
            let mutated = String::from_utf8(bytes).unwrap_or_default();
            let headers = [("traceparent", mutated.as_str())];
            if let Some(context) = ours(&headers) {
                prop_assert_eq!(Some(context), sdk(&headers), "{}", mutated);
            }
        }
    }

    fn ours_xray(header: &str) -> Option<SpanContext> {
        read_xray(&Headers::new([("X-Amzn-Trace-Id", header)]))
    }

    fn aws_xray(header: &str) -> Option<SpanContext> {
        let cx = XrayPropagator::new().extract(&Headers::new([("X-Amzn-Trace-Id", header)]));
        let span_context = cx.span().span_context().clone();
        span_context.is_valid().then_some(span_context)
    }

    /// The X-Ray header, read as `XrayHeader::parse` reads the invocation's: what
    /// opentelemetry-aws's reader takes that the format refuses is no context.
    #[test]
    fn xray_header_is_read_strictly() {
        // (header, read, reason)
        let cases = [
            (
                "Root=1-58406520-a006649127e371903a2de979;Parent=4c721bf33e3caf8f;Sampled=1",
                true,
                "opentelemetry-aws's own example",
            ),
            (
                "Root=1-58406520-a006649127e371903a2de979;Self=1-58406520-bf42676c05e20ba4a90e448e;Parent=4c721bf33e3caf8f;Sampled=1",
                true,
                "other keys travel on",
            ),
            (
                "Root=1-abc-123;Parent=4c721bf33e3caf8f;Sampled=1",
                false,
                "a truncated Root (opentelemetry-aws reads it as …abc123)",
            ),
            (
                "Root=2-58406520-a006649127e371903a2de979;Parent=4c721bf33e3caf8f;Sampled=1",
                false,
                "version 2 (opentelemetry-aws takes it)",
            ),
            (
                "Root=1-58406520-a006649127e371903a2de979;Parent=4c721bf33e3caf8f;Sampled=yes",
                false,
                "a Sampled value X-Ray does not define",
            ),
            (
                "Root=1-58406520-a006649127e371903a2de979;Parent=4c721bf33e3caf8f;Sampled=",
                false,
                "an empty Sampled (the README lists 0, 1 and ? only)",
            ),
            (
                "Root=1-58406520-a006649127e371903a2de979;Parent=4c721bf33e3caf8f;Sampled=?",
                true,
                "? leaves the decision to the receiver",
            ),
            (
                "Root=1-58406520-a006649127e371903a2de979;Parent=4c721bf33e3caf8f",
                true,
                "no Sampled key: the receiver decides",
            ),
            (
                "Root=1-58406520-a006649127e371903a2de979;Sampled=1",
                false,
                "Root-only: a trace but no parent",
            ),
        ];
        for (header, read, reason) in cases {
            assert_eq!(ours_xray(header).is_some(), read, "{reason}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Where opentelemetry-aws's reader is right (every valid header), both read the same.
        #[test]
        fn valid_xray_headers_read_as_opentelemetry_aws_reads_them(
            epoch in any::<u32>(),
            random in any::<[u8; 12]>(),
            parent in any::<u64>().prop_filter("non-zero", |p| *p != 0),
            sampled in prop::sample::select(vec!["0", "1", "?"]),
            lineage in proptest::option::of("[0-9a-f]{8}:[0-9]"),
        ) {
            let random: String = random.iter().map(|b| format!("{b:02x}")).collect();
            let mut header = format!("Root=1-{epoch:08x}-{random};Parent={parent:016x};Sampled={sampled}");
            if let Some(lineage) = lineage {
                header.push_str(&format!(";Lineage={lineage}"));
            }
            prop_assume!(epoch != 0 || random.chars().any(|c| c != '0'));
            prop_assert_eq!(ours_xray(&header), aws_xray(&header), "{}", header);
        }
    }
}
