//! The benchmark's function traced by lambda-otel-lite, its span processor feeding an OTLP/HTTP
//! exporter. Its mode comes from `LAMBDA_EXTENSION_SPAN_PROCESSOR_MODE` (default `sync`: the flush
//! runs before the response); it exports only with a log level set (`AWS_LAMBDA_LOG_LEVEL`).

use lambda_otel_lite::{
    LambdaSpanProcessor, TelemetryConfig, create_traced_handler, init_telemetry,
};
use lambda_runtime::{Error, Runtime, service_fn};
use opentelemetry_otlp::{Protocol, WithExportConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // The endpoint comes from OTEL_EXPORTER_OTLP_ENDPOINT.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()?;
    let config = TelemetryConfig::builder()
        .with_span_processor(LambdaSpanProcessor::builder().exporter(exporter).build())
        .build();
    let (_tracer, completion) = init_telemetry(config).await?;
    let handler = create_traced_handler("bench", completion, bench_handler::handler);
    Runtime::new(service_fn(handler)).run().await
}
