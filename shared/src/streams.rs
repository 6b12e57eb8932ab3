//! Kinesis and DynamoDB Streams batches: one CONSUMER span `process <stream or table>` per record,
//! child of the invocation span, and partial batch failures.
//!
//! Stream records carry no trace context (a `PutRecord` or a table write has no place for one), so
//! each record's span has no link: the invocation span, under Lambda's segment, is where the trace
//! comes from. Records are processed in order; the first failure stops the batch and is reported
//! by its sequence number, from which Lambda retries (with `ReportBatchItemFailures` on the event
//! source mapping): the records after it are traced as skipped, and run again on the retry, so the
//! shard's order holds.
//!
//! ```no_run
//! use lambda_runtime::{Error, LambdaEvent, service_fn};
//! use tracekit::streams::{KinesisEventRecord, KinesisEventResponse, StreamBatch, StreamProcessor};
//!
//! async fn handle(record: KinesisEventRecord) -> Result<(), Error> {
//!     tracing::info!(key = %record.kinesis.partition_key, "change");
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     let telemetry = tracekit::init()?;
//!     tracekit::run(&telemetry, service_fn(|event: LambdaEvent<StreamBatch>| async move {
//!         Ok::<KinesisEventResponse, Error>(StreamProcessor.kinesis(event.payload, handle).await)
//!     }))
//!     .await
//! }
//! ```
//!
//! A record that does not have the shape of its stream's records is that record's failure (and,
//! as any failure, the batch's stop).

use crate::OpenTelemetrySpanExt;
use lambda_runtime::Diagnostic;
use serde::{Deserialize, Serialize};

pub use aws_lambda_events::dynamodb::EventRecord as DynamoDbEventRecord;
pub use aws_lambda_events::kinesis::KinesisEventRecord;
pub use aws_lambda_events::streams::{
    DynamoDbBatchItemFailure, DynamoDbEventResponse, KinesisBatchItemFailure, KinesisEventResponse,
};

/// `error.type` of a record that is not one of its stream's records.
pub const MALFORMED_RECORD: &str = "MalformedRecord";
/// `error.type` of a record left for the retry after an earlier failure in its batch.
pub const SKIPPED_AFTER_FAILURE: &str = "SkippedAfterEarlierFailure";

/// A stream event whose records are read one by one.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct StreamBatch {
    /// The records, as Lambda sent them.
    #[serde(rename = "Records", default)]
    pub records: Vec<serde_json::Value>,
}

/// Runs a closure per stream record under its own `process` span.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamProcessor;

/// What distinguishes the two kinds of stream.
struct Kind {
    /// The `eventSource` of its records.
    source: &'static str,
    /// The span attribute that names the stream.
    attribute: &'static str,
    /// Where in a record its sequence number is.
    sequence: &'static str,
}

const KINESIS: Kind = Kind {
    source: "aws:kinesis",
    attribute: opentelemetry_semantic_conventions::attribute::AWS_KINESIS_STREAM_NAME,
    sequence: "/kinesis/sequenceNumber",
};

const DYNAMODB: Kind = Kind {
    source: "aws:dynamodb",
    attribute: opentelemetry_semantic_conventions::attribute::AWS_DYNAMODB_TABLE_NAMES,
    sequence: "/dynamodb/SequenceNumber",
};

impl StreamProcessor {
    /// Processes a Kinesis batch; the response names the record to retry from, if one failed.
    pub async fn kinesis<F, Fut, E>(&self, batch: StreamBatch, handler: F) -> KinesisEventResponse
    where
        F: Fn(KinesisEventRecord) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Into<Diagnostic> + 'static,
    {
        let mut response = KinesisEventResponse::default();
        if let Some(sequence) = process(&KINESIS, batch, handler).await {
            let mut failure = KinesisBatchItemFailure::default();
            failure.item_identifier = Some(sequence);
            response.batch_item_failures.push(failure);
        }
        response
    }

    /// Processes a DynamoDB Streams batch; the response names the record to retry from, if one
    /// failed.
    pub async fn dynamodb<F, Fut, E>(&self, batch: StreamBatch, handler: F) -> DynamoDbEventResponse
    where
        F: Fn(DynamoDbEventRecord) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Into<Diagnostic> + 'static,
    {
        let mut response = DynamoDbEventResponse::default();
        if let Some(sequence) = process(&DYNAMODB, batch, handler).await {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence);
            response.batch_item_failures.push(failure);
        }
        response
    }
}

/// Processes `batch` in order until a record fails; that record's sequence number.
async fn process<R, F, Fut, E>(kind: &Kind, batch: StreamBatch, handler: F) -> Option<String>
where
    R: serde::de::DeserializeOwned,
    F: Fn(R) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<Diagnostic> + 'static,
{
    let mut failed: Option<String> = None;
    for record in batch.records {
        let sequence = record
            .pointer(kind.sequence)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let span = record_span(kind, &record, &sequence);
        if failed.is_some() {
            crate::error::record(
                &span,
                SKIPPED_AFTER_FAILURE,
                "not processed: an earlier record of this batch failed, and is retried with it",
            );
            continue;
        }
        let parsed = match record
            .get("eventSource")
            .and_then(serde_json::Value::as_str)
        {
            Some(source) if source != kind.source => Err(format!(
                "a record from {}, not from {}",
                crate::consumer::source_name(source),
                kind.source
            )),
            _ => R::deserialize(&record).map_err(|error| crate::consumer::shape_error(&error)),
        };
        let outcome = match parsed {
            Ok(parsed) => crate::consumer::run_handler(
                span,
                sequence,
                parsed,
                &handler,
                "stream record failed; the batch is retried from it",
            )
            .await
            .map_err(|(sequence, _)| sequence),
            Err(error) => {
                crate::error::record(&span, MALFORMED_RECORD, &error);
                span.in_scope(|| {
                    tracing::warn!(sequence_number = %sequence, %error, "a stream record is not one of its stream's; the batch is retried from it");
                });
                Err(sequence)
            }
        };
        if let Err(sequence) = outcome {
            failed = Some(sequence);
        }
    }
    failed
}

/// The record's CONSUMER span: `process <stream or table>`, its sequence number as the message id.
fn record_span(kind: &Kind, record: &serde_json::Value, sequence: &str) -> tracing::Span {
    let source = record
        .get("eventSourceARN")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    // `arn:aws:kinesis:…:stream/orders`, `arn:aws:dynamodb:…:table/orders/stream/2026-…`.
    let name = source
        .split('/')
        .nth(1)
        .filter(|name| !name.is_empty())
        .unwrap_or("unknown");
    let span = crate::consumer::process_span(None, name, Some(sequence));
    if kind.attribute == opentelemetry_semantic_conventions::attribute::AWS_DYNAMODB_TABLE_NAMES {
        span.set_attribute(
            kind.attribute,
            opentelemetry::Value::Array(
                vec![opentelemetry::StringValue::from(name.to_owned())].into(),
            ),
        );
    } else {
        span.set_attribute(kind.attribute, name.to_owned());
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestTelemetry;
    use opentelemetry::trace::SpanKind;
    use serde_json::json;
    use tracing::Instrument;

    fn kinesis_record(sequence: &str, data: &str) -> serde_json::Value {
        json!({
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": "o-17",
                "sequenceNumber": sequence,
                "data": aws_smithy_types::base64::encode(data),
                "approximateArrivalTimestamp": 1_764_662_400.0
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": format!("shardId-000000000000:{sequence}"),
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": "arn:aws:iam::123456789012:role/worker",
            "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/orders"
        })
    }

    #[tokio::test]
    async fn the_first_failure_stops_the_batch_and_is_reported() {
        let test = TestTelemetry::new();
        let batch = StreamBatch {
            records: vec![
                kinesis_record("1", "ok"),
                json!({"eventSource": "aws:sqs"}),
                kinesis_record("3", "fail"),
                kinesis_record("4", "ok"),
            ],
        };
        let seen = std::sync::Mutex::new(Vec::new());
        let response = async {
            StreamProcessor
                .kinesis(batch, |record: KinesisEventRecord| {
                    let data = String::from_utf8_lossy(&record.kinesis.data.0).into_owned();
                    seen.lock()
                        .expect("lock")
                        .push(record.kinesis.sequence_number.clone());
                    async move {
                        if data == "fail" {
                            Err(lambda_runtime::Error::from("refused"))
                        } else {
                            Ok(())
                        }
                    }
                })
                .await
        }
        .instrument(tracing::info_span!("invocation"))
        .await;
        assert_eq!(
            response
                .batch_item_failures
                .iter()
                .map(|failure| failure.item_identifier.clone())
                .collect::<Vec<_>>(),
            [Some(String::new())],
            "the malformed record (no sequence number) is where the batch stops"
        );
        assert_eq!(
            *seen.lock().expect("lock"),
            ["1"],
            "nothing after the failure runs"
        );
        test.telemetry()
            .force_flush(std::time::Duration::from_secs(1))
            .await;
        let spans = test.spans();
        let process: Vec<_> = spans
            .iter()
            .filter(|span| span.span_kind == SpanKind::Consumer)
            .collect();
        assert_eq!(
            process.len(),
            4,
            "every record is traced, the skipped ones too"
        );
        let names: Vec<&str> = process.iter().map(|span| span.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "process orders",
                "process unknown",
                "process orders",
                "process orders"
            ],
            "a record without a source ARN names no stream"
        );
        assert!(
            process.iter().all(|span| span.links.links.is_empty()),
            "no carrier, no link"
        );
    }

    #[tokio::test]
    async fn a_failing_record_is_reported_by_its_sequence_number() {
        let _test = TestTelemetry::new();
        let batch = StreamBatch {
            records: vec![kinesis_record("1", "ok"), kinesis_record("2", "fail")],
        };
        let response = StreamProcessor
            .kinesis(batch, |record: KinesisEventRecord| async move {
                if record.kinesis.data.0 == b"fail" {
                    Err(lambda_runtime::Error::from("refused"))
                } else {
                    Ok(())
                }
            })
            .await;
        assert_eq!(
            response.batch_item_failures[0].item_identifier.as_deref(),
            Some("2")
        );
    }

    #[tokio::test]
    async fn dynamodb_records_are_named_after_their_table_and_reported_by_sequence_number() {
        let test = TestTelemetry::new();
        let record = |sequence: &str| {
            json!({
                "eventID": format!("e-{sequence}"),
                "eventName": "MODIFY",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1_764_662_400.0,
                    "Keys": {"id": {"S": "o-17"}},
                    "SequenceNumber": sequence,
                    "SizeBytes": 26,
                    "StreamViewType": "KEYS_ONLY"
                },
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-12-02T00:00:00.000"
            })
        };
        let response = StreamProcessor
            .dynamodb(
                StreamBatch {
                    records: vec![record("100"), record("200")],
                },
                |record: DynamoDbEventRecord| async move {
                    if record.change.sequence_number.as_deref() == Some("200") {
                        Err(lambda_runtime::Error::from("refused"))
                    } else {
                        Ok(())
                    }
                },
            )
            .await;
        assert_eq!(
            response.batch_item_failures[0].item_identifier.as_deref(),
            Some("200")
        );
        test.telemetry()
            .force_flush(std::time::Duration::from_secs(1))
            .await;
        let spans = test.spans();
        let process = spans
            .iter()
            .find(|span| span.name == "process orders")
            .expect("a process span per record");
        let tables = process
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "aws.dynamodb.table_names")
            .map(|kv| kv.value.to_string());
        assert_eq!(tables.as_deref(), Some("[\"orders\"]"));
    }
}
