//! The orders API function: configuration and clients once, then `tracekit::run_http`.

use lambda_http::{Error, Request, RequestExt, service_fn};

use api::handler;

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
        sqs: tracekit::aws::sqs_client(&sdk),
        table: required("ORDERS_TABLE"),
        bucket: required("RECEIPTS_BUCKET"),
        queue_url: required("ORDERS_QUEUE_URL"),
        // Optional: without a payment provider, orders are taken as they come.
        payments: std::env::var("PAYMENTS_URL")
            .ok()
            .filter(|url| !url.is_empty())
            .map(|url| handler::Payments {
                client: tracekit::http_client::reqwest_client(reqwest::Client::new()),
                url: url.trim_end_matches('/').to_owned(),
            }),
    };
    tracekit::run_http(
        &telemetry,
        service_fn(|request: Request| {
            let app = &app;
            async move {
                // The Lambda request id names the order: unique per invocation, and in every log line.
                let order_id = request.lambda_context_ref().map_or_else(
                    || "unknown".to_owned(),
                    |context| context.request_id.clone(),
                );
                // Every failure is an HTTP answer; none reaches Lambda as an error.
                Ok::<_, handler::ApiError>(handler::handle(app, request, &order_id).await)
            }
        }),
    )
    .await
}
