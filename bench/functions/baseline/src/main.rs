//! The benchmark's function with no tracing: the same handler as every traced variant, minus the
//! spans.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let mut sum = 0u64;
    for step in 0..10u64 {
        sum += std::hint::black_box(step);
    }
    Ok(json!({ "ok": true, "n": event.payload["n"], "sum": sum }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
