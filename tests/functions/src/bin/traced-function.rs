//! The smallest real tracekit function: `tracekit::init` and `tracekit::run`, nothing else.
//!
//! - `{"children": N}` opens N child spans (default 2), each logging one line (none with
//!   `"quiet": true`), each with a `padding` attribute of `"padding": B` bytes when given;
//! - `{"oversized": B}` also opens one `oversized` span with a `padding` attribute of B bytes;
//! - `{"annotate": {"key": value, ...}}` annotates the invocation span with each string, number or
//!   boolean (`tracekit::annotate`), and opens one `tagged` span with the annotation
//!   `annotation.tier = "gold"` written as a `tracing` field;
//! - `{"metadata": {"namespace": {"key": value, ...}}}` keeps each value as X-Ray metadata of the
//!   invocation span (`tracekit::metadata`), and opens one `described` span with the metadata field
//!   `metadata.payment.provider = "stripe"`;
//! - `{"metrics": {"Name": value, ...}}` adds each as a `Count` metric (`tracekit::metrics`), with
//!   the dimension `Flow` = `"flow"`'s value when given, before anything else (a failing or
//!   panicking invocation still has them);
//! - `{"debug": "text"}` logs `text` at DEBUG first (`"repeat": N` times, once by default);
//! - an SNS event (`{"Records": [{"EventSource": "aws:sns", ...}]}`) is processed with
//!   `tracekit::sns::SnsProcessor`, one `process` span per message; a message `"fail"` fails;
//! - `{"fail": "message"}` returns an error of type `OrderError` with that message;
//! - `{"panic": true}` panics inside the handler;
//! - `{"sdk_call": "http://…"}` makes one DynamoDB GetItem with a traced client at that endpoint;
//! - `{"sleep_ms": N}` sleeps N ms after the child spans, still inside the invocation;
//! - `{"fan_out": true}` also opens two `joined` spans polled together under `tokio::join!` and one
//!   `spawned` span on a task of its own (`tokio::spawn` of an `.instrument`ed future), each sleeping
//!   10 ms;
//! - the response echoes `{"ok": true, "children": N}`; `{"respond": value}` answers `value` as it
//!   is instead (an API Gateway or ALB response built by hand).
//!
//! `TRACED_FUNCTION_ENTRY` chooses the entry point: `concurrent` runs through
//! `tracekit::run_concurrent` (Lambda Managed Instances: as many invocations at once as
//! `AWS_LAMBDA_MAX_CONCURRENCY` says); `runtime` and `runtime_concurrent` compose the runtime in
//! `main` (`tracekit::runtime`, with a tower layer of the function's own that logs
//! `user layer: {request id}` per invocation); anything else is `tracekit::run`.

use lambda_runtime::tower::{layer::layer_fn, util::MapRequest};
use lambda_runtime::{Diagnostic, Error, LambdaEvent, LambdaInvocation, service_fn};
use serde_json::{Value, json};
use tracing::Instrument;

/// The error a `{"fail": ...}` payload asks for.
#[derive(Debug)]
struct OrderError(String);

impl From<OrderError> for Diagnostic {
    fn from(error: OrderError) -> Diagnostic {
        Diagnostic {
            error_type: "OrderError".to_owned(),
            error_message: error.0,
        }
    }
}

async fn handler(event: LambdaEvent<Value>) -> Result<Value, OrderError> {
    let payload = event.payload;
    if payload
        .pointer("/Records/0/EventSource")
        .and_then(Value::as_str)
        == Some("aws:sns")
    {
        let batch: tracekit::sns::SnsBatch =
            serde_json::from_value(payload).map_err(|error| OrderError(error.to_string()))?;
        let processed = tracekit::sns::SnsProcessor::default()
            .process(batch, |message| async move {
                tracing::info!(id = %message.message_id, "notified");
                match message.message.as_str() {
                    "fail" => Err(OrderError("refused".to_owned())),
                    _ => Ok(()),
                }
            })
            .await;
        return match processed {
            Ok(()) => Ok(json!({"ok": true})),
            Err(failure) => Err(OrderError(failure.to_string())),
        };
    }
    if let Some(metrics) = payload.get("metrics").and_then(Value::as_object) {
        for (name, value) in metrics {
            let value = value.as_f64().unwrap_or_default();
            tracekit::metrics::add_metric(name.clone(), tracekit::metrics::Unit::Count, value);
        }
        if let Some(flow) = payload.get("flow").and_then(Value::as_str) {
            tracekit::metrics::add_dimension("Flow", flow);
        }
    }
    if let Some(text) = payload.get("debug").and_then(Value::as_str) {
        let lines = payload.get("repeat").and_then(Value::as_u64).unwrap_or(1);
        for _ in 0..lines {
            tracing::debug!("{text}");
        }
    }
    if let Some(message) = payload.get("fail").and_then(Value::as_str) {
        tracing::warn!("refusing the order");
        return Err(OrderError(message.to_owned()));
    }
    if payload.get("panic").and_then(Value::as_bool) == Some(true) {
        panic!("asked to panic");
    }
    if let Some(endpoint) = payload.get("sdk_call").and_then(Value::as_str) {
        let sdk = aws_config::load_from_env().await;
        let config = tracekit::aws::traced(aws_sdk_dynamodb::config::Builder::from(&sdk))
            .endpoint_url(endpoint)
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        let result = client
            .get_item()
            .table_name("orders")
            .key(
                "id",
                aws_sdk_dynamodb::types::AttributeValue::S("42".into()),
            )
            .send()
            .await;
        if let Err(error) = result {
            return Err(OrderError(error.to_string()));
        }
    }
    if let Some(namespaces) = payload.get("metadata").and_then(Value::as_object) {
        for (namespace, entries) in namespaces {
            for (key, value) in entries.as_object().into_iter().flatten() {
                tracekit::metadata(namespace, key, value);
            }
        }
        let _described =
            tracing::info_span!("described", metadata.payment.provider = "stripe").entered();
    }
    if let Some(annotations) = payload.get("annotate").and_then(Value::as_object) {
        for (key, value) in annotations {
            match value {
                Value::String(text) => tracekit::annotate(key, text.as_str()),
                Value::Bool(flag) => tracekit::annotate(key, *flag),
                Value::Number(number) => match number.as_i64() {
                    Some(whole) => tracekit::annotate(key, whole),
                    None => tracekit::annotate(key, number.as_f64().unwrap_or_default()),
                },
                _ => {}
            }
        }
        let _tagged = tracing::info_span!("tagged", annotation.tier = "gold").entered();
    }
    let children = payload.get("children").and_then(Value::as_u64).unwrap_or(2);
    let quiet = payload.get("quiet").and_then(Value::as_bool) == Some(true);
    let padding = payload
        .get("padding")
        .and_then(Value::as_u64)
        .map(|bytes| "p".repeat(bytes as usize));
    for step in 0..children {
        let span = tracing::info_span!("step", step, padding = padding.as_deref());
        let _entered = span.enter();
        if !quiet {
            tracing::info!(step, "working");
        }
    }
    if let Some(bytes) = payload.get("oversized").and_then(Value::as_u64) {
        let padding = "o".repeat(bytes as usize);
        let _span = tracing::info_span!("oversized", padding = padding.as_str()).entered();
    }
    if payload.get("fan_out").and_then(Value::as_bool) == Some(true) {
        let nap = || tokio::time::sleep(std::time::Duration::from_millis(10));
        tokio::join!(
            nap().instrument(tracing::info_span!("joined", branch = 0)),
            nap().instrument(tracing::info_span!("joined", branch = 1)),
        );
        let task = tokio::spawn(nap().instrument(tracing::info_span!("spawned")));
        if let Err(error) = task.await {
            return Err(OrderError(error.to_string()));
        }
    }
    if let Some(ms) = payload.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    if let Some(response) = payload.get("respond") {
        return Ok(response.clone());
    }
    Ok(json!({"ok": true, "children": children}))
}

/// What the function's own tower layer does: one log line per invocation, before tracekit's span.
fn log_invocation(invocation: LambdaInvocation) -> LambdaInvocation {
    tracing::info!("user layer: {}", invocation.context.request_id);
    invocation
}

/// The function's own tower layer.
fn user_layer<S>(inner: S) -> MapRequest<S, fn(LambdaInvocation) -> LambdaInvocation> {
    MapRequest::new(inner, log_invocation)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = tracekit::init()?;
    match std::env::var("TRACED_FUNCTION_ENTRY").as_deref() {
        Ok("concurrent") => tracekit::run_concurrent(&telemetry, service_fn(handler)).await,
        Ok("runtime") => {
            tracekit::runtime(&telemetry, service_fn(handler))
                .await
                .layer(layer_fn(user_layer))
                .run()
                .await
        }
        Ok("runtime_concurrent") => {
            tracekit::runtime_concurrent(&telemetry, service_fn(handler))
                .await
                .layer(layer_fn(user_layer))
                .run_concurrent()
                .await
        }
        _ => tracekit::run(&telemetry, service_fn(handler)).await,
    }
}
