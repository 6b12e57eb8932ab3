//! Spans for unit tests: one builder for the tests of the packer, the agent, the OTLP exporter and
//! annotations, so each states only what it changes.

use opentelemetry::{
    KeyValue,
    trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState},
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_sdk::{
    Resource,
    trace::{SpanData, SpanEvents, SpanLinks},
};
use std::time::SystemTime;

/// A sampled INTERNAL span `id` of scope `tracekit`, a child of span `0xfeed`, with `attributes`.
pub(crate) fn span(id: u64, attributes: Vec<KeyValue>) -> SpanData {
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

/// A resource with `service.name=orders`.
pub(crate) fn sdk_resource() -> Resource {
    Resource::builder_empty()
        .with_service_name("orders")
        .build()
}

/// The span ids of a request, in order.
pub(crate) fn span_ids(request: &ExportTraceServiceRequest) -> Vec<u64> {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| u64::from_be_bytes(s.span_id.as_slice().try_into().expect("8 bytes")))
        .collect()
}
