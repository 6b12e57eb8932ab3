//! Entry points for tracekit's cargo-fuzz targets (`fuzz/`, feature `fuzzing`) into readers the
//! public API reaches only over the network: an OTLP endpoint's `Retry-After`, and the rewrite of
//! a span's annotations and metadata that the agent and OTLP paths make at export. Thin wrappers,
//! not part of tracekit's API: no semver promise.

use opentelemetry_sdk::trace::SpanData;
use std::time::Duration;

/// The delay an OTLP endpoint's answer asks for in `Retry-After`, as the OTLP exporter reads it
/// before a retry; `None` when it asks for none tracekit can read.
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    crate::flush::retry_after(headers)
}

/// `span` as the agent and OTLP paths export it: annotations and metadata rewritten into the
/// attributes X-Ray's OTLP translators read (`aws.xray.annotations`, `aws.xray.metadata.<namespace>`).
pub fn for_otlp(span: &mut SpanData) {
    crate::annotations::for_otlp(&mut span.attributes);
    crate::metadata::for_otlp(&mut span.attributes);
}
