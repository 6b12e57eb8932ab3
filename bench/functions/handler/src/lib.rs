//! The benchmark's handler: 10 `tracing` spans under the invocation's span, then a small answer.
//! The untraced baseline runs the same loop without the spans; the OTel SDK variant creates its
//! spans with the OpenTelemetry API.

use lambda_runtime::{Error, LambdaEvent};
use serde_json::{Value, json};

/// Handles one invocation.
pub async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let mut sum = 0u64;
    for step in 0..10u64 {
        let _span = tracing::info_span!("step", step).entered();
        sum += std::hint::black_box(step);
    }
    Ok(json!({ "ok": true, "n": event.payload["n"], "sum": sum }))
}
