//! The X-Ray trace header, as Lambda hands it to the invocation (`Lambda-Runtime-Trace-Id`) and as
//! HTTP and SQS carry it (`X-Amzn-Trace-Id`, `AWSTraceHeader`): tracekit's strict parser, the
//! invocation parent built from it, and the X-Ray propagator's extract.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use std::collections::HashMap;
use tracekit::config::{Propagator, SampledZeroPolicy, SamplerConfig};
use tracekit::propagation::{self, XrayHeader};

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = XrayHeader::parse(header) {
        // What parses is a usable parent, and its trace id prints and parses back the same.
        assert!(parsed.trace_id != opentelemetry::trace::TraceId::INVALID);
        let root = propagation::xray_trace_id(parsed.trace_id);
        let again = XrayHeader::parse(&format!("Root={root};Parent={}", parsed.parent_id))
            .expect("a header tracekit printed parses");
        assert_eq!(again.trace_id, parsed.trace_id);
        for policy in [SampledZeroPolicy::Defer, SampledZeroPolicy::Honor, SampledZeroPolicy::Sample] {
            assert!(parsed.to_parent(policy, &SamplerConfig::AlwaysOn).is_valid());
        }
    }
    let _ = propagation::invocation_parent(
        Some(header),
        SampledZeroPolicy::Defer,
        &SamplerConfig::AlwaysOn,
    );
    let carrier = HashMap::from([("x-amzn-trace-id".to_owned(), header.to_owned())]);
    let cx = propagation::composite(&[Propagator::Xray]).extract(&carrier);
    let _ = cx.span().span_context().is_valid();
});
