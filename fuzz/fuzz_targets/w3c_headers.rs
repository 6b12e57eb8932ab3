//! W3C `traceparent`, `tracestate` and `baggage`, as message attributes and HTTP headers carry them:
//! the input is the three values, one per line. A valid span context injects and extracts again to
//! the same context. Baggage is only required not to panic: opentelemetry's baggage propagator does not
//! re-encode what it decoded (a literal `%`, a `%2C` that becomes a `,`, raw metadata characters), so
//! a second hop may drop, split or pass through an entry (kept in fuzz/regressions/w3c_headers);
//! tracekit's SQS injection drops values SQS would refuse (`aws::sqs`, tested there).
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use std::collections::HashMap;
use tracekit::config::Propagator;
use tracekit::propagation;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.splitn(3, '\n');
    let mut carrier = HashMap::new();
    for key in ["traceparent", "tracestate", "baggage"] {
        if let Some(value) = lines.next() {
            carrier.insert(key.to_owned(), value.to_owned());
        }
    }
    let propagator = propagation::composite(&[Propagator::TraceContext, Propagator::Baggage]);
    let cx = propagator.extract(&carrier);
    let mut injected = HashMap::new();
    propagator.inject_context(&cx, &mut injected);
    let again = propagator.extract(&injected);
    if cx.span().span_context().is_valid() {
        assert_eq!(again.span().span_context(), cx.span().span_context());
    }
});
