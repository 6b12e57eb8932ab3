//! What tracekit's per-invocation work costs, piece by piece.
//!
//! - `xray/*`: the X-Ray header. `parse` is tracekit's strict parser (how the invocation's
//!   `Lambda-Runtime-Trace-Id` and an SQS record's `AWSTraceHeader` are read); `write` is how tracekit
//!   writes the header on every SDK request and SQS message; `extract` / `inject` go through
//!   opentelemetry-aws's propagator and a map carrier, as in any other carrier.
//! - `w3c/*`: `traceparent` + `tracestate` extract / inject through the W3C propagator.
//! - `invocation/*`: one invocation through the runtime's service stack, bare and wrapped in
//!   tracekit's invocation layer (span, attributes, end into the span buffer; no export).
//! - `span/*`: one span with two attributes, through `tracing` (tracekit's own subscriber, and with
//!   `_tracing_opentelemetry` the Registry path) and through the OpenTelemetry SDK directly, into
//!   the same span processor; and through fastrace, the fastest Rust tracing library, into its
//!   collector: the anchor a span is measured against. tracekit's spans end encoded, as on the
//!   agent and OTLP/HTTP paths, and the buffer is flushed (untimed) every 1,000 spans, so every
//!   span measured is recorded and exported (counted). A fastrace root records at most 10,240
//!   spans, so its spans are made under roots of 1,000 each, every root's end timed with its
//!   spans, and the reporter counts that every one arrived.
//! - `processor/*`: what an invocation's 11 spans cost from creation to exported, through `tracing`
//!   into OTLP requests kept in memory: tracekit's span processor (spans encoded as they end, a
//!   buffer drained by the flush the invocation layer runs) against the SDK's
//!   `BatchSpanProcessor` into an in-memory exporter (a background thread, with `force_flush` after
//!   the response, as lambda_runtime's OpenTelemetry layer uses it), and fastrace's 11 spans handed
//!   to its collector (the caller's share; fastrace reports from a thread of its own).
//! - `otlp_encode/*`: one invocation's 11 spans (the SERVER invocation span and 10 INTERNAL
//!   children, as tracekit records them) and a Lambda function's resource, into the protobuf body
//!   of an `ExportTraceServiceRequest`: `tracekit` is tracekit's encoder as its OTLP and agent
//!   exporters run it (resource encoded once, spans packed, then written straight from the
//!   `SpanData`); `opentelemetry_otlp` is what opentelemetry-otlp's HTTP exporter does
//!   (`build_trace_export_body`: opentelemetry-proto's conversion, its resource converted once, then
//!   prost). Each is handed its own copy of the batch, made outside the measurement, and frees it,
//!   as the exporters do.
//!
//! `cargo bench -p tracekit --bench spans --features testing`

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use lambda_runtime::LambdaInvocation;
use opentelemetry::{
    Context, InstrumentationScope, KeyValue,
    propagation::TextMapPropagator,
    trace::{
        Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
        TraceState, Tracer as _, TracerProvider as _,
    },
};
use opentelemetry_aws::trace::XrayPropagator;
use opentelemetry_proto::{
    tonic::collector::trace::v1::ExportTraceServiceRequest,
    transform::{
        common::tonic::ResourceAttributesWithSchema,
        trace::tonic::group_spans_by_resource_and_scope,
    },
};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{SdkTracerProvider, SpanData, SpanEvents, SpanLinks},
};
use opentelemetry_semantic_conventions::{attribute as semattr, resource as semres};
use prost::Message as _;
use std::{
    collections::HashMap,
    hint::black_box,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant, UNIX_EPOCH},
};
use tower::{Layer, Service, ServiceExt, service_fn};
use tracekit::{
    config::{Config, SpanPath},
    propagation::{XrayHeader, xray_header_value},
    testing::{FakeInvocation, OtlpEncoder, TestTelemetry},
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

/// tracekit's test telemetry on one span path, exporting as the agent and OTLP/HTTP paths do:
/// spans encoded as they end, into OTLP requests kept in memory.
fn on(path: SpanPath) -> TestTelemetry {
    let mut config = Config::from_lookup(|_| None).expect("defaults");
    config.span_path = path;
    TestTelemetry::encoding(config)
}

/// The two span paths, by the name their benchmarks take.
const PATHS: [(&str, SpanPath); 2] = [
    ("", SpanPath::Tracekit),
    ("_tracing_opentelemetry", SpanPath::TracingOpentelemetry),
];

fn invocation(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let inner = service_fn(|_: LambdaInvocation| async { Ok::<(), lambda_runtime::Error>(()) });
    let mut bare = inner;
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
    for (suffix, path) in PATHS {
        let test = on(path);
        let mut traced = test.layer().layer(inner);
        group.bench_function(format!("traced{suffix}"), |b| {
            b.iter(|| {
                runtime.block_on(async { traced.ready().await.expect("ready").call(event()).await })
            });
            runtime.block_on(test.telemetry().force_flush(Duration::from_secs(1)));
            assert!(
                !test.otlp_spans().is_empty(),
                "the invocation spans were exported"
            );
            test.reset();
        });
    }
    group.finish();
}

fn span(c: &mut Criterion) {
    let mut group = c.benchmark_group("span");
    for (suffix, path) in PATHS {
        let test = on(path);
        let parent = tracing::info_span!("parent");
        let _entered = parent.enter();
        // Flushed, untimed, every `SPANS_PER_FLUSH` spans: a span buffer left full would drop the
        // spans that follow, and a dropped span costs less than a recorded one.
        let mut created = 0_u64;
        let mut exported = 0_u64;
        let flushing = runtime();
        group.bench_function(format!("tracing{suffix}"), |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let batch = left.min(SPANS_PER_FLUSH);
                    let started = Instant::now();
                    for _ in 0..batch {
                        let span = tracing::info_span!("child", step = 1_i64, name = "x");
                        drop(black_box(span));
                    }
                    elapsed += started.elapsed();
                    let report =
                        flushing.block_on(test.telemetry().force_flush(Duration::from_secs(1)));
                    exported += report.exported as u64;
                    test.reset();
                    left -= batch;
                }
                created += iters;
                elapsed
            });
        });
        assert_eq!(exported, created, "every span recorded and exported");
    }
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
    // parent, recorded and handed to its collector. fastrace stops recording a root's spans after
    // 10,240 (`DEFAULT_SPAN_QUEUE_SIZE`, local/local_span_stack.rs): one root held for the whole
    // run would measure spans it drops. So each root here holds at most `FASTRACE_BATCH` spans,
    // and its end (which hands them to the collector) is timed with them.
    let reported = Reported::get();
    let mut created = 0_u64;
    group.bench_function("fastrace", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let started = Instant::now();
                for _ in 0..FASTRACE_ROOTS_PER_FLUSH {
                    let batch = left.min(FASTRACE_BATCH);
                    let root =
                        fastrace::Span::root("parent", fastrace::prelude::SpanContext::random());
                    {
                        let _guard = root.set_local_parent();
                        for _ in 0..batch {
                            let span = fastrace::local::LocalSpan::enter_with_local_parent("child")
                                .with_property(|| ("step", "1"))
                                .with_property(|| ("name", "x"));
                            drop(black_box(span));
                        }
                    }
                    drop(root);
                    left -= batch;
                    if left == 0 {
                        break;
                    }
                }
                elapsed += started.elapsed();
                // Untimed: the collector's thread takes what was handed to it, so that its
                // backlog stays small and its work does not run beside the timed spans.
                fastrace::flush();
            }
            created += iters;
            elapsed
        });
    });
    // What the figure divides by: every span measured was recorded and reached the reporter.
    assert_eq!(
        reported.count("child"),
        created,
        "every span span/fastrace created was recorded and reported"
    );
    group.finish();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Most spans under one fastrace root in `span/fastrace`: well under the 10,240 a root records.
const FASTRACE_BATCH: u64 = 1_000;
/// Spans `span/tracing` makes between two (untimed) flushes: fewer than the span buffer holds.
const SPANS_PER_FLUSH: u64 = 1_000;
/// Invocations (a root and 10 children) `processor/fastrace` runs between two flushes of
/// fastrace's collector.
const FASTRACE_INVOCATIONS_PER_FLUSH: u64 = 100;
/// Roots `span/fastrace` ends between two flushes of fastrace's collector.
const FASTRACE_ROOTS_PER_FLUSH: u64 = 10;

/// fastrace's reporter for the benchmarks: it counts the spans it is handed, by name, then drops
/// them.
#[derive(Clone, Default)]
struct Reported(Arc<Mutex<HashMap<String, u64>>>);

impl Reported {
    /// The reporter installed as fastrace's (on first use), reporting every 10 ms: the collector's
    /// backlog stays small.
    fn get() -> &'static Reported {
        static REPORTED: OnceLock<Reported> = OnceLock::new();
        REPORTED.get_or_init(|| {
            let reported = Reported::default();
            fastrace::set_reporter(
                reported.clone(),
                fastrace::collector::Config::default().report_interval(Duration::from_millis(10)),
            );
            reported
        })
    }

    /// Spans named `name` reported so far, once every span ended on this thread is reported; the
    /// count starts over.
    fn count(&self, name: &str) -> u64 {
        // A root ended now sends its commands after any this thread still holds back (fastrace
        // queues them when its channel is full); the flush then hands everything to the reporter.
        drop(fastrace::Span::root(
            "nudge",
            fastrace::prelude::SpanContext::random(),
        ));
        fastrace::flush();
        self.0
            .lock()
            .map_or(0, |mut counts| counts.remove(name).unwrap_or(0))
    }
}

impl fastrace::collector::Reporter for Reported {
    fn report(&mut self, spans: Vec<fastrace::prelude::SpanRecord>) {
        if let Ok(mut counts) = self.0.lock() {
            for span in &spans {
                *counts.entry(span.name.to_string()).or_default() += 1;
            }
        }
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
    for (suffix, path) in PATHS {
        let test = on(path);
        group.bench_function(format!("tracekit{suffix}"), |b| {
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
    let reported = Reported::get();
    let mut roots = 0_u64;
    group.bench_function("fastrace", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let batch = left.min(FASTRACE_INVOCATIONS_PER_FLUSH);
                let started = Instant::now();
                for _ in 0..batch {
                    let root = fastrace::Span::root(
                        "invocation",
                        fastrace::prelude::SpanContext::random(),
                    );
                    let _guard = root.set_local_parent();
                    for step in 0..10_i64 {
                        let _child = fastrace::local::LocalSpan::enter_with_local_parent("step")
                            .with_property(|| ("step", step.to_string()));
                    }
                }
                elapsed += started.elapsed();
                // Untimed: the collector's thread takes what was handed to it. Left to pile up
                // over a whole measurement on a loaded machine, its bounded queue drops spans.
                fastrace::flush();
                left -= batch;
            }
            roots += iters;
            elapsed
        });
    });
    assert_eq!(
        (reported.count("invocation"), reported.count("step")),
        (roots, roots * 10),
        "every span processor/fastrace created was recorded and reported"
    );
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

const FUNCTION: &str = "orders";
const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:orders";

/// A Lambda function's resource as tracekit builds it: cloud.* defaults, the Lambda detector's
/// attributes, `service.name`.
fn lambda_resource() -> Resource {
    Resource::builder_empty()
        .with_attributes([
            KeyValue::new(semres::CLOUD_PROVIDER, "aws"),
            KeyValue::new(semres::CLOUD_PLATFORM, "aws_lambda"),
            KeyValue::new(semres::CLOUD_REGION, "us-east-1"),
            KeyValue::new(semres::FAAS_NAME, FUNCTION),
            KeyValue::new(semres::FAAS_VERSION, "$LATEST"),
            KeyValue::new(
                semres::FAAS_INSTANCE,
                "2026/01/15/[$LATEST]8f1c5e2a9b3d4c6e8f0a1b2c3d4e5f60",
            ),
            KeyValue::new(semres::FAAS_MAX_MEMORY, 134_217_728_i64),
            KeyValue::new(
                semres::AWS_LOG_GROUP_NAMES,
                opentelemetry::Value::Array(
                    vec![opentelemetry::StringValue::from("/aws/lambda/orders")].into(),
                ),
            ),
        ])
        .with_service_name(FUNCTION)
        .build()
}

/// One invocation's spans as tracekit's processor buffers them: 10 INTERNAL children with a `step`
/// each, then the SERVER invocation span (ended last) under Lambda's segment, with the attributes the
/// invocation layer gives a direct invocation. tracekit's layer records no code location, thread or
/// level attributes. Fixed ids and times: every run encodes the same bytes.
fn invocation_spans() -> Vec<SpanData> {
    let trace_id = TraceId::from_hex("5759e988bd862e3fe1be46a994272793").expect("trace id");
    let lambda_segment = SpanId::from_hex("53995c3f42cd8ad8").expect("span id");
    let invocation_id = SpanId::from(0x1000_u64);
    let scope = InstrumentationScope::builder("tracekit").build();
    let start = UNIX_EPOCH + Duration::from_secs(1_768_435_200);
    let span = |id: SpanId, parent, kind, name: String, offset_us: u64, attributes| SpanData {
        span_context: SpanContext::new(trace_id, id, TraceFlags::SAMPLED, false, TraceState::NONE),
        parent_span_id: parent,
        parent_span_is_remote: parent == lambda_segment,
        span_kind: kind,
        name: name.into(),
        start_time: start + Duration::from_micros(offset_us),
        end_time: start + Duration::from_micros(offset_us + 40),
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: scope.clone(),
    };
    let mut spans: Vec<SpanData> = (0..10_u64)
        .map(|step| {
            span(
                SpanId::from(0x1001 + step),
                invocation_id,
                SpanKind::Internal,
                "step".to_owned(),
                10 + 50 * step,
                vec![KeyValue::new("step", step as i64)],
            )
        })
        .collect();
    let mut invocation = span(
        invocation_id,
        lambda_segment,
        SpanKind::Server,
        FUNCTION.to_owned(),
        0,
        vec![
            KeyValue::new(semattr::FAAS_TRIGGER, "other"),
            KeyValue::new(
                semattr::FAAS_INVOCATION_ID,
                "8476a536-e9f4-11e8-9739-2dfe598c3fcd",
            ),
            KeyValue::new(semattr::FAAS_COLDSTART, false),
            KeyValue::new(semattr::CLOUD_RESOURCE_ID, FUNCTION_ARN),
            KeyValue::new(semattr::AWS_LAMBDA_INVOKED_ARN, FUNCTION_ARN),
            KeyValue::new(semattr::CLOUD_ACCOUNT_ID, "123456789012"),
        ],
    );
    invocation.end_time = start + Duration::from_micros(600);
    spans.push(invocation);
    spans
}

fn otlp_encode(c: &mut Criterion) {
    let spans = invocation_spans();
    let resource = lambda_resource();
    let tracekit = OtlpEncoder::new(&resource);
    // opentelemetry-otlp converts the resource once too, in `set_resource`.
    let attributes = ResourceAttributesWithSchema::from(&resource);
    let opentelemetry_otlp = |batch: Vec<SpanData>| {
        ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(batch, &attributes),
        }
        .encode_to_vec()
    };
    // encode.rs's property test holds the two equal for any span; checked once more on these, so
    // that both benchmarks provably encode the same request.
    let ours = tracekit.encode(&spans);
    let theirs = opentelemetry_otlp(spans.clone());
    assert_eq!(
        ExportTraceServiceRequest::decode(ours.as_slice()).expect("tracekit's request decodes"),
        ExportTraceServiceRequest::decode(theirs.as_slice()).expect("prost's request decodes"),
    );
    assert_eq!(ours, theirs, "byte for byte");
    let mut group = c.benchmark_group("otlp_encode");
    group.bench_function("tracekit", |b| {
        b.iter_batched(
            || spans.clone(),
            |batch| tracekit.encode(&batch),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("opentelemetry_otlp", |b| {
        b.iter_batched(|| spans.clone(), opentelemetry_otlp, BatchSize::SmallInput);
    });
    group.finish();
}

criterion_group!(benches, xray, w3c, invocation, span, processor, otlp_encode);
criterion_main!(benches);
