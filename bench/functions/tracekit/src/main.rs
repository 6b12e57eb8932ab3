//! The benchmark's function traced by tracekit: `init`, then `run`. The flush strategy and the
//! exporter come from the environment (`TRACEKIT_FLUSH`, `OTEL_TRACES_EXPORTER`). Built with
//! `--features concurrent`, it runs `run_concurrent` (Lambda Managed Instances) instead.

use lambda_runtime::{Error, service_fn};

#[cfg(not(feature = "concurrent"))]
#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = tracekit::init()?;
    tracekit::run(&telemetry, service_fn(bench_handler::handler)).await
}

#[cfg(feature = "concurrent")]
#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = tracekit::init()?;
    tracekit::run_concurrent(&telemetry, service_fn(bench_handler::handler)).await
}
