//! The benchmark's function traced by tracekit: `init`, then `run`. The flush strategy and the
//! exporter come from the environment (`TRACEKIT_FLUSH`, `OTEL_TRACES_EXPORTER`). Built with
//! `--features concurrent`, it runs `run_concurrent` (Lambda Managed Instances) instead; with
//! `--features metrics`, the handler also adds three CloudWatch metrics per invocation
//! (`tracekit::metrics`; the namespace from `TRACEKIT_METRICS_NAMESPACE`).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[cfg(not(feature = "concurrent"))]
#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = tracekit::init()?;
    tracekit::run(&telemetry, service_fn(handler)).await
}

#[cfg(feature = "concurrent")]
#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = tracekit::init()?;
    tracekit::run_concurrent(&telemetry, service_fn(handler)).await
}

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    #[cfg(feature = "metrics")]
    {
        use tracekit::metrics::{self, Unit};
        metrics::add_metric("Orders", Unit::Count, 1.0);
        metrics::add_metric("OrderValue", Unit::None, 42.5);
        metrics::add_metric("Latency", Unit::Milliseconds, 3.0);
    }
    bench_handler::handler(event).await
}
