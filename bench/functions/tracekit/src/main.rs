//! The benchmark's function traced by tracekit: `init`, then `run`. The flush strategy and the
//! exporter come from the environment (`TRACEKIT_FLUSH`, `OTEL_TRACES_EXPORTER`).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let mut sum = 0u64;
    for step in 0..10u64 {
        let _span = tracing::info_span!("step", step).entered();
        sum += std::hint::black_box(step);
    }
    Ok(json!({ "ok": true, "n": event.payload["n"], "sum": sum }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = tracekit::init()?;
    tracekit::run(&telemetry, service_fn(handler)).await
}
