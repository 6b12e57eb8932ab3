//! {{ project_name }}-worker: the queue's consumer. Each message is a `process` span, linked to the
//! span that sent it (the trace context {{ project_name }}-api's SQS call put in its attributes). A
//! message that fails, here one whose body is not a JSON object, is reported in
//! `batchItemFailures`: the event source mapping (`ReportBatchItemFailures`) redelivers that one
//! message, not the batch.

use serde_json::Value;
use tracekit::lambda_runtime::{Error, LambdaEvent, service_fn};
use tracekit::sqs::{BatchProcessor, SqsBatch, SqsBatchResponse, SqsMessage};

async fn process(message: SqsMessage) -> Result<(), Error> {
    let body: Value = serde_json::from_str(message.body.as_deref().unwrap_or_default())?;
    let Some(fields) = body.as_object() else {
        return Err("the message is not a JSON object".into());
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
            async move { Ok::<SqsBatchResponse, Error>(processor.process(event.payload, process).await) }
        }),
    )
    .await
}
