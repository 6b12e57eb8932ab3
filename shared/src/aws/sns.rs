//! SNS send-side propagation: W3C context in each message's attributes.
//!
//! The attributes are of type `String`. Every reader of SNS messages gets them as text that way: a
//! Lambda function's SNS event (`MessageAttributes.traceparent.Value`), an SQS queue subscribed with
//! raw delivery (a `String` message attribute, which tracekit's SQS consumer reads), OpenTelemetry's
//! JavaScript and Python consumers. A filter policy only matches the attributes it names, so one
//! more attribute changes no subscription's match; `Binary` would make every reader decode base64.
//! X-Ray's own header travels without an attribute: SNS passes the request's `X-Amzn-Trace-Id` on to
//! SQS (`AWSTraceHeader`) and Lambda subscribers.
use super::{Span, attr, w3c_context};
use aws_sdk_sns::{operation as op, types::MessageAttributeValue};
use aws_smithy_runtime_api::client::interceptors::context::{Input, Output};
use std::collections::HashMap;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// `messaging.system` of SNS.
/// [Messaging attributes](https://opentelemetry.io/docs/specs/semconv/registry/attributes/messaging/)
const MESSAGING_SYSTEM: &str = "aws.sns";
const STRING: &str = "String";

pub(crate) fn inject(
    attributes: &mut HashMap<String, MessageAttributeValue>,
    w3c: &[(&'static str, String)],
) {
    super::inject_attributes(attributes, w3c.iter().cloned(), |value| {
        MessageAttributeValue::builder()
            .data_type(STRING)
            .string_value(value)
            .build()
            .ok()
    });
}

fn topic_attributes(span: &Span, topic_arn: Option<&str>) {
    span.set_attribute(attr::MESSAGING_SYSTEM, MESSAGING_SYSTEM);
    span.set_attribute(attr::MESSAGING_OPERATION_NAME, "publish");
    span.set_attribute(attr::MESSAGING_OPERATION_TYPE, "send");
    if let Some(arn) = topic_arn {
        span.set_attribute(attr::SNS_TOPIC_ARN, arn.to_owned());
        if let Some(name) = arn.rsplit(':').next().filter(|name| !name.is_empty()) {
            span.set_attribute(attr::MESSAGING_DESTINATION_NAME, name.to_owned());
        }
    }
}

pub(super) fn record_and_inject(span: &Span, cx: &opentelemetry::Context, input: &mut Input) {
    if let Some(input) = input.downcast_mut::<op::publish::PublishInput>() {
        topic_attributes(
            span,
            input.topic_arn.as_deref().or(input.target_arn.as_deref()),
        );
        let w3c = w3c_context(cx);
        let attributes = input.message_attributes.get_or_insert_with(HashMap::new);
        inject(attributes, &w3c);
        if attributes.is_empty() {
            input.message_attributes = None;
        }
    } else if let Some(input) = input.downcast_mut::<op::publish_batch::PublishBatchInput>() {
        topic_attributes(span, input.topic_arn.as_deref());
        let entries = input
            .publish_batch_request_entries
            .as_deref_mut()
            .unwrap_or_default();
        span.set_attribute(attr::MESSAGING_BATCH_MESSAGE_COUNT, entries.len() as i64);
        let w3c = w3c_context(cx);
        for entry in entries {
            let attributes = entry.message_attributes.get_or_insert_with(HashMap::new);
            inject(attributes, &w3c);
            if attributes.is_empty() {
                entry.message_attributes = None;
            }
        }
    } else {
        span.set_attribute(attr::MESSAGING_SYSTEM, MESSAGING_SYSTEM);
    }
}

pub(super) fn record_output(span: &Span, output: &Output) {
    if let Some(output) = output.downcast_ref::<op::publish::PublishOutput>()
        && let Some(id) = &output.message_id
    {
        span.set_attribute(attr::MESSAGING_MESSAGE_ID, id.clone());
    }
}

/// Whether the operation sends messages (a PRODUCER span).
pub(super) fn is_send(operation: &str) -> bool {
    matches!(operation, "Publish" | "PublishBatch")
}
