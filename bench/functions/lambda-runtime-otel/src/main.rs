//! The benchmark's function traced by lambda_runtime's own `OpenTelemetryLayer`: the tracing bridge,
//! a batch span processor and an OTLP/HTTP exporter, flushed by the layer after each response.

use lambda_runtime::{
    Error, LambdaEvent, Runtime,
    layers::{OpenTelemetryFaasTrigger, OpenTelemetryLayer},
    service_fn,
};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt;

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
    Runtime::new(service_fn(handler))
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
