//! The benchmark's function traced by fastrace: the invocation's root span under the trace the
//! runtime hands over (`Lambda-Runtime-Trace-Id`), 10 local spans under it, reported by
//! fastrace-opentelemetry to an OTLP/HTTP exporter. fastrace reports from a thread of its own; a layer
//! calls `fastrace::flush()` once the response is sent, since a Lambda process is frozen between
//! invocations.

use fastrace::collector::{Config, SpanContext, SpanId, TraceId};
use fastrace::prelude::{LocalSpan, Span};
use fastrace_opentelemetry::OpenTelemetryReporter;
use lambda_runtime::{
    Error, LambdaEvent, LambdaInvocation, Runtime, Service, service_fn, tower::layer::layer_fn,
};
use opentelemetry::InstrumentationScope;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::future::Future;
use std::task::{Context, Poll};

/// The parent an X-Ray header names (`Root=1-…-…;Parent=…;Sampled=1`), if it names one.
fn parent(header: &str) -> Option<SpanContext> {
    let (mut trace_id, mut span_id, mut sampled) = (None, None, false);
    for field in header.split(';') {
        match field.split_once('=') {
            Some(("Root", root)) => {
                let hex: String = root.strip_prefix("1-")?.split('-').collect();
                trace_id = u128::from_str_radix(&hex, 16).ok();
            }
            Some(("Parent", parent)) => span_id = u64::from_str_radix(parent, 16).ok(),
            Some(("Sampled", flag)) => sampled = flag == "1",
            _ => {}
        }
    }
    Some(SpanContext::new(TraceId(trace_id?), SpanId(span_id?)).sampled(sampled))
}

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let parent = event.context.xray_trace_id.as_deref().and_then(parent);
    let root = match parent {
        Some(parent) => Span::root("invocation", parent)
            .with_property(|| ("faas.invocation_id", event.context.request_id.clone())),
        None => Span::noop(),
    };
    let _guard = root.set_local_parent();
    let mut sum = 0u64;
    for step in 0..10u64 {
        let _span =
            LocalSpan::enter_with_local_parent("step").with_property(|| ("step", step.to_string()));
        sum += std::hint::black_box(step);
    }
    Ok(json!({ "ok": true, "n": event.payload["n"], "sum": sum }))
}

/// The runtime's invocation service (handler, then the response posted), then `fastrace::flush()`.
struct FlushAfterResponse<S>(S);

impl<S> Service<LambdaInvocation> for FlushAfterResponse<S>
where
    S: Service<LambdaInvocation, Response = ()>,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<(), S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
        let invocation = self.0.call(invocation);
        Box::pin(async move {
            let result = invocation.await;
            fastrace::flush();
            result
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // The endpoint comes from OTEL_EXPORTER_OTLP_ENDPOINT.
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()?;
    let reporter = OpenTelemetryReporter::new(
        exporter,
        Cow::Owned(Resource::builder().build()),
        InstrumentationScope::builder("bench").build(),
    );
    fastrace::set_reporter(reporter, Config::default());

    Runtime::new(service_fn(handler))
        .layer(layer_fn(FlushAfterResponse))
        .run()
        .await
}
