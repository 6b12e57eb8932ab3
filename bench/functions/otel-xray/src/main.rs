//! The benchmark's function traced with the OpenTelemetry API and SDK directly, exporting each span
//! to the X-Ray daemon over UDP (opentelemetry-aws's exporter behind the simple span processor). The
//! parent is read from `_X_AMZN_TRACE_ID`, which lambda_runtime sets for each invocation.

use lambda_runtime::{Error, LambdaEvent, Runtime, service_fn};
use opentelemetry::{
    KeyValue,
    propagation::TextMapPropagator,
    trace::{Span as _, TraceContextExt, Tracer as _, TracerProvider as _},
};
use opentelemetry_aws::{
    trace::{XrayExtractor, XrayIdGenerator, XrayPropagator},
    xray_exporter::{XrayExporter, daemon_client::XrayDaemonClient},
};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use serde_json::{Value, json};

async fn handler(tracer: SdkTracer, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let parent = XrayPropagator::new().extract(&XrayExtractor::new());
    let invocation = tracer.build_with_context(
        tracer
            .span_builder("invocation")
            .with_attributes([KeyValue::new(
                "faas.invocation_id",
                event.context.request_id.clone(),
            )]),
        &parent,
    );
    let cx = parent.with_span(invocation);
    let mut sum = 0u64;
    for step in 0..10u64 {
        let mut span = tracer.start_with_context("step", &cx);
        span.set_attribute(KeyValue::new("step", step as i64));
        sum += std::hint::black_box(step);
        span.end();
    }
    cx.span().end();
    Ok(json!({ "ok": true, "n": event.payload["n"], "sum": sum }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // The daemon address comes from AWS_XRAY_DAEMON_ADDRESS.
    let provider = SdkTracerProvider::builder()
        .with_id_generator(XrayIdGenerator::default())
        .with_simple_exporter(XrayExporter::new(XrayDaemonClient::default()))
        .build();
    let tracer = provider.tracer("bench");
    Runtime::new(service_fn(move |event| handler(tracer.clone(), event)))
        .run()
        .await
}
