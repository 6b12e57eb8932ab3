//! The orders notifier: one `order.processed` message at a time, as SNS delivers it from the
//! worker, writes the order's notification to S3 (`notifications/<order id>.json`).
//!
//! The write replaces the object, so a message SNS delivers twice (the worker publishes again when
//! it sees a redelivered order already processed) writes the same notification again and still
//! succeeds. A message that cannot succeed (a body that is not an `order.processed`) fails the
//! invocation; Lambda retries it twice, then sends it to the function's dead-letter queue.
//!
//! Tracing is all tracekit's: the `process` span per message comes from
//! `tracekit::sns::SnsProcessor`, which continues the worker's trace from the message's
//! `traceparent` attribute, and the S3 span from the traced client.

use lambda_runtime::Diagnostic;
use serde::{Deserialize, Serialize};
use tracekit::sns::SnsMessage;

/// The message type this notifier handles.
pub const ORDER_PROCESSED: &str = "order.processed";
/// Where notifications go in the bucket.
pub const NOTIFICATIONS_PREFIX: &str = "notifications/";

/// The client and resource names, built once in `main`.
#[derive(Debug, Clone)]
pub struct App {
    /// Traced S3 client.
    pub s3: aws_sdk_s3::Client,
    /// `RECEIPTS_BUCKET`, which holds the notifications beside the receipts.
    pub bucket: String,
}

/// The `order.processed` message the worker publishes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct OrderProcessed {
    /// The message type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The order id.
    pub order_id: String,
    /// When the worker processed the order, in milliseconds since the Unix epoch.
    pub processed_at: u64,
}

/// Why a message failed. Each variant is an `error.type` on the message's span.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifierError {
    /// The message is not an `order.processed` event.
    #[error("the message is not an order.processed event: {0}")]
    MalformedMessage(String),
    /// Writing the notification (S3) failed.
    #[error("{operation} failed: {message}")]
    Storage {
        /// The operation, e.g. `S3.PutObject`.
        operation: &'static str,
        /// The SDK's description, with the error code.
        message: String,
    },
}

impl NotifierError {
    /// The failure's stable, low-cardinality name: the message span's `error.type`, and the
    /// `errorType` Lambda is told (`tracekit::sns::SnsFailure` passes the message's on).
    pub fn error_type(&self) -> &'static str {
        match self {
            NotifierError::MalformedMessage(_) => "MalformedMessage",
            NotifierError::Storage { .. } => "StorageFailed",
        }
    }
}

/// What Lambda is told of a failure: [`NotifierError::error_type`] and the message, as
/// aws-lambda-rust-runtime's examples name their errors (the default would be the Rust type's path).
impl From<NotifierError> for Diagnostic {
    fn from(error: NotifierError) -> Diagnostic {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// Reads a message. The order id becomes part of an S3 key, so it must look like one the api
/// makes: 1 to 64 ASCII letters, digits, `-` or `_`.
pub fn parse(message: &str) -> Result<OrderProcessed, NotifierError> {
    let event: OrderProcessed = serde_json::from_str(message)
        .map_err(|e| NotifierError::MalformedMessage(e.to_string()))?;
    if event.kind != ORDER_PROCESSED {
        return Err(NotifierError::MalformedMessage(format!(
            "type {:?}, expected {ORDER_PROCESSED}",
            event.kind
        )));
    }
    let id_ok = (1..=64).contains(&event.order_id.len())
        && event
            .order_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !id_ok {
        return Err(NotifierError::MalformedMessage(format!(
            "order id {:?} is not 1 to 64 letters, digits, - or _",
            event.order_id
        )));
    }
    Ok(event)
}

/// The notification's S3 key.
pub fn notification_key(order_id: &str) -> String {
    format!("{NOTIFICATIONS_PREFIX}{order_id}.json")
}

/// Processes one message.
pub async fn process(app: &App, message: SnsMessage) -> Result<(), NotifierError> {
    let event = parse(&message.message)?;
    let notification = serde_json::json!({
        "order_id": event.order_id,
        "status": "processed",
        "processed_at": event.processed_at,
        "message_id": message.message_id,
    });
    app.s3
        .put_object()
        .bucket(&app.bucket)
        .key(notification_key(&event.order_id))
        .content_type("application/json")
        .body(notification.to_string().into_bytes().into())
        .send()
        .await
        .map_err(|e| NotifierError::Storage {
            operation: "S3.PutObject",
            message: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
        })?;
    tracing::info!(order_id = %event.order_id, "order notification written");
    tracekit::metrics::add_metric("NotificationsWritten", tracekit::metrics::Unit::Count, 1.0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_order_processed_messages_with_a_plain_id_are_accepted() {
        let good = r#"{"type":"order.processed","order_id":"o-1_A","processed_at":1}"#;
        assert_eq!(parse(good).expect("valid").order_id, "o-1_A");
        assert_eq!(notification_key("o-1_A"), "notifications/o-1_A.json");
        // (message, reason)
        let long = format!(
            r#"{{"type":"order.processed","order_id":"{}","processed_at":1}}"#,
            "a".repeat(65)
        );
        let cases = [
            ("{not json", "not JSON"),
            (r#"{"type":"order.processed"}"#, "fields missing"),
            (
                r#"{"type":"order.created","order_id":"o","processed_at":1}"#,
                "another event type",
            ),
            (
                r#"{"type":"order.processed","order_id":"../receipts/o","processed_at":1}"#,
                "an id that would leave the prefix",
            ),
            (
                r#"{"type":"order.processed","order_id":"","processed_at":1}"#,
                "an empty id",
            ),
            (long.as_str(), "an id over 64 characters"),
        ];
        for (message, reason) in cases {
            assert!(
                matches!(parse(message), Err(NotifierError::MalformedMessage(_))),
                "{reason}"
            );
        }
    }

    #[test]
    fn each_failure_has_its_own_error_type() {
        let cases = [
            (
                NotifierError::MalformedMessage("x".into()),
                "MalformedMessage",
            ),
            (
                NotifierError::Storage {
                    operation: "S3.PutObject",
                    message: "denied".into(),
                },
                "StorageFailed",
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
