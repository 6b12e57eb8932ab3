//! The smallest traced function: a JSON event in, a JSON answer out. The invocation is a span under
//! the trace Lambda hands over; the greeting is a span of its own, with an attribute, under it.

use serde::Deserialize;
use serde_json::{Value, json};
use tracekit::OpenTelemetrySpanExt;
use tracekit::lambda_runtime::{Error, LambdaEvent, service_fn};

#[derive(Deserialize)]
struct Greet {
    name: String,
}

async fn handler(event: LambdaEvent<Greet>) -> Result<Value, Error> {
    let span = tracekit::tracing::info_span!("greet");
    span.set_attribute("greeting.name_length", event.payload.name.len() as i64);
    let _entered = span.enter();
    // A JSON log line that carries the request id and the X-Ray trace id.
    tracekit::tracing::info!("greeting");
    Ok(json!({ "message": format!("hello, {}", event.payload.name) }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = tracekit::init()?;
    tracekit::run(&telemetry, service_fn(handler)).await
}
