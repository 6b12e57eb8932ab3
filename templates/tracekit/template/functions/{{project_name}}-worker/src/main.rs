//! {{ project_name }}-worker: the queue's consumer. Each message is a `process` span, linked to the
//! span that sent it (the trace context {{ project_name }}-api's SQS call put in its attributes). A
//! message that fails, here one whose body is not a JSON object, is reported in
//! `batchItemFailures`: the event source mapping (`ReportBatchItemFailures`) redelivers that one
//! message, not the batch.

use serde_json::Value;
use tracekit::lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use tracekit::sqs::{BatchProcessor, SqsBatch, SqsBatchResponse, SqsMessage};

/// Why a message failed. Each variant's name is the `error.type` on the message's span, and what
/// Lambda would be told were it the invocation's error, rather than the Rust type's path.
#[derive(Debug, thiserror::Error)]
enum MessageError {
    /// The body is not JSON.
    #[error("the message is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    /// The body is JSON, but not an object.
    #[error("the message is not a JSON object")]
    NotAnObject,
}

impl From<MessageError> for Diagnostic {
    fn from(error: MessageError) -> Diagnostic {
        let error_type = match &error {
            MessageError::NotJson(_) => "NotJson",
            MessageError::NotAnObject => "NotAnObject",
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

async fn process(message: SqsMessage) -> Result<(), MessageError> {
    let body: Value = serde_json::from_str(message.body.as_deref().unwrap_or_default())?;
    let Some(fields) = body.as_object() else {
        return Err(MessageError::NotAnObject);
    };
    tracekit::tracing::info!(fields = fields.len(), "message processed");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = tracekit::init()?;
    let processor = BatchProcessor::from_config(telemetry.config());
    tracekit::run(
        &telemetry,
        service_fn(|event: LambdaEvent<SqsBatch>| {
            let processor = processor.clone();
            // A failed message is reported in the response, never as the invocation's error.
            async move {
                Ok::<SqsBatchResponse, MessageError>(
                    processor.process(event.payload, process).await,
                )
            }
        }),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> SqsMessage {
        serde_json::from_value(serde_json::json!({ "body": body })).expect("an SQS message")
    }

    #[tokio::test]
    async fn a_message_that_is_not_a_json_object_fails_by_name() {
        // (body, error.type, reason)
        let cases = [
            ("{not json", Some("NotJson"), "not JSON"),
            ("[1, 2]", Some("NotAnObject"), "JSON, not an object"),
            (r#"{"greeting": "hello"}"#, None, "an object"),
        ];
        for (body, error_type, reason) in cases {
            let outcome = process(message(body))
                .await
                .map_err(|e| Diagnostic::from(e).error_type);
            assert_eq!(outcome.err().as_deref(), error_type, "{reason}");
        }
    }
}
