//! The SNS consumer side: a function SNS invokes gets one CONSUMER span `process <topic>` per
//! message, its producer's context from the message's attributes (`traceparent`, as tracekit's
//! interceptor writes it, or an `X-Amzn-Trace-Id`), with the same link-or-parent policy as SQS
//! ([`SqsParentPolicy`]: SNS delivers one message per invocation, so under
//! `parent-if-single` the message continues its producer's trace).
//!
//! SNS invokes a function asynchronously and retries the whole invocation on an error; there is no
//! partial batch response. [`SnsProcessor::process`] runs the closure for every record, records
//! each failure on its message's span, and returns an [`SnsFailure`] naming the failed messages, which
//! the handler returns so that Lambda retries. Lambda is told the failed message's own error: its
//! `errorType` is the name the message's span has (`OrderNotFound`, from the handler's
//! `From<OrderNotFound> for Diagnostic` or its type's name), which Lambda's console and the
//! dead-letter queue's `ErrorCode` show.
//!
//! ```no_run
//! use lambda_runtime::{Error, LambdaEvent, service_fn};
//! use tracekit::sns::{SnsBatch, SnsMessage, SnsProcessor};
//!
//! async fn handle(message: SnsMessage) -> Result<(), Error> {
//!     tracing::info!(id = %message.message_id, "order processed");
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     let telemetry = tracekit::init()?;
//!     let processor = SnsProcessor::from_config(telemetry.config());
//!     tracekit::run(&telemetry, service_fn(|event: LambdaEvent<SnsBatch>| {
//!         let processor = processor.clone();
//!         async move { processor.process(event.payload, handle).await }
//!     }))
//!     .await
//! }
//! ```
//!
//! A record that is not an SNS message is that record's failure, with a warning. A message whose
//! `MessageAttributes` are not their documented shape (a map of `{"Type", "Value"}` strings) is
//! processed without its producer's context, with one warning: the attributes that are not that
//! shape are left out of the [`SnsMessage`] the handler gets. Neither warning, nor the span, repeats
//! any of the record's content.

use crate::config::{Config, SqsParentPolicy};
use crate::error::record as record_error;
use lambda_runtime::Diagnostic;
use opentelemetry::trace::SpanContext;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use aws_lambda_events::sns::MessageAttribute;
pub use aws_lambda_events::sns::SnsMessage;

/// `messaging.system` of SNS.
const AWS_SNS: &str = "aws.sns";
/// `error.type` of a record that is not an SNS message.
pub const MALFORMED_RECORD: &str = "MalformedRecord";

/// An SNS event whose records are read one by one, so one malformed record cannot hide the others.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct SnsBatch {
    /// The records, as Lambda sent them.
    #[serde(rename = "Records", default)]
    pub records: Vec<serde_json::Value>,
}

/// Some messages of an SNS invocation failed: returned from the handler, it makes Lambda retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnsFailure {
    /// These messages failed (their ids; empty for a record without one).
    #[error("{} of {total} SNS messages failed: {}", failed.len(), failed.join(", "))]
    Failed {
        /// The failed messages' ids.
        failed: Vec<String>,
        /// How many records the invocation held.
        total: usize,
        /// What the first failed message answered: its `error.type` as its span has it, and its
        /// message.
        first: Diagnostic,
    },
}

/// The failed message's own error, as its span names it: SNS delivers one message per invocation.
/// (Of several, the first one's type, and how many failed.)
impl From<SnsFailure> for Diagnostic {
    fn from(failure: SnsFailure) -> Diagnostic {
        let summary = failure.to_string();
        let SnsFailure::Failed {
            failed,
            total,
            first,
        } = failure;
        if failed.len() == 1 && total == 1 {
            return first;
        }
        Diagnostic {
            error_type: first.error_type,
            error_message: format!("{summary}; the first: {}", first.error_message),
        }
    }
}

/// Runs a closure per SNS message under its own `process` span.
#[derive(Debug, Clone, Default)]
pub struct SnsProcessor {
    policy: SqsParentPolicy,
    xray_ids_only: bool,
}

impl SnsProcessor {
    /// The link-or-parent policy from tracekit's configuration (`TRACEKIT_SQS_PARENT`, which names
    /// it for every messaging consumer), and its exporter (see
    /// [`BatchProcessor::from_config`](crate::sqs::BatchProcessor::from_config) for why segment
    /// documents link a producer they cannot hold).
    pub fn from_config(config: &Config) -> Self {
        SnsProcessor {
            policy: config.sqs_parent,
            xray_ids_only: matches!(config.exporter, crate::config::ExporterConfig::Xray { .. }),
        }
    }

    /// Processes every record of `batch` with `handler`, in order; `Err` names the messages that
    /// failed. Call it inside the invocation, so the `process` spans are children of the
    /// invocation span.
    pub async fn process<F, Fut, E>(&self, batch: SnsBatch, handler: F) -> Result<(), SnsFailure>
    where
        F: Fn(SnsMessage) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Into<Diagnostic> + 'static,
    {
        let total = batch.records.len();
        let single = total == 1;
        let mut failed = Vec::new();
        let mut first = None;
        for record in batch.records {
            if let Err((id, answered)) = self.process_one(record, single, &handler).await {
                failed.push(id);
                first.get_or_insert(answered);
            }
        }
        match first {
            None => Ok(()),
            Some(first) => Err(SnsFailure::Failed {
                failed,
                total,
                first,
            }),
        }
    }

    async fn process_one<F, Fut, E>(
        &self,
        record: serde_json::Value,
        single: bool,
        handler: &F,
    ) -> Result<(), (String, Diagnostic)>
    where
        F: Fn(SnsMessage) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Into<Diagnostic> + 'static,
    {
        let mut record = record;
        let malformed_carrier = record.get_mut("Sns").is_some_and(|sns| {
            crate::consumer::drop_malformed_attributes::<MessageAttribute>(sns, "MessageAttributes")
        });
        let message = match sns_message(&record) {
            Ok(message) => message,
            Err(error) => {
                let id = record
                    .pointer("/Sns/MessageId")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let span =
                    crate::consumer::process_span(Some(AWS_SNS), &topic_of(&record), Some(&id));
                record_error(&span, MALFORMED_RECORD, &error);
                span.in_scope(|| {
                    tracing::warn!(message_id = %id, %error, "an SNS record is not an SNS message; failed");
                });
                let answered = Diagnostic {
                    error_type: MALFORMED_RECORD.to_owned(),
                    error_message: error,
                };
                return Err((id, answered));
            }
        };
        let id = message.message_id.clone();
        let span = crate::consumer::process_span(Some(AWS_SNS), &topic_of(&record), Some(&id));
        if malformed_carrier {
            crate::consumer::warn_malformed_carrier(&span, &id, "SNS message attributes");
        } else if let Some(producer) = producer_context(&message) {
            let parent = single && self.policy == SqsParentPolicy::ParentIfSingle;
            crate::consumer::follow(&span, producer, &id, parent, self.xray_ids_only);
        }
        crate::consumer::run_handler(span, id, message, handler, "SNS message failed").await
    }
}

/// The record's SNS message, or why it is not one.
fn sns_message(record: &serde_json::Value) -> Result<SnsMessage, String> {
    let source = record
        .get("EventSource")
        .or_else(|| record.get("eventSource"))
        .and_then(serde_json::Value::as_str);
    if let Some(other) = source.filter(|source| *source != "aws:sns") {
        return Err(format!(
            "a record from {}, not an SNS message",
            crate::consumer::source_name(other)
        ));
    }
    let sns = record
        .get("Sns")
        .filter(|sns| sns.is_object())
        .ok_or_else(|| "an SNS record holds its message, an object, under `Sns`".to_owned())?;
    SnsMessage::deserialize(sns).map_err(|error| crate::consumer::shape_error(&error))
}

/// The topic name: the last field of the message's `TopicArn`.
fn topic_of(record: &serde_json::Value) -> String {
    record
        .pointer("/Sns/TopicArn")
        .and_then(serde_json::Value::as_str)
        .and_then(|arn| arn.rsplit(':').next())
        .unwrap_or("unknown")
        .to_owned()
}

/// The producer's span context, from the message's `String` attributes.
pub fn producer_context(message: &SnsMessage) -> Option<SpanContext> {
    let attributes: HashMap<&str, &str> = message
        .message_attributes
        .iter()
        .filter(|(_, attribute)| attribute.data_type == "String")
        .map(|(key, attribute)| (key.as_str(), attribute.value.as_str()))
        .collect();
    crate::consumer::from_attributes(&attributes, &message.message_id, "SNS message attributes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestTelemetry;
    use opentelemetry::trace::SpanKind;
    use serde_json::json;
    use tracing::Instrument;

    const TRACEPARENT: &str = "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01";
    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:orders-processed";

    fn record(id: &str, traceparent: Option<&str>) -> serde_json::Value {
        let mut attributes = json!({"tenant": {"Type": "String", "Value": "a"}});
        if let Some(traceparent) = traceparent {
            attributes["traceparent"] = json!({"Type": "String", "Value": traceparent});
        }
        json!({
            "EventSource": "aws:sns",
            "EventVersion": "1.0",
            "EventSubscriptionArn": format!("{TOPIC}:sub"),
            "Sns": {
                "Type": "Notification",
                "MessageId": id,
                "TopicArn": TOPIC,
                "Message": "{}",
                "Timestamp": "2026-12-02T08:00:00.000Z",
                "SignatureVersion": "1",
                "Signature": "c2lnbmF0dXJl",
                "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/cert.pem",
                "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
                "MessageAttributes": attributes,
            }
        })
    }

    async fn process(
        test: &TestTelemetry,
        records: Vec<serde_json::Value>,
    ) -> (
        Result<(), SnsFailure>,
        Vec<opentelemetry_sdk::trace::SpanData>,
    ) {
        let outcome = SnsProcessor::default()
            .process(SnsBatch { records }, |message: SnsMessage| async move {
                tracing::info!(id = %message.message_id, "working on it");
                Ok::<(), lambda_runtime::Error>(())
            })
            .instrument(tracing::info_span!("invocation"))
            .await;
        test.telemetry()
            .force_flush(std::time::Duration::from_secs(1))
            .await;
        (outcome, test.spans())
    }

    /// Every text a span holds: attribute and event attribute values, and its status.
    fn texts(spans: &[opentelemetry_sdk::trace::SpanData]) -> Vec<String> {
        spans
            .iter()
            .flat_map(|span| {
                span.attributes
                    .iter()
                    .chain(span.events.iter().flat_map(|e| e.attributes.iter()))
                    .map(|kv| kv.value.as_str().into_owned())
                    .chain(std::iter::once(format!("{:?}", span.status)))
            })
            .collect()
    }

    /// `MessageAttributes` that are not their documented shape are a malformed carrier: the message
    /// is processed, without its producer's context, with one warning that repeats none of them.
    #[tokio::test]
    async fn malformed_message_attributes_lose_only_the_context() {
        const SECRET: &str = "card-4111111111111111";
        let traceparent = json!({"Type": "String", "Value": TRACEPARENT});
        // (MessageAttributes, reason)
        let cases = [
            (json!(SECRET), "a string, not a map"),
            (json!([SECRET, 1, 2]), "a list, not a map"),
            (
                json!({"traceparent": TRACEPARENT, "note": SECRET}),
                "attributes that are bare strings",
            ),
            (
                json!({"traceparent": {"Type": "String", "Value": 5}, "note": {"Type": "String", "Value": SECRET}}),
                "a traceparent whose Value is a number",
            ),
            (
                json!({"traceparent": traceparent, "note": {"Type": SECRET}}),
                "an attribute without a Value: the traceparent beside it is not trusted either",
            ),
            (
                json!({"traceparent": traceparent, "note": {"custom": {"traceparent": 5}, "Value": [SECRET]}}),
                "nested JSON where a string belongs",
            ),
        ];
        for (attributes, reason) in cases {
            let test = TestTelemetry::new();
            let mut malformed = record("m-1", None);
            malformed["Sns"]["MessageAttributes"] = attributes;
            let (outcome, spans) = process(&test, vec![malformed]).await;
            assert_eq!(outcome, Ok(()), "{reason}: the message is processed");
            let process = spans
                .iter()
                .find(|span| span.name == "process orders-processed")
                .expect("the process span");
            assert!(process.links.is_empty(), "{reason}: no context is read");
            assert_ne!(
                process.span_context.trace_id().to_string(),
                "5759e988bd862e3fe1be46a994272793",
                "{reason}"
            );
            assert_eq!(
                process.status,
                opentelemetry::trace::Status::Unset,
                "{reason}"
            );
            let lines = test.log_lines();
            assert_eq!(
                lines.iter().filter(|l| l.contains("working on it")).count(),
                1,
                "{reason}"
            );
            let warnings: Vec<_> = lines.iter().filter(|l| l.contains("WARN")).collect();
            assert_eq!(warnings.len(), 1, "{reason}: {lines:#?}");
            assert!(warnings[0].contains("m-1"), "{reason}: names the message");
            assert!(
                lines.iter().all(|l| !l.contains(SECRET)),
                "{reason}: {lines:#?}"
            );
            assert!(
                texts(&spans).iter().all(|t| !t.contains(SECRET)),
                "{reason}: {spans:#?}"
            );
        }
    }

    /// A record that is not an SNS message fails alone, and the error recorded names a field at
    /// most: serde's own message quotes the value it refused.
    #[tokio::test]
    async fn a_malformed_record_fails_without_repeating_its_content() {
        const SECRET: &str = "4111111111111111";
        let mut message = record("m-1", None);
        message["Sns"]["Message"] = json!(4_111_111_111_111_111_u64);
        let mut missing = record("m-2", None);
        missing["Sns"]
            .as_object_mut()
            .expect("object")
            .remove("TopicArn");
        let mut source = record("m-3", None);
        source["EventSource"] = json!(SECRET);
        // (record, what the error says, reason)
        let cases = [
            (
                message,
                "not of its documented type",
                "a Message that is not a string",
            ),
            (missing, "no `TopicArn`", "a missing field is named"),
            (
                source,
                "another source",
                "a source that is not an AWS service's name",
            ),
        ];
        for (broken, says, reason) in cases {
            let test = TestTelemetry::new();
            let (outcome, spans) = process(&test, vec![broken, record("m-9", None)]).await;
            assert!(
                matches!(&outcome, Err(SnsFailure::Failed { failed, total: 2, .. }) if failed.len() == 1),
                "{reason}: {outcome:?}"
            );
            let texts = texts(&spans);
            assert!(
                texts.iter().any(|t| t.contains(says)),
                "{reason}: {texts:#?}"
            );
            assert!(
                texts.iter().all(|t| !t.contains(SECRET)),
                "{reason}: {texts:#?}"
            );
            let lines = test.log_lines();
            assert!(
                lines.iter().all(|l| !l.contains(SECRET)),
                "{reason}: {lines:#?}"
            );
            assert_eq!(
                lines.iter().filter(|l| l.contains("working on it")).count(),
                1,
                "{reason}: the other message is processed"
            );
        }
    }

    #[tokio::test]
    async fn a_single_message_continues_its_producer_and_failures_are_named() {
        let test = TestTelemetry::new();
        let processor = SnsProcessor::default();
        let outcome = async {
            processor
                .process(
                    SnsBatch {
                        records: vec![record("m-1", Some(TRACEPARENT))],
                    },
                    |_| async { Ok::<(), lambda_runtime::Error>(()) },
                )
                .await
        }
        .instrument(tracing::info_span!("invocation"))
        .await;
        assert_eq!(outcome, Ok(()));
        test.telemetry()
            .force_flush(std::time::Duration::from_secs(1))
            .await;
        let spans = test.spans();
        let process = spans
            .iter()
            .find(|span| span.name == "process orders-processed")
            .expect("the process span");
        assert_eq!(process.span_kind, SpanKind::Consumer);
        assert_eq!(
            process.span_context.trace_id().to_string(),
            "5759e988bd862e3fe1be46a994272793",
            "a batch of one continues the producer's trace"
        );
        assert_eq!(process.links.links.len(), 1);

        test.reset();
        let outcome = processor
            .process(
                SnsBatch {
                    records: vec![
                        record("m-2", None),
                        json!({"EventSource": "aws:sqs"}),
                        record("m-3", Some("00-not-a-context-01")),
                    ],
                },
                |message: SnsMessage| async move {
                    if message.message_id == "m-3" {
                        Err(lambda_runtime::Error::from("refused"))
                    } else {
                        Ok(())
                    }
                },
            )
            .await;
        let Err(SnsFailure::Failed {
            failed,
            total,
            first,
        }) = outcome
        else {
            panic!("two messages failed: {outcome:?}");
        };
        assert_eq!(failed, [String::new(), "m-3".to_owned()]);
        assert_eq!(total, 3);
        assert_eq!(
            first.error_type, MALFORMED_RECORD,
            "the first failure is kept"
        );
    }

    #[derive(Debug, thiserror::Error)]
    #[error("order {0} not found")]
    struct OrderNotFound(&'static str);

    #[derive(Debug, thiserror::Error)]
    #[error("refused")]
    struct Refused;

    impl From<Refused> for Diagnostic {
        fn from(_: Refused) -> Diagnostic {
            Diagnostic {
                error_type: "OrderRefused".to_owned(),
                error_message: "the order was refused".to_owned(),
            }
        }
    }

    #[tokio::test]
    async fn lambda_is_told_the_failed_messages_own_error() {
        let _test = TestTelemetry::new();
        let processor = SnsProcessor::default();
        let one = || SnsBatch {
            records: vec![record("m-1", None)],
        };
        let answered = |outcome: Result<(), SnsFailure>| {
            Diagnostic::from(outcome.expect_err("the message failed"))
        };

        let named = processor.process(one(), |_| async { Err(Refused) }).await;
        assert_eq!(
            answered(named),
            Diagnostic {
                error_type: "OrderRefused".to_owned(),
                error_message: "the order was refused".to_owned(),
            },
            "the handler's own Diagnostic"
        );

        let boxed = processor
            .process(one(), |_| async {
                Err(lambda_runtime::Error::from(OrderNotFound("o-1")))
            })
            .await;
        assert_eq!(
            answered(boxed),
            Diagnostic {
                error_type: "OrderNotFound".to_owned(),
                error_message: "order o-1 not found".to_owned(),
            },
            "a boxed error: the name its span has, not lambda_runtime's `&alloc::boxed::Box<..>`"
        );

        let several = processor
            .process(
                SnsBatch {
                    records: vec![record("m-1", None), record("m-2", None)],
                },
                |_| async { Err(Refused) },
            )
            .await;
        assert_eq!(
            answered(several),
            Diagnostic {
                error_type: "OrderRefused".to_owned(),
                error_message: "2 of 2 SNS messages failed: m-1, m-2; the first: the order was \
                                refused"
                    .to_owned(),
            },
            "of several, the first one's type and how many failed"
        );
    }
}
