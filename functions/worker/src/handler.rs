//! The orders worker: one `order.created` message at a time, read the receipt from S3, mark the
//! order processed in DynamoDB, then publish `order.processed` to the order events topic (SNS),
//! which delivers it to the notifier.
//!
//! The update is conditional (`status <> processed`), so a redelivered message changes nothing and
//! still succeeds: SQS delivers at least once. `order.processed` is published either way, so a
//! publish that failed (and failed the message) is retried with it; the notifier's write is
//! idempotent. A message that cannot succeed (a body that is not an
//! `order.created`, a missing receipt or order) fails on its own; after the queue's `maxReceiveCount`
//! it moves to the dead-letter queue.
//!
//! Tracing is all tracekit's: the `process` span per message comes from
//! `tracekit::sqs::BatchProcessor`, the S3, DynamoDB and SNS spans from the traced clients (the SNS
//! client's interceptor puts the W3C context in the message's attributes).

use aws_sdk_dynamodb::{
    operation::update_item::UpdateItemError,
    types::{AttributeValue, ReturnValuesOnConditionCheckFailure},
};
use lambda_runtime::Diagnostic;
use serde::Deserialize;
use std::time::{SystemTime, UNIX_EPOCH};
use tracekit::sqs::SqsMessage;

/// The message type this worker handles.
pub const ORDER_CREATED: &str = "order.created";
/// The status an order reaches here.
pub const PROCESSED: &str = "processed";
/// The message type this worker publishes.
pub const ORDER_PROCESSED: &str = "order.processed";

/// The clients and resource names, built once in `main`.
#[derive(Debug, Clone)]
pub struct App {
    /// Traced DynamoDB client.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Traced S3 client.
    pub s3: aws_sdk_s3::Client,
    /// Traced SNS client.
    pub sns: aws_sdk_sns::Client,
    /// `ORDER_EVENTS_TOPIC_ARN`.
    pub topic_arn: String,
    /// `ORDERS_TABLE`.
    pub table: String,
    /// `RECEIPTS_BUCKET`.
    pub bucket: String,
}

/// The `order.created` message body the api sends.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OrderCreated {
    /// The message type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The order id.
    pub order_id: String,
    /// The receipt's S3 key.
    pub receipt_key: String,
}

/// The receipt fields the worker checks.
#[derive(Debug, Deserialize)]
struct Receipt {
    id: String,
    total_cents: u64,
}

/// Why a message failed. Each variant is an `error.type` on the message's span.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The body is not an `order.created` message.
    #[error("the message body is not an order.created event: {0}")]
    MalformedBody(String),
    /// The receipt is missing, unreadable or names another order.
    #[error("receipt {key}: {reason}")]
    BadReceipt {
        /// The receipt's key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The order is not in the table.
    #[error("order {0} does not exist")]
    OrderMissing(String),
    /// Marking the order processed (DynamoDB) failed.
    #[error("{operation} failed: {message}")]
    Storage {
        /// The operation, e.g. `DynamoDB.UpdateItem`.
        operation: &'static str,
        /// The SDK's description, with the error code.
        message: String,
    },
    /// Publishing `order.processed` (SNS) failed.
    #[error("SNS.Publish failed: {0}")]
    Publish(String),
}

impl WorkerError {
    /// The failure's stable, low-cardinality name: the message span's `error.type`, and the
    /// `errorType` Lambda is told.
    pub fn error_type(&self) -> &'static str {
        match self {
            WorkerError::MalformedBody(_) => "MalformedBody",
            WorkerError::BadReceipt { .. } => "BadReceipt",
            WorkerError::OrderMissing(_) => "OrderMissing",
            WorkerError::Storage { .. } => "StorageFailed",
            WorkerError::Publish(_) => "PublishFailed",
        }
    }
}

/// What Lambda is told of a failure: [`WorkerError::error_type`] and the message, as
/// aws-lambda-rust-runtime's examples name their errors (the default would be the Rust type's path).
impl From<WorkerError> for Diagnostic {
    fn from(error: WorkerError) -> Diagnostic {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// Reads a message body.
pub fn parse(body: Option<&str>) -> Result<OrderCreated, WorkerError> {
    let body = body.ok_or_else(|| WorkerError::MalformedBody("no body".into()))?;
    let event: OrderCreated =
        serde_json::from_str(body).map_err(|e| WorkerError::MalformedBody(e.to_string()))?;
    if event.kind != ORDER_CREATED {
        return Err(WorkerError::MalformedBody(format!(
            "type {:?}, expected {ORDER_CREATED}",
            event.kind
        )));
    }
    Ok(event)
}

/// Processes one message, counted as `MessagesProcessed` or `MessagesFailed` (CloudWatch metrics,
/// written when the invocation ends).
pub async fn process(app: &App, message: SqsMessage) -> Result<(), WorkerError> {
    use tracekit::metrics::{Unit, add_metric};
    let processed = process_one(app, message).await;
    match &processed {
        Ok(()) => add_metric("MessagesProcessed", Unit::Count, 1.0),
        Err(_) => add_metric("MessagesFailed", Unit::Count, 1.0),
    }
    processed
}

async fn process_one(app: &App, message: SqsMessage) -> Result<(), WorkerError> {
    let event = parse(message.body.as_deref())?;
    let receipt = read_receipt(app, &event).await?;
    let processed_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let update = app
        .dynamodb
        .update_item()
        .table_name(&app.table)
        .key("id", AttributeValue::S(event.order_id.clone()))
        .update_expression("SET #status = :processed, processed_at = :at")
        .condition_expression("attribute_exists(id) AND #status <> :processed")
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":processed", AttributeValue::S(PROCESSED.into()))
        .expression_attribute_values(":at", AttributeValue::N(processed_at.to_string()))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await;
    let processed_at = match update {
        Ok(_) => {
            tracing::info!(order_id = %event.order_id, total_cents = receipt.total_cents, "order processed");
            processed_at
        }
        Err(error) => match error.as_service_error() {
            Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                let item = failed.item();
                let status = item
                    .and_then(|item| item.get("status"))
                    .and_then(|status| status.as_s().ok());
                match status {
                    Some(status) if status == PROCESSED => {
                        tracing::info!(order_id = %event.order_id, "order already processed; redelivery publishes again");
                        item.and_then(|item| item.get("processed_at"))
                            .and_then(|at| at.as_n().ok())
                            .and_then(|at| at.parse().ok())
                            .unwrap_or(processed_at)
                    }
                    _ => return Err(WorkerError::OrderMissing(event.order_id)),
                }
            }
            _ => {
                return Err(WorkerError::Storage {
                    operation: "DynamoDB.UpdateItem",
                    message: aws_sdk_dynamodb::error::DisplayErrorContext(error).to_string(),
                });
            }
        },
    };
    publish_processed(app, &event.order_id, processed_at).await
}

/// The `order.processed` message body.
pub fn order_processed(order_id: &str, processed_at: u128) -> String {
    serde_json::json!({
        "type": ORDER_PROCESSED,
        "order_id": order_id,
        "processed_at": processed_at,
    })
    .to_string()
}

/// Publishes `order.processed`, with its type as a `String` attribute `type` that subscribers'
/// filter policies can match.
async fn publish_processed(
    app: &App,
    order_id: &str,
    processed_at: u128,
) -> Result<(), WorkerError> {
    let kind = aws_sdk_sns::types::MessageAttributeValue::builder()
        .data_type("String")
        .string_value(ORDER_PROCESSED)
        .build()
        .map_err(|e| WorkerError::Publish(e.to_string()))?;
    app.sns
        .publish()
        .topic_arn(&app.topic_arn)
        .message(order_processed(order_id, processed_at))
        .message_attributes("type", kind)
        .send()
        .await
        .map_err(|e| {
            WorkerError::Publish(aws_sdk_sns::error::DisplayErrorContext(e).to_string())
        })?;
    Ok(())
}

async fn read_receipt(app: &App, event: &OrderCreated) -> Result<Receipt, WorkerError> {
    let bad = |reason: String| WorkerError::BadReceipt {
        key: event.receipt_key.clone(),
        reason,
    };
    let object = app
        .s3
        .get_object()
        .bucket(&app.bucket)
        .key(&event.receipt_key)
        .send()
        .await
        .map_err(|e| bad(aws_sdk_s3::error::DisplayErrorContext(e).to_string()))?;
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| bad(e.to_string()))?
        .into_bytes();
    let receipt: Receipt =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a receipt: {e}")))?;
    if receipt.id != event.order_id {
        return Err(bad(format!(
            "names order {}, the message names {}",
            receipt.id, event.order_id
        )));
    }
    Ok(receipt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_order_created_bodies_are_accepted() {
        let good = r#"{"type":"order.created","order_id":"o-1","receipt_key":"receipts/o-1.json"}"#;
        assert_eq!(
            parse(Some(good)).expect("valid").receipt_key,
            "receipts/o-1.json"
        );
        // (body, reason)
        let cases = [
            (None, "no body"),
            (Some("{not json"), "not JSON"),
            (Some(r#"{"type":"order.created"}"#), "fields missing"),
            (
                Some(r#"{"type":"order.deleted","order_id":"o","receipt_key":"k"}"#),
                "another event type",
            ),
        ];
        for (body, reason) in cases {
            assert!(
                matches!(parse(body), Err(WorkerError::MalformedBody(_))),
                "{reason}"
            );
        }
    }

    #[test]
    fn the_published_message_is_an_order_processed_event() {
        let body: serde_json::Value =
            serde_json::from_str(&order_processed("o-1", 42)).expect("JSON");
        assert_eq!(
            body,
            serde_json::json!({"type": "order.processed", "order_id": "o-1", "processed_at": 42})
        );
    }

    #[test]
    fn each_failure_has_its_own_error_type() {
        let cases = [
            (WorkerError::MalformedBody("x".into()), "MalformedBody"),
            (
                WorkerError::BadReceipt {
                    key: "k".into(),
                    reason: "gone".into(),
                },
                "BadReceipt",
            ),
            (WorkerError::OrderMissing("o".into()), "OrderMissing"),
            (
                WorkerError::Storage {
                    operation: "DynamoDB.UpdateItem",
                    message: "throttled".into(),
                },
                "StorageFailed",
            ),
            (
                WorkerError::Publish("no such topic".into()),
                "PublishFailed",
            ),
        ];
        for (error, expected) in cases {
            let message = error.to_string();
            let diagnostic = Diagnostic::from(error);
            assert_eq!(diagnostic.error_type, expected);
            assert_eq!(
                diagnostic.error_message, message,
                "{expected}: the Display text"
            );
        }
    }
}
