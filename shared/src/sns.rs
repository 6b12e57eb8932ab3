//! The SNS consumer side: a function SNS invokes gets one CONSUMER span `process <topic>` per
//! message, its producer's context from the message's attributes (`traceparent`, as tracekit's
//! interceptor writes it, or an `X-Amzn-Trace-Id`), with the same link-or-parent policy as SQS
//! ([`SqsParentPolicy`]: SNS delivers one message per invocation, so under
//! `parent-if-single` the message continues its producer's trace).
//!
//! SNS invokes a function asynchronously and retries the whole invocation on an error; there is no
//! partial batch response. [`SnsProcessor::process`] runs the closure for every record, records
//! each failure on its message's span, and returns an [`SnsFailure`] naming the failed messages, which
//! the handler returns so that Lambda retries.
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
//!         async move { processor.process(event.payload, handle).await.map_err(Error::from) }
//!     }))
//!     .await
//! }
//! ```
//!
//! A record that is not an SNS message is that record's failure, with a warning.

use crate::config::{Config, SqsParentPolicy};
use crate::error::record as record_error;
use lambda_runtime::Diagnostic;
use opentelemetry::trace::SpanContext;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

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
    },
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
        for record in batch.records {
            if let Err(id) = self.process_one(record, single, &handler).await {
                failed.push(id);
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(SnsFailure::Failed { failed, total })
        }
    }

    async fn process_one<F, Fut, E>(
        &self,
        record: serde_json::Value,
        single: bool,
        handler: &F,
    ) -> Result<(), String>
    where
        F: Fn(SnsMessage) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Into<Diagnostic> + 'static,
    {
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
                return Err(id);
            }
        };
        let id = message.message_id.clone();
        let span = crate::consumer::process_span(Some(AWS_SNS), &topic_of(&record), Some(&id));
        if let Some(producer) = producer_context(&message) {
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
        return Err(format!("a record from {other}, not an SNS message"));
    }
    let sns = record
        .get("Sns")
        .ok_or_else(|| "an SNS record holds its message under `Sns`".to_owned())?;
    SnsMessage::deserialize(sns).map_err(|error| error.to_string())
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
        assert_eq!(
            outcome,
            Err(SnsFailure::Failed {
                failed: vec![String::new(), "m-3".to_owned()],
                total: 3
            })
        );
    }
}
