//! SQS send-side propagation; [`inject`] is public as `tracekit::sqs::inject`.
use super::{Span, attr, w3c_context};
use crate::OpenTelemetrySpanExt;
use aws_sdk_sqs::{
    operation as op,
    types::{
        MessageAttributeValue, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
    },
};
use aws_smithy_runtime_api::client::interceptors::context::{Input, Output};
use std::collections::HashMap;

const MESSAGING_SYSTEM: &str = "aws_sqs";
const STRING: &str = "String";

/// Adds W3C context (`traceparent`, then `tracestate`, then `baggage`) from the current span to
/// `attributes`, each only if the key is free and the message keeps at most
/// [`MAX_MESSAGE_ATTRIBUTES`](crate::aws::MAX_MESSAGE_ATTRIBUTES). Returns how many were added. Never removes or replaces anything.
pub fn inject(attributes: &mut HashMap<String, MessageAttributeValue>) -> usize {
    inject_pairs(attributes, w3c_context(&Span::current().context()))
}

pub(crate) fn inject_pairs(
    attributes: &mut HashMap<String, MessageAttributeValue>,
    pairs: impl IntoIterator<Item = (&'static str, String)>,
) -> usize {
    super::inject_attributes(attributes, pairs, |value| {
        MessageAttributeValue::builder()
            .data_type(STRING)
            .string_value(value)
            .build()
            .ok()
    })
}

/// Sets `AWSTraceHeader` unless the user set one.
fn set_trace_header(
    system: &mut Option<HashMap<MessageSystemAttributeNameForSends, MessageSystemAttributeValue>>,
    header: &str,
) {
    let system = system.get_or_insert_with(HashMap::new);
    if system.contains_key(&MessageSystemAttributeNameForSends::AwsTraceHeader) {
        return;
    }
    if let Ok(value) = MessageSystemAttributeValue::builder()
        .data_type(STRING)
        .string_value(header)
        .build()
    {
        system.insert(MessageSystemAttributeNameForSends::AwsTraceHeader, value);
    }
}

fn queue_attributes(span: &Span, queue_url: Option<&str>) {
    span.set_attribute(attr::MESSAGING_SYSTEM, MESSAGING_SYSTEM);
    if let Some(url) = queue_url {
        span.set_attribute(attr::SQS_QUEUE_URL, url.to_owned());
        span.set_attribute(attr::SQS_QUEUE_URL_LEGACY, url.to_owned());
        if let Some(name) = url.rsplit('/').next().filter(|n| !n.is_empty()) {
            span.set_attribute(attr::MESSAGING_DESTINATION_NAME, name.to_owned());
        }
    }
}

fn operation(span: &Span, name: &'static str) {
    span.set_attribute(attr::MESSAGING_OPERATION_NAME, name);
    span.set_attribute(attr::MESSAGING_OPERATION_TYPE, name);
}

pub(super) fn record_and_inject(
    span: &Span,
    cx: &opentelemetry::Context,
    xray_header: Option<&str>,
    input: &mut Input,
) {
    if let Some(input) = input.downcast_mut::<op::send_message::SendMessageInput>() {
        queue_attributes(span, input.queue_url.as_deref());
        operation(span, "send");
        let w3c = w3c_context(cx);
        if let Some(header) = xray_header {
            set_trace_header(&mut input.message_system_attributes, header);
        }
        let attributes = input.message_attributes.get_or_insert_with(HashMap::new);
        inject_pairs(attributes, w3c);
        if attributes.is_empty() {
            input.message_attributes = None;
        }
    } else if let Some(input) =
        input.downcast_mut::<op::send_message_batch::SendMessageBatchInput>()
    {
        queue_attributes(span, input.queue_url.as_deref());
        operation(span, "send");
        let entries = input.entries.as_deref_mut().unwrap_or_default();
        span.set_attribute(attr::MESSAGING_BATCH_MESSAGE_COUNT, entries.len() as i64);
        let w3c = w3c_context(cx);
        for entry in entries {
            if let Some(header) = xray_header {
                set_trace_header(&mut entry.message_system_attributes, header);
            }
            let attributes = entry.message_attributes.get_or_insert_with(HashMap::new);
            inject_pairs(attributes, w3c.iter().cloned());
            if attributes.is_empty() {
                entry.message_attributes = None;
            }
        }
    } else if let Some(input) = input.downcast_ref::<op::receive_message::ReceiveMessageInput>() {
        queue_attributes(span, input.queue_url.as_deref());
        operation(span, "receive");
    } else if let Some(input) = input.downcast_ref::<op::delete_message::DeleteMessageInput>() {
        queue_attributes(span, input.queue_url.as_deref());
    } else if let Some(input) =
        input.downcast_ref::<op::get_queue_attributes::GetQueueAttributesInput>()
    {
        queue_attributes(span, input.queue_url.as_deref());
    } else {
        span.set_attribute(attr::MESSAGING_SYSTEM, MESSAGING_SYSTEM);
    }
}

pub(super) fn record_output(span: &Span, output: &Output) {
    if let Some(output) = output.downcast_ref::<op::send_message::SendMessageOutput>() {
        if let Some(id) = &output.message_id {
            span.set_attribute(attr::MESSAGING_MESSAGE_ID, id.clone());
        }
    } else if let Some(output) = output.downcast_ref::<op::receive_message::ReceiveMessageOutput>()
    {
        let count = output.messages.as_ref().map_or(0, Vec::len);
        span.set_attribute(attr::MESSAGING_BATCH_MESSAGE_COUNT, count as i64);
    }
}
