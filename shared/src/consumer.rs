//! What the consumers (SQS, SNS, streams) share: the CONSUMER span of one message and how its
//! handler runs; for the messaging consumers, the producer's context from a message's attributes and
//! how the span follows its producer (the link-or-parent policy).

use crate::OpenTelemetrySpanExt;
#[cfg(any(feature = "sqs", feature = "sns"))]
use crate::propagation::{AnyCase, Carried};
#[cfg(any(feature = "sqs", feature = "sns"))]
use opentelemetry::{
    Context, KeyValue,
    trace::{SpanContext, TraceContextExt, TraceFlags},
};
#[cfg(any(feature = "sqs", feature = "sns"))]
use std::collections::HashMap;
use tracing::{Instrument, Span};

/// Attribute keys. [Messaging spans](https://opentelemetry.io/docs/specs/semconv/messaging/messaging-spans/).
mod attr {
    pub(super) use opentelemetry_semantic_conventions::attribute::MESSAGING_DESTINATION_NAME;
    pub(super) use opentelemetry_semantic_conventions::attribute::MESSAGING_MESSAGE_ID;
    pub(super) use opentelemetry_semantic_conventions::attribute::MESSAGING_OPERATION_NAME;
    pub(super) use opentelemetry_semantic_conventions::attribute::MESSAGING_OPERATION_TYPE;
    pub(super) use opentelemetry_semantic_conventions::attribute::MESSAGING_SYSTEM;
}

/// `messaging.operation.name` / `.type` of the per-message span.
const PROCESS: &str = "process";

/// The CONSUMER span `process <destination>` of one message of `system` (`None` for a system the
/// conventions name no value for, such as Kinesis).
pub(crate) fn process_span(
    system: Option<&'static str>,
    destination: &str,
    message_id: Option<&str>,
) -> Span {
    process_span_of_kind(system, destination, message_id, CONSUMER)
}

/// `otel.kind` of a span that stands for a message's or a batch's processing.
pub(crate) const CONSUMER: &str = "consumer";
/// `otel.kind` of a message's span under a batch's CONSUMER span.
#[cfg(feature = "sqs")]
pub(crate) const INTERNAL: &str = "internal";

/// [`process_span`] of another kind: [`INTERNAL`] for a message under its batch's span.
pub(crate) fn process_span_of_kind(
    system: Option<&'static str>,
    destination: &str,
    message_id: Option<&str>,
    kind: &'static str,
) -> Span {
    let span = tracing::info_span!(
        target: "tracekit::consumer",
        "process",
        otel.name = format!("{PROCESS} {destination}"),
        otel.kind = kind,
        { attr::MESSAGING_SYSTEM } = system,
        { attr::MESSAGING_OPERATION_NAME } = PROCESS,
        { attr::MESSAGING_OPERATION_TYPE } = PROCESS,
        { attr::MESSAGING_DESTINATION_NAME } = destination,
    );
    if let Some(id) = message_id {
        span.set_attribute(attr::MESSAGING_MESSAGE_ID, id.to_owned());
    }
    span
}

#[cfg(any(feature = "sqs", feature = "sns"))]
/// Links `span` to its message's `producer` and, when `parent` (a batch of one under
/// `parent-if-single`) and the export path can hold the producer's trace id (X-Ray segment
/// documents, `xray_ids_only`, hold X-Ray ids only), makes the producer its parent.
pub(crate) fn follow(
    span: &Span,
    producer: SpanContext,
    message_id: &str,
    parent: bool,
    xray_ids_only: bool,
) {
    if parent && crate::propagation::export_holds(xray_ids_only, producer.trace_id()) {
        // The process span follows the invocation's sampling decision, not the producer's: an
        // invocation that is recorded shows all of its work.
        let sampled = Span::current().context().span().span_context().is_sampled();
        let parent = SpanContext::new(
            producer.trace_id(),
            producer.span_id(),
            if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            true,
            producer.trace_state().clone(),
        );
        let _ = span.set_parent(Context::new().with_remote_span_context(parent));
    }
    add_link(span, producer, message_id);
}

#[cfg(any(feature = "sqs", feature = "sns"))]
/// Links `span` to a message's `producer`, naming the message.
pub(crate) fn add_link(span: &Span, producer: SpanContext, message_id: &str) {
    let link = vec![KeyValue::new(
        attr::MESSAGING_MESSAGE_ID,
        message_id.to_owned(),
    )];
    span.add_link_with_attributes(producer, link);
}

#[cfg(any(feature = "sqs", feature = "sns"))]
/// The producer's context from a message's attributes (or an SNS envelope's), through every
/// configured propagator: a `traceparent`, or an `X-Amzn-Trace-Id` alone (as OpenTelemetry JS's
/// aws-sdk instrumentation writes with the X-Ray propagator), keys in any case. Keys that carry no
/// context on their own (`tracestate`, `baggage`) are not a reason to warn when nothing else is
/// there; a `traceparent` given twice (keys differing in case) is no context, with one warning,
/// and another format among the attributes still counts.
pub(crate) fn from_attributes(
    attributes: &HashMap<&str, &str>,
    message_id: &str,
    carrier: &str,
) -> Option<SpanContext> {
    let fields = AnyCase::new(attributes.iter().map(|(key, value)| (*key, *value)));
    let repeated = crate::propagation::repeated_traceparent(&fields);
    match crate::propagation::extract_carried(&fields) {
        Carried::Context(context) => {
            if repeated {
                tracing::warn!(
                    message_id,
                    carrier,
                    "ignoring a repeated traceparent on a message"
                );
            }
            Some(context.span().span_context().clone())
        }
        Carried::Refused => {
            tracing::warn!(
                message_id,
                carrier,
                "ignoring a malformed or repeated trace context on a message"
            );
            None
        }
        Carried::Nothing => None,
    }
}

/// Why a record did not read as its consumer's type, in words that hold none of the record's
/// content: serde's own message quotes the value it refused (`invalid type: string "…"`), which
/// may be a user's data, and this text lands in a log line and a span's `exception.message`. A
/// missing field is named (the name is the event type's, never the record's); anything else is
/// said without detail.
pub(crate) fn shape_error(error: &serde_json::Error) -> String {
    let missing = error
        .to_string()
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, _)| field.to_owned());
    match missing {
        Some(field) => format!("the record has no `{field}`"),
        None => "a field of the record is not of its documented type".to_owned(),
    }
}

/// `source` (a record's `eventSource`) when it reads as an AWS service's name (`aws:sqs`), for an
/// error text; anything else may be a caller's own text and is not repeated.
pub(crate) fn source_name(source: &str) -> &str {
    let named = source.strip_prefix("aws:").is_some_and(|service| {
        (1..=40).contains(&service.len())
            && service
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    });
    if named { source } else { "another source" }
}

#[cfg(any(feature = "sqs", feature = "sns"))]
/// Takes out of the attribute map at `field` of `message` (a record's JSON) every entry that does
/// not read as an `A`, so that one malformed attribute cannot fail its message; a `field` that is
/// not a map at all (nor `null`) becomes an empty one. `true` when anything was taken out: the
/// message's carrier is malformed, and its trace context is not read.
pub(crate) fn drop_malformed_attributes<A: serde::de::DeserializeOwned>(
    message: &mut serde_json::Value,
    field: &str,
) -> bool {
    let Some(attributes) = message.get_mut(field) else {
        return false;
    };
    match attributes {
        serde_json::Value::Null => false,
        serde_json::Value::Object(map) => {
            let before = map.len();
            map.retain(|_, value| A::deserialize(&*value).is_ok());
            map.len() != before
        }
        _ => {
            *attributes = serde_json::Value::Object(serde_json::Map::new());
            true
        }
    }
}

#[cfg(any(feature = "sqs", feature = "sns"))]
/// The one warning for a message whose attributes were not the documented shape: it is processed,
/// without its producer's context. Nothing of the attributes is repeated.
pub(crate) fn warn_malformed_carrier(span: &Span, message_id: &str, carrier: &str) {
    span.in_scope(|| {
        tracing::warn!(
            message_id,
            carrier,
            "a message's attributes are not their documented shape: the message is processed without its producer's trace context"
        );
    });
}

/// Runs `handler` on one message inside its `span`. A failure is recorded on the span and logged
/// with `warning` and the message's id, which is returned with what the handler answered (its
/// `error.type` as the span names it, and its message).
pub(crate) async fn run_handler<M, F, Fut, E>(
    span: Span,
    id: String,
    message: M,
    handler: &F,
    warning: &'static str,
) -> Result<(), (String, lambda_runtime::Diagnostic)>
where
    F: Fn(M) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<lambda_runtime::Diagnostic> + 'static,
{
    match handler(message).instrument(span.clone()).await {
        Ok(()) => Ok(()),
        Err(error) => {
            let (diagnostic, error_type) = crate::error::diagnose(error);
            crate::error::record(&span, &error_type, &diagnostic.error_message);
            span.in_scope(|| tracing::warn!(message_id = %id, %error_type, "{warning}"));
            let answered = lambda_runtime::Diagnostic {
                error_type,
                error_message: diagnostic.error_message,
            };
            Err((id, answered))
        }
    }
}
