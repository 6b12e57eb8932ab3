//! The benchmark's function with no tracing: the same handler as every traced variant, minus the
//! spans. Built with `--features concurrent`, it serves invocations as Lambda Managed Instances do
//! (`run_concurrent`, `AWS_LAMBDA_MAX_CONCURRENCY` at once): the baseline of the throughput
//! comparison.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let mut sum = 0u64;
    for step in 0..10u64 {
        sum += std::hint::black_box(step);
    }
    Ok(json!({ "ok": true, "n": event.payload["n"], "sum": sum }))
}

#[cfg(not(feature = "concurrent"))]
#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}

#[cfg(feature = "concurrent")]
#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run_concurrent(service_fn(handler)).await
}
