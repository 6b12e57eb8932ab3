//! The orders notifier function: configuration and the client once, then `tracekit::run` with a
//! `tracekit::sns::SnsProcessor`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use tracekit::sns::{SnsBatch, SnsProcessor};

use notifier::handler;

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
        s3: aws_sdk_s3::Client::from_conf(tracekit::aws::traced(s3).build()),
        bucket: required("RECEIPTS_BUCKET"),
    };
    let processor = SnsProcessor::from_config(telemetry.config());
    tracekit::run(
        &telemetry,
        service_fn(|event: LambdaEvent<SnsBatch>| {
            let (app, processor) = (&app, &processor);
            // A failed message fails the invocation (SNS retries it), and Lambda is told that
            // message's own error: `errorType` MalformedMessage or StorageFailed.
            async move {
                processor
                    .process(event.payload, |message| handler::process(app, message))
                    .await
            }
        }),
    )
    .await
}
