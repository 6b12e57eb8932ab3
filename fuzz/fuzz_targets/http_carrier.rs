//! An HTTP event's trace headers and the invocation's parent, under `OTEL_PROPAGATORS=xray-lambda`
//! (where the request's own `traceparent` or `X-Amzn-Trace-Id` may be the parent): the input is the
//! event (API Gateway, ALB, function URL; `headers` and `multiValueHeaders` with any keys, cases and
//! repeats), run through the invocation layer beside a valid `Lambda-Runtime-Trace-Id`. What the
//! README documents holds: the parent is Lambda's segment or a span the request names, never one
//! made up; a request's parent is in another trace than Lambda's, which then becomes a link; a
//! repeated `traceparent` (two keys differing in case, or two values in `multiValueHeaders`) is no
//! context; and a malformed carrier costs at most one warning.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use common::{LAMBDA_HEADER, LAMBDA_PARENT, LAMBDA_TRACE, invocation_span, span_ids};
use std::fmt;
use tracekit::Config;
use tracekit::opentelemetry::trace::{SpanId, TraceId};
use tracekit::testing::{FakeInvocation, TestTelemetry};

/// A header map's trace headers, every entry kept, repeated keys included (a JSON object may
/// repeat a key).
#[derive(Default)]
struct Headers(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = Headers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of headers")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    // Only the trace headers are read (as tracekit reads them: other values are
                    // skipped unread, invalid UTF-8 and all).
                    if ["traceparent", "tracestate", "x-amzn-trace-id"]
                        .iter()
                        .any(|name| key.eq_ignore_ascii_case(name))
                    {
                        entries.push((key, map.next_value::<Value>()?));
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Headers(entries))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

#[derive(serde::Deserialize)]
struct Event {
    headers: Option<Headers>,
    #[serde(rename = "multiValueHeaders")]
    multi_value_headers: Option<Headers>,
}

/// The string values of `name` in `headers`: one per entry, each string of an array.
fn values<'a>(headers: &'a Headers, name: &str) -> Vec<&'a str> {
    headers
        .0
        .iter()
        .filter(|(key, _)| key.eq_ignore_ascii_case(name))
        .flat_map(|(_, value)| match value {
            Value::String(text) => vec![text.as_str()],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// How many entries of `name` in `headers` hold a value the reader takes (a string, or an array with
/// one).
fn entries(headers: &Headers, name: &str) -> usize {
    headers
        .0
        .iter()
        .filter(|(key, value)| {
            key.eq_ignore_ascii_case(name)
                && match value {
                    Value::String(_) => true,
                    Value::Array(items) => items.iter().any(Value::is_string),
                    _ => false,
                }
        })
        .count()
}

fuzz_target!(|data: &[u8]| {
    let event: Event = serde_json::from_slice(data).unwrap_or(Event {
        headers: None,
        multi_value_headers: None,
    });
    let single = event.headers.unwrap_or_default();
    let multi = event.multi_value_headers.unwrap_or_default();

    let config = Config::from_lookup(|name| match name {
        "OTEL_PROPAGATORS" => Some("tracecontext,baggage,xray-lambda".to_owned()),
        // Every invocation recorded, whatever the carrier's sampled flag, so its parent is seen.
        "OTEL_TRACES_SAMPLER" => Some("always_on".to_owned()),
        _ => None,
    })
    .expect("a valid configuration");
    let test = TestTelemetry::with_config(config);
    let invocation = FakeInvocation::raw(data)
        .trace_header(LAMBDA_HEADER)
        .into_invocation();
    let span = invocation_span(&test, invocation);
    let lambda_trace = TraceId::from_hex(LAMBDA_TRACE).expect("hex");
    let lambda_parent = SpanId::from_hex(LAMBDA_PARENT).expect("hex");
    let parent = span.parent_span_id.to_string();

    let traceparents: Vec<&str> = values(&single, "traceparent")
        .into_iter()
        .chain(values(&multi, "traceparent"))
        .collect();
    let xray: Vec<&str> = values(&single, "x-amzn-trace-id")
        .into_iter()
        .chain(values(&multi, "x-amzn-trace-id"))
        .collect();
    let mut named = span_ids(traceparents.iter().copied());
    named.extend(span_ids(xray.iter().copied()));
    named.insert(LAMBDA_PARENT.to_owned());
    assert!(
        named.contains(&parent),
        "parent {parent} is neither Lambda's nor one the request names"
    );

    if span.parent_span_id != lambda_parent {
        assert_ne!(
            span.span_context.trace_id(),
            lambda_trace,
            "a request in Lambda's own trace is not the parent"
        );
        assert!(
            span.links
                .iter()
                .any(|link| link.span_context.span_id() == lambda_parent),
            "Lambda's segment is a link when the request is the parent"
        );
    }

    let repeated = entries(&single, "traceparent") >= 2 || values(&multi, "traceparent").len() >= 2;
    if repeated {
        let mut allowed = span_ids(xray.iter().copied());
        allowed.insert(LAMBDA_PARENT.to_owned());
        assert!(
            allowed.contains(&parent) || !span_ids(traceparents.iter().copied()).contains(&parent),
            "a repeated traceparent was taken as the parent ({parent})"
        );
    }

    let warnings = test
        .log_lines()
        .iter()
        .filter(|line| line.contains("\"level\":\"WARN\""))
        .count();
    assert!(
        warnings <= 1,
        "{warnings} warnings for one request's trace headers"
    );
});
