//! The orders worker function: configuration and clients once, then `tracekit::run` with a
//! `tracekit::sqs::BatchProcessor` reporting partial batch failures.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use tracekit::sqs::{BatchProcessor, SqsBatch, SqsBatchResponse};

use worker::handler;

/// A resource name the stack passes in; the function cannot start without it.
fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set (see template.yaml)"))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = tracekit::init()?;
    let sdk = aws_config::load_from_env().await;
    // A custom S3 endpoint (LocalStack) has no per-bucket host names: use path-style addressing.
    let path_style = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .any(|name| std::env::var_os(name).is_some());
    let s3 = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(path_style);
    let app = handler::App {
        dynamodb: tracekit::aws::dynamodb_client(&sdk),
        s3: aws_sdk_s3::Client::from_conf(tracekit::aws::traced(s3).build()),
        sns: tracekit::aws::sns_client(&sdk),
        table: required("ORDERS_TABLE"),
        bucket: required("RECEIPTS_BUCKET"),
        topic_arn: required("ORDER_EVENTS_TOPIC_ARN"),
    };
    // Messages of a batch are independent orders: four at a time (FIFO batches stay in order).
    let processor = BatchProcessor::from_config(telemetry.config()).concurrency(4);
    tracekit::run(
        &telemetry,
        service_fn(|event: LambdaEvent<SqsBatch>| {
            let (app, processor) = (&app, &processor);
            async move {
                let response = processor
                    .process(event.payload, |message| handler::process(app, message))
                    .await;
                // A failed message is reported in the response, never as the invocation's error.
                Ok::<SqsBatchResponse, handler::WorkerError>(response)
            }
        }),
    )
    .await
}
