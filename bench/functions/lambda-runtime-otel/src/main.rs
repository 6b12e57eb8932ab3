//! The benchmark's function traced by lambda_runtime's own `OpenTelemetryLayer`: the tracing bridge,
//! a batch span processor and an OTLP/HTTP exporter, flushed by the layer after each response.

use lambda_runtime::{
    Error, Runtime,
    layers::{OpenTelemetryFaasTrigger, OpenTelemetryLayer},
    service_fn,
};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // The endpoint comes from OTEL_EXPORTER_OTLP_ENDPOINT.
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .build();
    let subscriber = tracing_subscriber::registry().with(
        tracing_opentelemetry::OpenTelemetryLayer::new(provider.tracer("bench")),
    );
    tracing::subscriber::set_global_default(subscriber)?;

    let flush = provider.clone();
    Runtime::new(service_fn(bench_handler::handler))
        .layer(
            OpenTelemetryLayer::new(move || {
                if let Err(error) = flush.force_flush() {
                    eprintln!("flush failed: {error:?}");
                }
            })
            .with_trigger(OpenTelemetryFaasTrigger::Other),
        )
        .run()
        .await
}
