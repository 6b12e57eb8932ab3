//! A function for Lambda Managed Instances, where one execution environment serves up to
//! `AWS_LAMBDA_MAX_CONCURRENCY` invocations at once. `run_concurrent` gives each its own invocation
//! span under its own trace header; nothing about "the current invocation" is global, so the state
//! a handler shares (here a counter) needs no tracing of its own. With the variable unset or 1 the
//! same binary serves one invocation at a time, as `run` does.
//!
//! The environment never freezes between invocations, so the flush is `amortized` by default:
//! spans go in batches, and a quiet environment is flushed in the background.

use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tracekit::lambda_runtime::{Error, LambdaEvent, service_fn};

async fn handler(served: Arc<AtomicU64>, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let n = served.fetch_add(1, Ordering::Relaxed) + 1;
    // Awaiting lets the environment's other invocations run; each stays in its own span.
    tokio::time::sleep(Duration::from_millis(5)).await;
    tracekit::tracing::info!(served = n, "handled");
    Ok(json!({ "request_id": event.context.request_id, "served_by_this_environment": n }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = tracekit::init()?;
    let served = Arc::new(AtomicU64::new(0));
    tracekit::run_concurrent(
        &telemetry,
        service_fn(move |event| handler(served.clone(), event)),
    )
    .await
}
