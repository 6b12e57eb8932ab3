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
use crate::OpenTelemetrySpanExt;
use aws_sdk_sns::{operation as op, types::MessageAttributeValue};
use aws_smithy_runtime_api::client::interceptors::context::{Input, Output};
use std::collections::HashMap;

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

/// The messaging attributes of a send to `destination` (a topic's ARN, or a `Publish`'s `TargetArn`),
/// and `aws.sns.topic.arn` when it names a topic (Application Signals makes the topic the span's
/// remote resource from it).
fn topic_attributes(span: &Span, destination: Option<&str>) {
    span.set_attribute(attr::MESSAGING_SYSTEM, MESSAGING_SYSTEM);
    span.set_attribute(attr::MESSAGING_OPERATION_NAME, "publish");
    span.set_attribute(attr::MESSAGING_OPERATION_TYPE, "send");
    if let Some(arn) = destination {
        if names_a_topic(arn) {
            span.set_attribute(attr::SNS_TOPIC_ARN, arn.to_owned());
        }
        if let Some(name) = arn.rsplit(':').next().filter(|name| !name.is_empty()) {
            span.set_attribute(attr::MESSAGING_DESTINATION_NAME, name.to_owned());
        }
    }
}

/// Whether a `Publish` destination is a topic: a `TargetArn` may name a mobile platform endpoint
/// instead (`…:endpoint/GCM/app/id`), and a topic's name holds no `/`.
fn names_a_topic(arn: &str) -> bool {
    arn.rsplit(':')
        .next()
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_topic_is_recorded_as_the_topic() {
        // (destination, a topic, reason)
        let cases = [
            (
                "arn:aws:sns:us-east-1:123456789012:orders",
                true,
                "a TopicArn",
            ),
            (
                "arn:aws:sns:us-east-1:123456789012:orders.fifo",
                true,
                "a FIFO topic",
            ),
            (
                "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/orders-app/5e3e9847-3183-3f18-a7e8-671c3a57d4b3",
                false,
                "a TargetArn naming a mobile endpoint",
            ),
            ("arn:aws:sns:us-east-1:123456789012:", false, "no name"),
        ];
        for (arn, topic, reason) in cases {
            assert_eq!(names_a_topic(arn), topic, "{arn}: {reason}");
        }
    }
}
