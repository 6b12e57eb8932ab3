//! What tracekit's per-invocation work costs, piece by piece.
//!
//! - `xray/*`: the X-Ray header. `parse` is tracekit's strict parser (how the invocation's
//!   `Lambda-Runtime-Trace-Id` and an SQS record's `AWSTraceHeader` are read); `write` is how tracekit
//!   writes the header on every SDK request and SQS message; `extract` / `inject` go through
//!   opentelemetry-aws's propagator and a map carrier, as in any other carrier.
//! - `w3c/*`: `traceparent` + `tracestate` extract / inject through the W3C propagator.
//! - `invocation/*`: one invocation through the runtime's service stack, bare and wrapped in
//!   tracekit's invocation layer (span, attributes, end into the span buffer; no export).
//! - `span/*`: one span with two attributes, through `tracing` (tracing-opentelemetry) and through
//!   the OpenTelemetry SDK directly, into the same span processor; and through fastrace, the fastest
//!   Rust tracing library, into its collector: the anchor span creation is measured against.
//! - `processor/*`: what an invocation's 11 spans cost from creation to exported, through `tracing`
//!   into the same in-memory exporter: tracekit's span processor (a buffer drained by the flush the
//!   invocation layer runs) against the SDK's `BatchSpanProcessor` (a background thread, with
//!   `force_flush` after the response, as lambda_runtime's OpenTelemetry layer uses it), and
//!   fastrace's 11 spans handed to its collector (the caller's share; fastrace reports from a
//!   thread of its own).
//!
//! `cargo bench -p tracekit --bench spans --features testing`

use criterion::{Criterion, criterion_group, criterion_main};
use lambda_runtime::LambdaInvocation;
use opentelemetry::{
    Context, KeyValue,
    propagation::TextMapPropagator,
    trace::{
        Span as _, SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
        Tracer as _, TracerProvider as _,
    },
};
use opentelemetry_aws::trace::XrayPropagator;
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider};
use std::{collections::HashMap, hint::black_box};
use tower::{Layer, Service, ServiceExt, service_fn};
use tracekit::{
    propagation::{XrayHeader, xray_header_value},
    testing::{FakeInvocation, TestTelemetry},
};

const XRAY: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
const TRACEPARENT: &str = "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01";
const TRACESTATE: &str = "vendor=value,other=1";

fn context() -> Context {
    let span_context = SpanContext::new(
        TraceId::from_hex("5759e988bd862e3fe1be46a994272793").expect("trace id"),
        SpanId::from_hex("53995c3f42cd8ad8").expect("span id"),
        TraceFlags::SAMPLED,
        true,
        TraceState::from_key_value([("vendor", "value")]).expect("trace state"),
    );
    Context::new().with_remote_span_context(span_context)
}

fn xray(c: &mut Criterion) {
    let mut group = c.benchmark_group("xray");
    group.bench_function("parse", |b| {
        b.iter(|| black_box(XrayHeader::parse(black_box(XRAY))));
    });
    // An SDK call's client span under Lambda's header: no trace state.
    let span_context = SpanContext::new(
        TraceId::from_hex("5759e988bd862e3fe1be46a994272793").expect("trace id"),
        SpanId::from_hex("53995c3f42cd8ad8").expect("span id"),
        TraceFlags::SAMPLED,
        false,
        TraceState::NONE,
    );
    group.bench_function("write", |b| {
        b.iter(|| black_box(xray_header_value(black_box(&span_context))));
    });
    let propagator = XrayPropagator::new();
    let carrier = HashMap::from([("x-amzn-trace-id".to_owned(), XRAY.to_owned())]);
    group.bench_function("extract", |b| {
        b.iter(|| black_box(propagator.extract(black_box(&carrier))));
    });
    let cx = context();
    group.bench_function("inject", |b| {
        b.iter(|| {
            let mut carrier = HashMap::with_capacity(1);
            propagator.inject_context(black_box(&cx), &mut carrier);
            black_box(carrier)
        });
    });
    group.finish();
}

fn w3c(c: &mut Criterion) {
    let mut group = c.benchmark_group("w3c");
    let propagator = TraceContextPropagator::new();
    let carrier = HashMap::from([
        ("traceparent".to_owned(), TRACEPARENT.to_owned()),
        ("tracestate".to_owned(), TRACESTATE.to_owned()),
    ]);
    group.bench_function("extract", |b| {
        b.iter(|| black_box(propagator.extract(black_box(&carrier))));
    });
    let cx = context();
    group.bench_function("inject", |b| {
        b.iter(|| {
            let mut carrier = HashMap::with_capacity(2);
            propagator.inject_context(black_box(&cx), &mut carrier);
            black_box(carrier)
        });
    });
    group.finish();
}

fn invocation(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let test = TestTelemetry::new();
    let inner = service_fn(|_: LambdaInvocation| async { Ok::<(), lambda_runtime::Error>(()) });
    let mut bare = inner;
    let mut traced = test.layer().layer(inner);
    let event = || {
        FakeInvocation::new(serde_json::json!({"n": 1}))
            .trace_header(XRAY)
            .into_invocation()
    };
    let mut group = c.benchmark_group("invocation");
    group.bench_function("bare", |b| {
        b.iter(|| {
            runtime.block_on(async { bare.ready().await.expect("ready").call(event()).await })
        });
    });
    group.bench_function("traced", |b| {
        b.iter(|| {
            runtime.block_on(async { traced.ready().await.expect("ready").call(event()).await })
        });
        // Each traced invocation flushed its span to the in-memory exporter: keep it small.
        test.reset();
    });
    group.finish();
}

fn span(c: &mut Criterion) {
    let test = TestTelemetry::new();
    let mut group = c.benchmark_group("span");
    let parent = tracing::info_span!("parent");
    let _entered = parent.enter();
    group.bench_function("tracing", |b| {
        b.iter(|| {
            let span = tracing::info_span!("child", step = 1_i64, name = "x");
            drop(black_box(span));
        });
        test.reset();
    });
    // The raw SDK path: a provider with the same kind of processor, spans handed to it at end.
    let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let tracer = provider.tracer("bench");
    let cx = context();
    group.bench_function("sdk", |b| {
        b.iter(|| {
            let mut span = tracer.start_with_context("child", &cx);
            span.set_attribute(KeyValue::new("step", 1_i64));
            span.set_attribute(KeyValue::new("name", "x"));
            span.end();
        });
        exporter.reset();
    });
    // The anchor for span creation: fastrace, a span with the same two properties under a local
    // parent, handed to its collector (which reports to a sink that drops the spans).
    fastrace::set_reporter(Dropped, fastrace::collector::Config::default());
    let root = fastrace::Span::root("parent", fastrace::prelude::SpanContext::random());
    let _guard = root.set_local_parent();
    group.bench_function("fastrace", |b| {
        b.iter(|| {
            let span = fastrace::local::LocalSpan::enter_with_local_parent("child")
                .with_property(|| ("step", "1"))
                .with_property(|| ("name", "x"));
            drop(black_box(span));
        });
    });
    group.finish();
}

/// fastrace's reporter for the benchmark: the spans are collected, then dropped.
struct Dropped;

impl fastrace::collector::Reporter for Dropped {
    fn report(&mut self, spans: Vec<fastrace::prelude::SpanRecord>) {
        drop(black_box(spans));
    }
}

/// An invocation's spans: a parent and 10 children, as the whole-process benchmark's handler makes.
fn eleven_spans() {
    let parent = tracing::info_span!("invocation");
    let _entered = parent.enter();
    for step in 0..10_i64 {
        let _child = tracing::info_span!("step", step).entered();
    }
}

fn processor(c: &mut Criterion) {
    use tracing_subscriber::layer::SubscriberExt as _;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let bound = std::time::Duration::from_secs(1);
    let mut group = c.benchmark_group("processor");
    {
        let test = TestTelemetry::new();
        group.bench_function("tracekit", |b| {
            b.iter(|| {
                eleven_spans();
                let report = runtime.block_on(test.telemetry().force_flush(bound));
                assert_eq!(report.exported, 11, "every span exported");
                test.reset();
            });
        });
    }
    let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
    // fastrace: a root and 10 local children, handed to its collector when the root ends. The
    // collector reports from a background thread of its own (to the `span` group's reporter,
    // which drops them): what is timed is the caller's share, as fastrace spends it in a request.
    group.bench_function("fastrace", |b| {
        b.iter(|| {
            let root = fastrace::Span::root("invocation", fastrace::prelude::SpanContext::random());
            let _guard = root.set_local_parent();
            for step in 0..10_i64 {
                let _child = fastrace::local::LocalSpan::enter_with_local_parent("step")
                    .with_property(|| ("step", step.to_string()));
            }
        });
        fastrace::flush();
    });
    tracing::subscriber::with_default(subscriber, || {
        group.bench_function("sdk_batch", |b| {
            b.iter(|| {
                eleven_spans();
                provider.force_flush().expect("force_flush");
                assert_eq!(
                    exporter.get_finished_spans().map(|s| s.len()).ok(),
                    Some(11)
                );
                exporter.reset();
            });
        });
    });
    group.finish();
}

criterion_group!(benches, xray, w3c, invocation, span, processor);
criterion_main!(benches);
