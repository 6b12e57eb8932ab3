//! EventBridge send-side propagation: each `PutEvents` entry's `TraceHeader`, from the PRODUCER
//! span, unless the user set one. EventBridge hands it on to the rule's targets (a Lambda function's
//! invocation header, an SQS message's `AWSTraceHeader`).
//! [EventBridge and X-Ray](https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-related-service-xray.html)
use super::{Span, attr};
use crate::OpenTelemetrySpanExt;
use aws_sdk_eventbridge::operation as op;
use aws_smithy_runtime_api::client::interceptors::context::Input;

/// The bus a `PutEvents` entry without `EventBusName` goes to.
const DEFAULT_BUS: &str = "default";

pub(super) fn record_and_inject(span: &Span, xray_header: Option<&str>, input: &mut Input) {
    let Some(input) = input.downcast_mut::<op::put_events::PutEventsInput>() else {
        return;
    };
    span.set_attribute(attr::MESSAGING_OPERATION_NAME, "put_events");
    span.set_attribute(attr::MESSAGING_OPERATION_TYPE, "send");
    let entries = input.entries.as_deref_mut().unwrap_or_default();
    span.set_attribute(attr::MESSAGING_BATCH_MESSAGE_COUNT, entries.len() as i64);
    let bus = entries
        .first()
        .and_then(|entry| entry.event_bus_name.as_deref())
        .map(|bus| bus.rsplit('/').next().unwrap_or(bus))
        .unwrap_or(DEFAULT_BUS);
    span.set_attribute(attr::MESSAGING_DESTINATION_NAME, bus.to_owned());
    if let Some(header) = xray_header {
        inject(entries, header);
    }
}

/// `header` in each entry's `TraceHeader`, unless the user set one.
pub(crate) fn inject(
    entries: &mut [aws_sdk_eventbridge::types::PutEventsRequestEntry],
    header: &str,
) {
    for entry in entries {
        entry.trace_header.get_or_insert_with(|| header.to_owned());
    }
}

/// Whether the operation sends events (a PRODUCER span).
pub(super) fn is_send(operation: &str) -> bool {
    operation == "PutEvents"
}
