//! An SQS consumer. Each message is a CONSUMER span `process <queue>` under the invocation, linked
//! to the producer's span (its context comes from the message attributes or `AWSTraceHeader`). A
//! message whose closure fails is an error on its own span and is listed in `batchItemFailures`, so
//! that the event source mapping (with `ReportBatchItemFailures`, as `template.yaml` sets it)
//! redelivers that message alone.

use serde::Deserialize;
use tracekit::lambda_runtime::{Error, LambdaEvent, service_fn};
use tracekit::sqs::{BatchProcessor, SqsBatch, SqsBatchResponse, SqsMessage};

#[derive(Deserialize)]
struct Order {
    id: String,
    quantity: u32,
}

async fn process(message: SqsMessage) -> Result<(), Error> {
    let body = message.body.as_deref().unwrap_or_default();
    // A body that is not an order fails this message, not the batch.
    let order: Order = serde_json::from_str(body)?;
    if order.quantity == 0 {
        return Err(format!("order {} has no items", order.id).into());
    }
    tracekit::tracing::info!(order.id = %order.id, order.quantity, "order processed");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = tracekit::init()?;
    // `TRACEKIT_SQS_PARENT` and `TRACEKIT_SQS_SPANS` are read from the configuration.
    let processor = BatchProcessor::from_config(telemetry.config());
    tracekit::run(
        &telemetry,
        service_fn(|event: LambdaEvent<SqsBatch>| {
            let processor = processor.clone();
            async move {
                let response = processor.process(event.payload, process).await;
                Ok::<SqsBatchResponse, Error>(response)
            }
        }),
    )
    .await
}
