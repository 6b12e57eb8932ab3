//! The benchmark's function traced by tracekit: `init`, then `run`. The flush strategy and the
//! exporter come from the environment (`TRACEKIT_FLUSH`, `OTEL_TRACES_EXPORTER`).

use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = tracekit::init()?;
    tracekit::run(&telemetry, service_fn(bench_handler::handler)).await
}
