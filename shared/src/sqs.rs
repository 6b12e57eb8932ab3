//! The SQS consumer side: producer context per message, one `process` span per message, partial
//! batch failures.
//!
//! A function triggered by SQS takes an [`SqsBatch`] and hands it to a [`BatchProcessor`] with a
//! closure per message. Each message gets a CONSUMER span `process <queue>`, child of the invocation
//! span and linked to the producer's context; under [`SqsParentPolicy::ParentIfSingle`] a batch of one
//! continues the producer's trace instead. A message whose closure fails is recorded on its own span
//! and listed in the returned [`SqsBatchResponse`], so the event source mapping (with
//! `ReportBatchItemFailures`) redelivers exactly the failed messages.
//!
//! ```no_run
//! use lambda_runtime::{Error, LambdaEvent, service_fn};
//! use tracekit::sqs::{BatchProcessor, SqsBatch, SqsBatchResponse, SqsMessage};
//!
//! async fn handle(message: SqsMessage) -> Result<(), Error> {
//!     let body = message.body.as_deref().unwrap_or_default();
//!     let order: serde_json::Value = serde_json::from_str(body)?; // a bad body fails this message only
//!     tracing::info!(id = %order["id"], "processing");
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     let telemetry = tracekit::init()?;
//!     let processor = BatchProcessor::from_config(telemetry.config());
//!     tracekit::run(&telemetry, service_fn(|event: LambdaEvent<SqsBatch>| {
//!         let processor = processor.clone();
//!         async move { Ok::<SqsBatchResponse, Error>(processor.process(event.payload, handle).await) }
//!     }))
//!     .await
//! }
//! ```
//!
//! ## Where the producer context comes from
//! In this order, the first one that parses wins ([`producer_context`]):
//! 1. message attributes (`traceparent`/`tracestate`/`baggage`, or `X-Amzn-Trace-Id`: every field
//!    of the configured propagators);
//! 2. the `AWSTraceHeader` system attribute (X-Ray format);
//! 3. an SNS envelope in the body (SNS → SQS without raw delivery), whose `MessageAttributes` are
//!    `{"Type": …, "Value": …}` objects.
//!
//! A malformed carrier is skipped with one warning; the message is still processed, without a link.
//! A `traceparent` given twice (attribute names differing in case) is no context, with one warning.
//! So is a message whose `messageAttributes` or `attributes` are not their documented shape (a map
//! of attribute objects, a map of strings): the entries that are not are left out of the
//! [`SqsMessage`] the handler gets, no context is read from the message, and the warning repeats
//! none of them.
//!
//! ## Malformed records
//! Records are read one by one: a record that does not have the shape of an SQS message is that
//! record's failure (traced, reported by its `messageId`), never the batch's; the error recorded
//! names a missing field at most, never a value of the record. A record without even a
//! `messageId` cannot be named, so it is reported with an empty identifier, which makes Lambda retry
//! the whole batch: slower, but nothing is lost.
//!
//! ## Batches and links
//! By default ([`SqsSpans::PerMessage`]) each message's span carries its producer's link. With
//! [`SqsSpans::Batch`] (`TRACEKIT_SQS_SPANS=batch`) the batch gets one CONSUMER span `process
//! <queue>` with `messaging.batch.message_count` and the producers' links, and the messages' spans
//! are INTERNAL children of it. Either way a batch keeps within X-Ray's limits: at most
//! [`MAX_BATCH_SPAN_LINKS`] links on a batch span (X-Ray's 20 linked traces per segment), at most
//! [`MAX_BATCH_LINKS`] in a batch of per-message spans (X-Ray's 100 links per trace). The links left
//! out are counted in `tracekit.links.dropped` on the batch's span (the invocation span under
//! `per-message`); the messages are all processed.
//!
//! ## FIFO queues
//! Messages from a `.fifo` queue are processed one at a time, in order; after a failure the rest of
//! the batch is reported failed without being processed, so that the group's order holds on retry.

use crate::OpenTelemetrySpanExt;
/// Send-side propagation for a message built by hand (the interceptor does it for every
/// `SendMessage` and `SendMessageBatch` of a traced client).
pub use crate::aws::sqs::inject;
use crate::config::{Config, SqsParentPolicy, SqsSpans};
use crate::consumer::{CONSUMER, INTERNAL};
use crate::error::record as record_error;
use futures_util::StreamExt;
use lambda_runtime::Diagnostic;
use opentelemetry::trace::{SpanContext, TraceFlags};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use tracing::{Instrument, Span};

use aws_lambda_events::sqs::SqsMessageAttribute;
pub use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};

/// `messaging.system` for SQS.
const AWS_SQS: &str = "aws_sqs";
/// The system attribute X-Ray reads. [SQS and X-Ray](https://docs.aws.amazon.com/xray/latest/devguide/xray-services-sqs.html)
const AWS_TRACE_HEADER: &str = "AWSTraceHeader";
/// `error.type` of a record that is not an SQS message.
pub const MALFORMED_RECORD: &str = "MalformedRecord";
/// `error.type` of a FIFO message left unprocessed after an earlier failure in its batch.
pub const SKIPPED_AFTER_FAILURE: &str = "SkippedAfterEarlierFailure";
/// The most links a batch span holds: X-Ray keeps at most 20 linked traces per segment.
pub const MAX_BATCH_SPAN_LINKS: usize = 20;
/// The most links the per-message spans of one batch hold: X-Ray keeps at most 100 links per trace,
/// and they are all in the invocation's.
pub const MAX_BATCH_LINKS: usize = 100;
/// How many producer links a batch left out, on the span that stands for the batch.
const LINKS_DROPPED: &str = "tracekit.links.dropped";
/// The batch span's message count.
const BATCH_MESSAGE_COUNT: &str =
    opentelemetry_semantic_conventions::attribute::MESSAGING_BATCH_MESSAGE_COUNT;

/// An SQS event whose records are read one by one, so one malformed record cannot fail the batch.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct SqsBatch {
    /// The records, as Lambda sent them.
    #[serde(rename = "Records", default)]
    pub records: Vec<serde_json::Value>,
}

/// Runs a closure per message under its own `process` span and collects the failures.
#[derive(Debug, Clone)]
pub struct BatchProcessor {
    policy: SqsParentPolicy,
    spans: SqsSpans,
    concurrency: usize,
    /// Spans go as X-Ray segment documents, which hold X-Ray trace ids only.
    xray_ids_only: bool,
}

impl Default for BatchProcessor {
    fn default() -> Self {
        Self::new(SqsParentPolicy::default())
    }
}

impl BatchProcessor {
    /// Sequential processing with `policy`.
    pub fn new(policy: SqsParentPolicy) -> Self {
        BatchProcessor {
            policy,
            spans: SqsSpans::default(),
            concurrency: 1,
            xray_ids_only: false,
        }
    }

    /// The policy from tracekit's configuration (`TRACEKIT_SQS_PARENT`), and its exporter: with
    /// X-Ray segment documents (`OTEL_TRACES_EXPORTER=xray`), a producer whose trace id X-Ray cannot
    /// hold (a random W3C id, a trace over 30 days old) is linked, never the parent, or X-Ray would
    /// refuse every span of the message.
    /// (`TRACEKIT_SQS_SPANS`: which span holds the links.)
    pub fn from_config(config: &Config) -> Self {
        let mut processor = Self::new(config.sqs_parent).spans(config.sqs_spans);
        processor.xray_ids_only =
            matches!(config.exporter, crate::config::ExporterConfig::Xray { .. });
        processor
    }

    /// Which span of a batch holds the producers' links ([`SqsSpans`]).
    pub fn spans(mut self, spans: SqsSpans) -> Self {
        self.spans = spans;
        self
    }

    /// Processes up to `limit` messages at once (at least 1). FIFO batches stay sequential.
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = limit.max(1);
        self
    }

    /// Processes every record of `batch` with `handler` and returns the failed ones.
    ///
    /// Call it inside the invocation (under [`crate::run`]), so the `process` spans are children of
    /// the invocation span.
    pub async fn process<F, Fut, E>(&self, batch: SqsBatch, handler: F) -> SqsBatchResponse
    where
        F: Fn(SqsMessage) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Into<Diagnostic> + 'static,
    {
        let count = batch.records.len();
        let single = count == 1;
        let fifo = batch.records.iter().any(is_fifo);
        let batch_span = (self.spans == SqsSpans::Batch && count > 0).then(|| {
            let span =
                crate::consumer::process_span(Some(AWS_SQS), &queue_of(&batch.records[0]), None);
            span.set_attribute(
                BATCH_MESSAGE_COUNT,
                i64::try_from(count).unwrap_or(i64::MAX),
            );
            span
        });
        let state = BatchState::new(batch_span, single);
        let work = async {
            let mut failures: Vec<(usize, String)> = Vec::new();
            if fifo || self.concurrency == 1 {
                let mut failed = false;
                for (index, record) in batch.records.into_iter().enumerate() {
                    let outcome = if fifo && failed {
                        skip(record, state.kind())
                    } else {
                        self.process_one(record, &state, &handler).await
                    };
                    if let Err(id) = outcome {
                        failed = true;
                        failures.push((index, id));
                    }
                }
            } else {
                let (handler, state) = (&handler, &state);
                let mut outcomes =
                    futures_util::stream::iter(batch.records.into_iter().enumerate())
                        .map(|(index, record)| async move {
                            (index, self.process_one(record, state, handler).await)
                        })
                        .buffer_unordered(self.concurrency);
                while let Some((index, outcome)) = outcomes.next().await {
                    if let Err(id) = outcome {
                        failures.push((index, id));
                    }
                }
                failures.sort_by_key(|(index, _)| *index);
            }
            failures
        };
        // Span::none() enters nothing: the messages' spans stay children of the invocation.
        let failures = work
            .instrument(state.span.clone().unwrap_or_else(Span::none))
            .await;
        let dropped = state.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            let holder = state.span.clone().unwrap_or_else(Span::current);
            holder.set_attribute(LINKS_DROPPED, i64::try_from(dropped).unwrap_or(i64::MAX));
            holder.in_scope(|| {
                tracing::debug!(
                    dropped,
                    "producer links left out of the batch: X-Ray's limit"
                );
            });
        }
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures
            .into_iter()
            .map(|(_, id)| {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                failure
            })
            .collect();
        response
    }

    /// Processes one record; `Err(message id)` when it failed.
    async fn process_one<F, Fut, E>(
        &self,
        record: serde_json::Value,
        batch: &BatchState,
        handler: &F,
    ) -> Result<(), String>
    where
        F: Fn(SqsMessage) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Into<Diagnostic> + 'static,
    {
        // serde reads a struct from a JSON array too (field by position); a record is an object.
        let mut record = record;
        let malformed_carrier = record.is_object() && {
            let user = crate::consumer::drop_malformed_attributes::<SqsMessageAttribute>(
                &mut record,
                "messageAttributes",
            );
            let system =
                crate::consumer::drop_malformed_attributes::<String>(&mut record, "attributes");
            user || system
        };
        let parsed = if record.is_object() {
            match not_an_sqs_message(&record) {
                Some(reason) => Err(reason),
                None => SqsMessage::deserialize(&record)
                    .map_err(|error| crate::consumer::shape_error(&error)),
            }
        } else {
            Err("an SQS record is a JSON object".to_owned())
        };
        let message = match parsed {
            Ok(message) => message,
            Err(error) => {
                let id = record_id(&record);
                let span = process_span(&queue_of(&record), Some(&id), batch.kind());
                record_error(&span, MALFORMED_RECORD, &error);
                span.in_scope(|| {
                    tracing::warn!(message_id = %id, %error, "an SQS record is not an SQS message; reported as failed");
                });
                return Err(id);
            }
        };
        let id = message.message_id.clone().unwrap_or_default();
        let span = process_span(
            &queue_of(&record),
            message.message_id.as_deref(),
            batch.kind(),
        );
        if malformed_carrier {
            crate::consumer::warn_malformed_carrier(&span, &id, "message attributes");
        } else if let Some(producer) = producer_context(&message) {
            let parent = batch.single && self.policy == SqsParentPolicy::ParentIfSingle;
            let linked = batch.take_link();
            match &batch.span {
                Some(batch_span) => {
                    if linked {
                        crate::consumer::add_link(batch_span, producer.clone(), &id);
                    }
                    if parent {
                        crate::consumer::follow(&span, producer, &id, true, self.xray_ids_only);
                    }
                }
                None if linked => {
                    crate::consumer::follow(&span, producer, &id, parent, self.xray_ids_only);
                }
                None => {}
            }
        }
        crate::consumer::run_handler(
            span,
            id,
            message,
            handler,
            "SQS message failed; reported for redelivery",
        )
        .await
        .map_err(|(id, _)| id)
    }
}

/// Why `record` is not an SQS message at all, though it is an object: another service's record
/// (SNS, S3, Kinesis, DynamoDB Streams name themselves in `eventSource`/`EventSource`), or a record
/// with neither a source nor a `messageId`. Every field of an SQS message is optional to serde, so
/// such a record would otherwise be handled as an empty message.
fn not_an_sqs_message(record: &serde_json::Value) -> Option<String> {
    let source = record
        .get("eventSource")
        .or_else(|| record.get("EventSource"))
        .and_then(serde_json::Value::as_str);
    match source {
        Some("aws:sqs") => None,
        Some(other) => Some(format!(
            "a record from {}, not an SQS message",
            crate::consumer::source_name(other)
        )),
        None if record
            .get("messageId")
            .is_some_and(serde_json::Value::is_string) =>
        {
            None
        }
        None => Some("a record with neither an eventSource nor a messageId".to_owned()),
    }
}

/// What one message's processing needs to know of its batch: the span that holds the links
/// (`None`: each message's span holds its own), whether the batch holds one message, how many more
/// links X-Ray keeps and how many were left out.
struct BatchState {
    span: Option<Span>,
    single: bool,
    remaining: AtomicUsize,
    dropped: AtomicUsize,
}

impl BatchState {
    fn new(span: Option<Span>, single: bool) -> Self {
        let budget = if span.is_some() {
            MAX_BATCH_SPAN_LINKS
        } else {
            MAX_BATCH_LINKS
        };
        BatchState {
            span,
            single,
            remaining: AtomicUsize::new(budget),
            dropped: AtomicUsize::new(0),
        }
    }

    /// `otel.kind` of a message's span: INTERNAL under a batch span, else CONSUMER.
    fn kind(&self) -> &'static str {
        if self.span.is_some() {
            INTERNAL
        } else {
            CONSUMER
        }
    }

    /// Takes one link from the budget; `false` (and one more dropped) when it is spent.
    fn take_link(&self) -> bool {
        let taken = self
            .remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if !taken {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }
}

/// A FIFO record after an earlier failure: traced and reported, not processed.
fn skip(record: serde_json::Value, kind: &'static str) -> Result<(), String> {
    let id = record_id(&record);
    let span = process_span(&queue_of(&record), Some(&id), kind);
    record_error(
        &span,
        SKIPPED_AFTER_FAILURE,
        "not processed: an earlier message of this FIFO batch failed",
    );
    Err(id)
}

/// The record's `messageId`, or empty (which makes Lambda retry the whole batch).
fn record_id(record: &serde_json::Value) -> String {
    record
        .get("messageId")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The queue name: the last field of the record's `eventSourceARN`.
fn queue_of(record: &serde_json::Value) -> String {
    record
        .get("eventSourceARN")
        .and_then(serde_json::Value::as_str)
        .and_then(|arn| arn.rsplit(':').next())
        .unwrap_or("unknown")
        .to_owned()
}

fn is_fifo(record: &serde_json::Value) -> bool {
    queue_of(record).ends_with(".fifo")
}

fn process_span(queue: &str, message_id: Option<&str>, kind: &'static str) -> Span {
    crate::consumer::process_span_of_kind(Some(AWS_SQS), queue, message_id, kind)
}

/// Where a message's producer context came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Carrier {
    /// W3C (or other configured) keys in the message attributes.
    MessageAttributes,
    /// The `AWSTraceHeader` system attribute.
    AwsTraceHeader,
    /// The message attributes of an SNS envelope in the body.
    SnsEnvelope,
}

/// The producer's span context, from the first carrier that holds a valid one (see the module docs).
pub fn producer_context(message: &SqsMessage) -> Option<SpanContext> {
    producer_context_with_carrier(message).map(|(context, _)| context)
}

/// [`producer_context`], and which carrier it came from.
pub fn producer_context_with_carrier(message: &SqsMessage) -> Option<(SpanContext, Carrier)> {
    let id = message.message_id.as_deref().unwrap_or_default();
    let attributes: HashMap<&str, &str> = message
        .message_attributes
        .iter()
        .filter_map(|(key, value)| Some((key.as_str(), value.string_value.as_deref()?)))
        .collect();
    if let Some(context) = crate::consumer::from_attributes(&attributes, id, "message attributes") {
        return Some((context, Carrier::MessageAttributes));
    }
    if let Some(header) = message.attributes.get(AWS_TRACE_HEADER) {
        match crate::propagation::XrayHeader::parse(header) {
            Ok(header) => {
                let flags = match header.sampled {
                    crate::propagation::XraySampled::Yes => TraceFlags::SAMPLED,
                    _ => TraceFlags::default(),
                };
                let context = SpanContext::new(
                    header.trace_id,
                    header.parent_id,
                    flags,
                    true,
                    header.trace_state,
                );
                return Some((context, Carrier::AwsTraceHeader));
            }
            Err(error) => {
                tracing::warn!(message_id = id, %error, "ignoring the message's AWSTraceHeader");
            }
        }
    }
    let envelope = message
        .body
        .as_deref()
        .filter(|body| body.trim_start().starts_with('{'))
        .and_then(|body| serde_json::from_str::<SnsEnvelope>(body).ok())
        .filter(|envelope| envelope.kind == "Notification")?;
    let attributes: HashMap<&str, &str> = envelope
        .message_attributes
        .iter()
        .filter_map(|(key, value)| Some((key.as_str(), value.value.as_deref()?)))
        .collect();
    crate::consumer::from_attributes(&attributes, id, "SNS envelope")
        .map(|context| (context, Carrier::SnsEnvelope))
}

/// The part of an SNS notification envelope that carries context.
#[derive(Deserialize)]
struct SnsEnvelope {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "MessageAttributes", default)]
    message_attributes: HashMap<String, SnsAttribute>,
}

#[derive(Deserialize)]
struct SnsAttribute {
    #[serde(rename = "Value")]
    value: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestTelemetry;
    use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
    use opentelemetry_sdk::trace::SpanData;
    use serde_json::json;
    use tracing::Instrument;

    const ARN: &str = "arn:aws:sqs:us-east-1:123456789012:orders";
    const TRACEPARENT: &str = "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01";
    const XRAY: &str = "Root=1-6759e988-bd862e3fe1be46a994272793;Parent=63995c3f42cd8ad8;Sampled=1";

    fn record(id: &str) -> serde_json::Value {
        json!({
            "messageId": id,
            "receiptHandle": "handle",
            "body": "{}",
            "attributes": {},
            "messageAttributes": {},
            "eventSource": "aws:sqs",
            "eventSourceARN": ARN,
            "awsRegion": "us-east-1",
        })
    }

    fn with_traceparent(mut record: serde_json::Value, value: &str) -> serde_json::Value {
        record["messageAttributes"]["traceparent"] =
            json!({"stringValue": value, "dataType": "String"});
        record
    }

    fn with_trace_header(mut record: serde_json::Value, value: &str) -> serde_json::Value {
        record["attributes"]["AWSTraceHeader"] = json!(value);
        record
    }

    fn message(record: serde_json::Value) -> SqsMessage {
        serde_json::from_value(record).expect("an SQS message")
    }

    fn sns_body(traceparent: &str) -> String {
        json!({
            "Type": "Notification",
            "MessageId": "sns-1",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:orders",
            "Message": "{\"id\":\"42\"}",
            "MessageAttributes": {
                "traceparent": {"Type": "String", "Value": traceparent},
                "tenant": {"Type": "String", "Value": "a"}
            }
        })
        .to_string()
    }

    /// Two `traceparent` attributes (SQS attribute names are case-sensitive) are no context, with
    /// one warning; the message's other carriers still count.
    #[test]
    fn a_repeated_traceparent_attribute_is_no_context_and_one_warning() {
        let w3c_trace = TraceId::from_hex("5759e988bd862e3fe1be46a994272793").expect("hex");
        let xray_trace = TraceId::from_hex("6759e988bd862e3fe1be46a994272793").expect("hex");
        let other = "00-11111111111111111111111111111111-2222222222222222-01";
        let twice = |mut record: serde_json::Value| {
            record["messageAttributes"]["Traceparent"] =
                json!({"stringValue": other, "dataType": "String"});
            record
        };
        let mut with_xray_attribute = twice(with_traceparent(record("m"), TRACEPARENT));
        with_xray_attribute["messageAttributes"]["X-Amzn-Trace-Id"] =
            json!({"stringValue": XRAY, "dataType": "String"});
        // (record, expected trace and carrier, warnings, reason)
        let cases = [
            (
                twice(with_trace_header(
                    with_traceparent(record("m"), TRACEPARENT),
                    XRAY,
                )),
                Some((xray_trace, Carrier::AwsTraceHeader)),
                1,
                "repeated: the attributes hold no context, AWSTraceHeader is next",
            ),
            (
                with_xray_attribute,
                Some((xray_trace, Carrier::MessageAttributes)),
                1,
                "repeated beside an X-Ray attribute: that one counts",
            ),
            (
                twice(with_traceparent(record("m"), TRACEPARENT)),
                None,
                1,
                "repeated and nothing else",
            ),
            (
                with_trace_header(with_traceparent(record("m"), TRACEPARENT), XRAY),
                Some((w3c_trace, Carrier::MessageAttributes)),
                0,
                "one traceparent",
            ),
        ];
        for (record, expected, warnings, reason) in cases {
            let test = TestTelemetry::new();
            let found = producer_context_with_carrier(&message(record))
                .map(|(context, carrier)| (context.trace_id(), carrier));
            assert_eq!(found, expected, "{reason}");
            let warned = test.warnings();
            assert_eq!(warned.len(), warnings, "{reason}: {warned:#?}");
        }
    }

    #[test]
    fn carriers_are_read_in_order_attributes_then_trace_header_then_sns() {
        let _test = TestTelemetry::new(); // installs the propagators
        let w3c_trace = TraceId::from_hex("5759e988bd862e3fe1be46a994272793").expect("hex");
        let xray_trace = TraceId::from_hex("6759e988bd862e3fe1be46a994272793").expect("hex");
        let sns_trace = TraceId::from_hex("7759e988bd862e3fe1be46a994272793").expect("hex");
        let sns_parent = "00-7759e988bd862e3fe1be46a994272793-73995c3f42cd8ad8-01";
        let mut in_sns = record("m");
        in_sns["body"] = json!(sns_body(sns_parent));
        // (record, expected trace and carrier, reason)
        let cases = [
            (
                with_trace_header(with_traceparent(record("m"), TRACEPARENT), XRAY),
                Some((w3c_trace, Carrier::MessageAttributes)),
                "message attributes win over AWSTraceHeader",
            ),
            (
                with_trace_header(record("m"), XRAY),
                Some((xray_trace, Carrier::AwsTraceHeader)),
                "AWSTraceHeader alone",
            ),
            (
                with_trace_header(with_traceparent(record("m"), "00-zz-bad-01"), XRAY),
                Some((xray_trace, Carrier::AwsTraceHeader)),
                "a malformed traceparent falls through to AWSTraceHeader",
            ),
            (
                in_sns.clone(),
                Some((sns_trace, Carrier::SnsEnvelope)),
                "SNS envelope attributes",
            ),
            (
                with_trace_header(in_sns, "Root=1-short;Parent=1"),
                Some((sns_trace, Carrier::SnsEnvelope)),
                "a malformed AWSTraceHeader falls through to the envelope",
            ),
            (record("m"), None, "no carrier"),
            (
                {
                    // What OpenTelemetry JS's aws-sdk instrumentation writes with the X-Ray
                    // propagator: the X-Ray header as a message attribute, and no traceparent.
                    let mut r = record("m");
                    r["messageAttributes"]["X-Amzn-Trace-Id"] =
                        json!({"stringValue": XRAY, "dataType": "String"});
                    r
                },
                Some((xray_trace, Carrier::MessageAttributes)),
                "an X-Amzn-Trace-Id message attribute alone",
            ),
            (
                {
                    let mut r = record("m");
                    r["messageAttributes"]["baggage"] =
                        json!({"stringValue": "tenant=a", "dataType": "String"});
                    r
                },
                None,
                "baggage alone carries no context (and no warning)",
            ),
            (
                {
                    let mut r = record("m");
                    r["body"] = json!("{not json");
                    r
                },
                None,
                "a body that only looks like JSON",
            ),
        ];
        for (record, expected, reason) in cases {
            let found = producer_context_with_carrier(&message(record))
                .map(|(context, carrier)| (context.trace_id(), carrier));
            assert_eq!(found, expected, "{reason}");
        }
    }

    async fn run(
        test: &TestTelemetry,
        processor: BatchProcessor,
        records: Vec<serde_json::Value>,
        fail: &[&str],
    ) -> (SqsBatchResponse, Vec<SpanData>) {
        let invocation = tracing::info_span!("invocation", otel.kind = "server");
        let response = processor
            .process(SqsBatch { records }, |message| {
                let id = message.message_id.clone().unwrap_or_default();
                let fails = fail.contains(&id.as_str());
                async move {
                    tracing::info!("working on it");
                    if fails {
                        Err(Diagnostic {
                            error_type: "OrderMissing".into(),
                            error_message: format!("order of {id} not found"),
                        })
                    } else {
                        Ok(())
                    }
                }
            })
            .instrument(invocation)
            .await;
        test.telemetry()
            .force_flush(std::time::Duration::from_secs(1))
            .await;
        (response, test.spans())
    }

    fn failed_ids(response: &SqsBatchResponse) -> Vec<&str> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    fn process_spans(spans: &[SpanData]) -> Vec<&SpanData> {
        spans
            .iter()
            .filter(|s| s.name == "process orders")
            .collect()
    }

    fn int_attr(span: &SpanData, key: &str) -> Option<i64> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .and_then(|kv| match kv.value {
                opentelemetry::Value::I64(n) => Some(n),
                _ => None,
            })
    }

    /// `count` messages, each from a producer in a trace of its own.
    fn from_distinct_producers(count: usize) -> Vec<serde_json::Value> {
        (1..=count)
            .map(|n| {
                with_traceparent(
                    record(&format!("m{n}")),
                    &format!("00-{n:032x}-53995c3f42cd8ad8-01"),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn per_message_links_stop_at_x_rays_100_per_trace_and_the_rest_are_counted() {
        let test = TestTelemetry::new();
        let records = from_distinct_producers(MAX_BATCH_LINKS + 30);
        let processor = BatchProcessor::default().concurrency(8);
        let (response, spans) = run(&test, processor, records, &[]).await;
        assert!(
            response.batch_item_failures.is_empty(),
            "every message runs"
        );
        let process = process_spans(&spans);
        assert_eq!(process.len(), MAX_BATCH_LINKS + 30);
        let links: usize = process.iter().map(|s| s.links.len()).sum();
        assert_eq!(links, MAX_BATCH_LINKS, "within X-Ray's links per trace");
        let invocation = spans
            .iter()
            .find(|s| s.name == "invocation")
            .expect("invocation");
        assert_eq!(int_attr(invocation, LINKS_DROPPED), Some(30));

        // Under the limit nothing is dropped, and nothing says so.
        test.reset();
        let (_, spans) = run(
            &test,
            BatchProcessor::default(),
            from_distinct_producers(3),
            &[],
        )
        .await;
        let invocation = spans
            .iter()
            .find(|s| s.name == "invocation")
            .expect("invocation");
        assert_eq!(int_attr(invocation, LINKS_DROPPED), None);
    }

    #[tokio::test]
    async fn a_batch_span_holds_up_to_20_links_and_the_messages_run_under_it() {
        let test = TestTelemetry::new();
        let count = MAX_BATCH_SPAN_LINKS + 5;
        let processor = BatchProcessor::default()
            .spans(SqsSpans::Batch)
            .concurrency(4);
        let (response, spans) =
            run(&test, processor, from_distinct_producers(count), &["m3"]).await;
        assert_eq!(
            failed_ids(&response),
            vec!["m3"],
            "failures stay per message"
        );
        let invocation = spans
            .iter()
            .find(|s| s.name == "invocation")
            .expect("invocation");
        let process = process_spans(&spans);
        let batch: Vec<_> = process
            .iter()
            .filter(|s| s.span_kind == SpanKind::Consumer)
            .collect();
        assert_eq!(batch.len(), 1, "one CONSUMER span for the batch");
        let batch = batch[0];
        assert_eq!(batch.parent_span_id, invocation.span_context.span_id());
        assert_eq!(
            int_attr(batch, BATCH_MESSAGE_COUNT),
            Some(i64::try_from(count).expect("small"))
        );
        assert_eq!(batch.links.len(), MAX_BATCH_SPAN_LINKS);
        assert_eq!(int_attr(batch, LINKS_DROPPED), Some(5));
        assert_eq!(
            int_attr(invocation, LINKS_DROPPED),
            None,
            "counted where the links are"
        );
        let messages: Vec<_> = process
            .iter()
            .filter(|s| s.span_kind == SpanKind::Internal)
            .collect();
        assert_eq!(messages.len(), count);
        for span in &messages {
            assert_eq!(span.parent_span_id, batch.span_context.span_id());
            assert!(span.links.is_empty(), "the batch span holds the links");
            assert!(
                span.attributes
                    .iter()
                    .any(|kv| kv.key.as_str() == "messaging.message.id")
            );
        }
        let errors = messages
            .iter()
            .filter(|s| matches!(s.status, Status::Error { .. }))
            .count();
        assert_eq!(errors, 1, "the failure is on its message's span");
    }

    #[tokio::test]
    async fn a_batch_of_one_under_batch_spans_still_continues_its_producer() {
        let test = TestTelemetry::new();
        let processor = BatchProcessor::default().spans(SqsSpans::Batch);
        let records = vec![with_traceparent(record("a"), TRACEPARENT)];
        let (_, spans) = run(&test, processor, records, &[]).await;
        let process = process_spans(&spans);
        let batch = process
            .iter()
            .find(|s| s.span_kind == SpanKind::Consumer)
            .expect("the batch span");
        let message = process
            .iter()
            .find(|s| s.span_kind == SpanKind::Internal)
            .expect("the message's span");
        assert_eq!(batch.links.len(), 1);
        assert_eq!(
            message.parent_span_id,
            SpanId::from_hex("53995c3f42cd8ad8").expect("hex"),
            "parent-if-single"
        );
        assert_eq!(
            message.span_context.trace_id(),
            TraceId::from_hex("5759e988bd862e3fe1be46a994272793").expect("hex")
        );
    }

    #[tokio::test]
    async fn each_message_gets_a_consumer_span_under_the_invocation_linked_to_its_producer() {
        let test = TestTelemetry::new();
        let records = vec![
            with_traceparent(record("a"), TRACEPARENT),
            with_trace_header(record("b"), XRAY),
            record("c"),
        ];
        let (response, spans) = run(&test, BatchProcessor::default(), records, &[]).await;
        assert!(response.batch_item_failures.is_empty());
        let invocation = spans
            .iter()
            .find(|s| s.name == "invocation")
            .expect("invocation");
        let process = process_spans(&spans);
        assert_eq!(process.len(), 3);
        for span in &process {
            assert_eq!(span.span_kind, SpanKind::Consumer);
            assert_eq!(
                span.parent_span_id,
                invocation.span_context.span_id(),
                "a batch of three: children of the invocation"
            );
            assert_eq!(
                span.span_context.trace_id(),
                invocation.span_context.trace_id()
            );
            let attr = |key: &str| {
                span.attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == key)
                    .map(|kv| kv.value.as_str().into_owned())
            };
            assert_eq!(attr("messaging.system").as_deref(), Some("aws_sqs"));
            assert_eq!(attr("messaging.operation.name").as_deref(), Some("process"));
            assert_eq!(attr("messaging.operation.type").as_deref(), Some("process"));
            assert_eq!(
                attr("messaging.destination.name").as_deref(),
                Some("orders")
            );
        }
        let linked: Vec<(String, SpanId)> = process
            .iter()
            .flat_map(|s| {
                s.links.iter().map(|l| {
                    let id = l
                        .attributes
                        .iter()
                        .find(|kv| kv.key.as_str() == "messaging.message.id")
                        .map(|kv| kv.value.as_str().into_owned())
                        .unwrap_or_default();
                    (id, l.span_context.span_id())
                })
            })
            .collect();
        assert_eq!(
            linked,
            vec![
                (
                    "a".to_owned(),
                    SpanId::from_hex("53995c3f42cd8ad8").expect("hex")
                ),
                (
                    "b".to_owned(),
                    SpanId::from_hex("63995c3f42cd8ad8").expect("hex")
                ),
            ],
            "one link per message that carries context, naming the message"
        );
        let log_lines = test.log_lines();
        assert_eq!(
            log_lines
                .iter()
                .filter(|l| l.contains("working on it"))
                .count(),
            3
        );
    }

    #[tokio::test]
    async fn a_batch_of_one_continues_the_producer_trace_unless_the_policy_is_link() {
        for (policy, continues) in [
            (SqsParentPolicy::ParentIfSingle, true),
            (SqsParentPolicy::Link, false),
        ] {
            let test = TestTelemetry::new();
            let records = vec![with_trace_header(record("a"), XRAY)];
            let (_, spans) = run(&test, BatchProcessor::new(policy), records, &[]).await;
            let span = process_spans(&spans)[0];
            let producer_trace =
                TraceId::from_hex("6759e988bd862e3fe1be46a994272793").expect("hex");
            if continues {
                assert_eq!(span.span_context.trace_id(), producer_trace, "{policy:?}");
                assert_eq!(
                    span.parent_span_id,
                    SpanId::from_hex("63995c3f42cd8ad8").expect("hex")
                );
            } else {
                assert_ne!(span.span_context.trace_id(), producer_trace, "{policy:?}");
            }
            assert_eq!(span.links.len(), 1, "the link stays under both policies");
            assert!(span.span_context.is_sampled());
        }
    }

    /// On the X-Ray segment path a producer's trace is continued only when X-Ray can hold its id;
    /// a random W3C id (an OpenTelemetry producer's default) is linked instead, so X-Ray does not
    /// refuse the message's spans.
    #[tokio::test]
    async fn on_the_segment_path_a_producer_x_ray_cannot_hold_is_linked() {
        let fresh = format!("{:08x}", crate::propagation::now_secs());
        let fresh_header =
            format!("Root=1-{fresh}-bd862e3fe1be46a994272793;Parent=63995c3f42cd8ad8;Sampled=1");
        let random_w3c = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let mut config = crate::Config::from_lookup(|_| None).expect("defaults");
        config.exporter = crate::config::ExporterConfig::Xray {
            daemon_address: "127.0.0.1:2000".into(),
        };
        // (record, exporter config, continues the producer, reason)
        let cases = [
            (
                with_trace_header(record("a"), &fresh_header),
                config.clone(),
                true,
                "an X-Ray id of today",
            ),
            (
                with_traceparent(record("a"), random_w3c),
                config.clone(),
                false,
                "a random W3C id: linked",
            ),
            (
                with_traceparent(record("a"), random_w3c),
                crate::Config::from_lookup(|_| None).expect("defaults"),
                true,
                "the agent path takes any id",
            ),
        ];
        for (record, config, continues, reason) in cases {
            let test = TestTelemetry::new();
            let processor = BatchProcessor::from_config(&config);
            let (_, spans) = run(&test, processor, vec![record], &[]).await;
            let span = process_spans(&spans)[0];
            let producer = span.links[0].span_context.trace_id();
            assert_eq!(
                span.span_context.trace_id() == producer,
                continues,
                "{reason}"
            );
        }
    }

    #[tokio::test]
    async fn failed_and_malformed_records_are_reported_each_on_its_own_span() {
        let test = TestTelemetry::new();
        let mut broken = record("broken");
        broken["body"] = json!({"not": "a string"});
        let mut nameless = record("x");
        nameless
            .as_object_mut()
            .expect("object")
            .remove("messageId");
        nameless["body"] = json!(42);
        let records = vec![record("a"), record("b"), broken, nameless, record("c")];
        let (response, spans) = run(
            &test,
            BatchProcessor::default().concurrency(3),
            records,
            &["b"],
        )
        .await;
        assert_eq!(
            failed_ids(&response),
            vec!["b", "broken", ""],
            "in batch order; the nameless record fails the whole batch rather than vanish"
        );
        let process = process_spans(&spans);
        assert_eq!(process.len(), 5);
        let error_type = |span: &SpanData| {
            span.attributes
                .iter()
                .find(|kv| kv.key.as_str() == "error.type")
                .map(|kv| kv.value.as_str().into_owned())
        };
        let mut errors: Vec<String> = process.iter().filter_map(|s| error_type(s)).collect();
        errors.sort();
        assert_eq!(
            errors,
            vec!["MalformedRecord", "MalformedRecord", "OrderMissing"]
        );
        assert!(
            process
                .iter()
                .filter(|s| error_type(s).is_some())
                .all(|s| matches!(s.status, Status::Error { .. }))
        );
    }

    /// Attributes that are not their documented shape are a malformed carrier: the message is
    /// processed, without its producer's context, with one warning that repeats none of them.
    #[tokio::test]
    async fn malformed_message_attributes_lose_only_the_context() {
        const SECRET: &str = "card-4111111111111111";
        let traceparent = json!({"stringValue": TRACEPARENT, "dataType": "String"});
        // (messageAttributes, attributes, reason)
        let cases = [
            (json!(SECRET), json!({}), "messageAttributes is a string"),
            (json!([SECRET, 1]), json!({}), "messageAttributes is a list"),
            (
                json!({"traceparent": TRACEPARENT, "note": SECRET}),
                json!({}),
                "an attribute is a bare string, not an attribute object",
            ),
            (
                json!({"traceparent": traceparent, "note": {"stringValue": 5, "dataType": SECRET}}),
                json!({}),
                "one attribute's value is a number: the traceparent beside it is not trusted either",
            ),
            (
                json!({"traceparent": traceparent, "note": {"binaryValue": SECRET}}),
                json!({}),
                "one attribute's binary value is not base64",
            ),
            (
                json!({}),
                json!({"AWSTraceHeader": XRAY, "note": {"secret": SECRET}}),
                "a system attribute is not a string",
            ),
            (
                json!({}),
                json!(SECRET),
                "the system attributes are not a map",
            ),
        ];
        for (message_attributes, attributes, reason) in cases {
            let test = TestTelemetry::new();
            let mut malformed = with_trace_header(record("m"), XRAY);
            malformed["messageAttributes"] = message_attributes;
            if attributes != json!({}) {
                malformed["attributes"] = attributes;
            }
            let (response, spans) = run(
                &test,
                BatchProcessor::default(),
                vec![malformed, record("n")],
                &[],
            )
            .await;
            assert!(failed_ids(&response).is_empty(), "{reason}: {response:?}");
            let process = process_spans(&spans);
            assert_eq!(process.len(), 2, "{reason}");
            for span in &process {
                assert!(span.links.is_empty(), "{reason}: no context is read");
                assert_eq!(span.status, Status::Unset, "{reason}");
            }
            let lines = test.log_lines();
            assert_eq!(
                lines.iter().filter(|l| l.contains("working on it")).count(),
                2,
                "{reason}: both messages are processed"
            );
            let warnings: Vec<_> = lines.iter().filter(|l| l.contains("WARN")).collect();
            assert_eq!(warnings.len(), 1, "{reason}: {lines:#?}");
            assert!(warnings[0].contains("\"m\""), "{reason}: names the message");
            assert!(
                lines.iter().all(|l| !l.contains(SECRET)),
                "{reason}: {lines:#?}"
            );
            assert!(
                spans
                    .iter()
                    .flat_map(|s| s
                        .attributes
                        .iter()
                        .chain(s.events.iter().flat_map(|e| e.attributes.iter())))
                    .all(|kv| !kv.value.as_str().contains(SECRET)),
                "{reason}: no span holds the attributes' text"
            );
        }
    }

    /// The error recorded for a record that is not an SQS message names a field at most: serde's
    /// own message quotes the value it refused.
    #[tokio::test]
    async fn a_malformed_record_error_repeats_none_of_its_content() {
        const SECRET: &str = "4111111111111111";
        let mut body = record("a");
        body["body"] = json!(4_111_111_111_111_111_u64);
        let mut source = record("b");
        source["eventSource"] = json!(SECRET);
        for (broken, reason) in [
            (body, "a body that is not a string"),
            (source, "an unknown source"),
        ] {
            let test = TestTelemetry::new();
            let (response, spans) = run(&test, BatchProcessor::default(), vec![broken], &[]).await;
            assert_eq!(failed_ids(&response).len(), 1, "{reason}");
            let span = process_spans(&spans)[0];
            let texts: Vec<String> = span
                .attributes
                .iter()
                .chain(span.events.iter().flat_map(|e| e.attributes.iter()))
                .map(|kv| kv.value.as_str().into_owned())
                .chain(std::iter::once(format!("{:?}", span.status)))
                .chain(test.log_lines())
                .collect();
            assert!(
                texts.iter().any(|t| t.contains("MalformedRecord")),
                "{reason}: {texts:#?}"
            );
            assert!(
                texts.iter().all(|t| !t.contains(SECRET)),
                "{reason}: {texts:#?}"
            );
        }
    }

    /// Records of other services fed to the batch processor are each that record's failure, not
    /// empty messages handled as if they were.
    #[tokio::test]
    async fn records_of_other_services_are_failures_not_empty_messages() {
        // (record, reason)
        let cases = [
            (
                json!({"EventSource": "aws:sns", "EventSubscriptionArn": "arn", "Sns": {"MessageId": "sns-1", "Message": "{}"}}),
                "an SNS record",
            ),
            (
                json!({"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}}}),
                "an S3 record",
            ),
            (
                json!({"eventSource": "aws:kinesis", "eventID": "shardId-000:1", "kinesis": {"data": "e30="}}),
                "a Kinesis record",
            ),
            (json!({"body": "{}"}), "neither a source nor a message id"),
        ];
        for (other, reason) in cases {
            let test = TestTelemetry::new();
            let (response, spans) = run(
                &test,
                BatchProcessor::default(),
                vec![record("a"), other],
                &[],
            )
            .await;
            assert_eq!(failed_ids(&response).len(), 1, "{reason}: {response:?}");
            // The other record names no queue: its span is `process` with an empty queue name.
            let failed: Vec<_> = spans
                .iter()
                .filter(|s| s.span_kind == SpanKind::Consumer)
                .filter(|s| matches!(s.status, Status::Error { .. }))
                .collect();
            assert_eq!(failed.len(), 1, "{reason}");
            let lines = test.log_lines();
            assert_eq!(
                lines.iter().filter(|l| l.contains("working on it")).count(),
                1,
                "{reason}: the handler saw only the SQS message"
            );
        }
    }

    #[tokio::test]
    async fn a_fifo_batch_stops_at_the_first_failure_and_reports_the_rest() {
        let test = TestTelemetry::new();
        let fifo = |id: &str| {
            let mut r = record(id);
            r["eventSourceARN"] = json!("arn:aws:sqs:us-east-1:123456789012:orders.fifo");
            r
        };
        let records = vec![fifo("a"), fifo("b"), fifo("c"), fifo("d")];
        let (response, spans) = run(
            &test,
            BatchProcessor::default().concurrency(4),
            records,
            &["b"],
        )
        .await;
        assert_eq!(failed_ids(&response), vec!["b", "c", "d"]);
        let worked = test
            .log_lines()
            .iter()
            .filter(|l| l.contains("working on it"))
            .count();
        assert_eq!(worked, 2, "c and d are not processed after b failed");
        assert_eq!(
            spans
                .iter()
                .filter(|s| s.name == "process orders.fifo")
                .count(),
            4
        );
    }

    #[tokio::test]
    async fn a_record_that_is_not_an_object_is_malformed_not_read_by_position() {
        // serde would read this array as a message whose id is the first element (found by fuzzing).
        let test = TestTelemetry::new();
        let records = vec![
            record("a"),
            json!(["m-1", "handle", "{}"]),
            json!("m-2"),
            json!(null),
        ];
        let (response, spans) = run(&test, BatchProcessor::default(), records, &["m-1"]).await;
        assert_eq!(failed_ids(&response), vec!["", "", ""]);
        let malformed = spans
            .iter()
            .filter(|s| {
                s.attributes.iter().any(|kv| {
                    kv.key.as_str() == "error.type" && kv.value.as_str() == MALFORMED_RECORD
                })
            })
            .count();
        assert_eq!(malformed, 3);
    }

    /// How a generated record behaves.
    #[derive(Debug, Clone, Copy)]
    enum Fate {
        Succeeds,
        Fails,
        /// `body` is not a string: the record cannot be read as a message. (Malformed
        /// `messageAttributes` lose the context only.)
        Malformed,
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever mix of successes, handler failures and unreadable records a batch holds, and
        /// however many run at once, the response names exactly the failed and unreadable records, in
        /// batch order, and every record gets its span.
        #[test]
        fn the_batch_response_names_exactly_the_failed_records(
            fates in proptest::collection::vec(
                proptest::prop_oneof![
                    3 => proptest::strategy::Just(Fate::Succeeds),
                    2 => proptest::strategy::Just(Fate::Fails),
                    1 => proptest::strategy::Just(Fate::Malformed),
                ],
                0..24,
            ),
            concurrency in 1usize..8,
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let test = TestTelemetry::new();
            let ids: Vec<String> = (0..fates.len()).map(|i| format!("m-{i:02}")).collect();
            let records = fates.iter().zip(&ids).map(|(fate, id)| {
                let mut r = record(id);
                if let Fate::Malformed = fate {
                    r["body"] = json!(["not", "a", "string"]);
                }
                r
            }).collect();
            let fail: Vec<&str> = fates.iter().zip(&ids)
                .filter(|(fate, _)| matches!(fate, Fate::Fails))
                .map(|(_, id)| id.as_str())
                .collect();
            let (response, spans) = runtime.block_on(run(
                &test,
                BatchProcessor::default().concurrency(concurrency),
                records,
                &fail,
            ));
            let expected: Vec<&str> = fates.iter().zip(&ids)
                .filter(|(fate, _)| !matches!(fate, Fate::Succeeds))
                .map(|(_, id)| id.as_str())
                .collect();
            proptest::prop_assert_eq!(failed_ids(&response), expected);
            proptest::prop_assert_eq!(process_spans(&spans).len(), fates.len());
        }
    }
}
