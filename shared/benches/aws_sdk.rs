//! What tracekit adds to an AWS SDK call, and what context injection into a message costs.
//!
//! `sdk_call_cpu/untraced` and `sdk_call_cpu/traced` make the same DynamoDB GetItem against a local
//! endpoint (a keep-alive HTTP/1.1 responder on its own threads, 127.0.0.1); the difference is the
//! interceptor, the span and its trip through the span processor. They report the calling thread's
//! CPU time, not wall time: the loopback round trip and the responder's work would otherwise bury a
//! difference of microseconds in scheduling noise.
//!
//! `inject/*` puts the current span's context into one outgoing message, as tracekit's interceptor
//! does and, beside each, the generic way (`*_propagator`): the SDK's propagators into a map, its
//! values copied into the carrier. Both write the same keys and values (checked once before
//! measuring), and both read the context from the current `tracing` span.
//! - `inject/sqs`, `inject/sqs_propagator`: `tracekit::sqs::inject`'s W3C `traceparent`
//!   (`tracestate`, `baggage` when not empty) into an SQS message that already carries two user
//!   attributes; the peer through the SDK's default propagators (`tracecontext,baggage`).
//! - `inject/sns`, `inject/sns_propagator`: the same into an SNS `Publish`'s message attributes.
//! - `inject/eventbridge`, `inject/eventbridge_propagator`: the X-Ray header into a `PutEvents`
//!   entry's `TraceHeader`; the peer through opentelemetry-aws's `XrayPropagator`.
//!
//! `cargo bench -p tracekit --bench aws_sdk --features testing,dynamodb,sqs,sns,eventbridge`

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use cpu_time::ThreadTime;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry_aws::trace::{XrayPropagator, xray_extractor::AWS_XRAY_TRACE_HEADER};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use std::collections::HashMap;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::Duration;
use tracekit::OpenTelemetrySpanExt as _;
use tracekit::testing::TestTelemetry;
use tracing::Instrument;

/// Answers every request on every connection with `200 {}`; runs until the process exits.
fn local_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().expect("clone stream");
                let mut reader = BufReader::new(stream);
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(value) = lower.strip_prefix("content-length:") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let response = "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\n\
                                    x-amzn-requestid: bench\r\ncontent-length: 2\r\n\r\n{}";
                    if writer.write_all(response.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

fn client(endpoint: &str, traced: bool) -> aws_sdk_dynamodb::Client {
    let sdk = aws_types::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_types::region::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "bench"),
        ))
        .build();
    let builder = aws_sdk_dynamodb::config::Builder::from(&sdk).endpoint_url(endpoint);
    let builder = if traced {
        tracekit::aws::traced(builder)
    } else {
        builder
    };
    aws_sdk_dynamodb::Client::from_conf(builder.build())
}

async fn get_item(client: &aws_sdk_dynamodb::Client) {
    let output = client
        .get_item()
        .table_name("orders")
        .key("id", AttributeValue::S("42".into()))
        .send()
        .await;
    black_box(output.expect("local endpoint answers 200"));
}

fn sdk_call(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let endpoint = local_endpoint();
    // Installed for this thread: both variants run under tracekit's subscriber inside a handler span,
    // so the only difference is the interceptor.
    let test = TestTelemetry::new();
    let mut group = c.benchmark_group("sdk_call_cpu");
    for (name, traced) in [("untraced", false), ("traced", true)] {
        let client = client(&endpoint, traced);
        runtime.block_on(get_item(&client)); // connect outside the measurement
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut measured = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    // Stay well under the span buffer so no span takes the cheaper overflow path.
                    let chunk = left.min(1_000);
                    left -= chunk;
                    let started = ThreadTime::now();
                    runtime.block_on(
                        async {
                            for _ in 0..chunk {
                                get_item(&client).await;
                            }
                        }
                        .instrument(tracing::info_span!("handler")),
                    );
                    measured += started.elapsed();
                    runtime.block_on(test.telemetry().force_flush(Duration::from_secs(5)));
                    test.reset();
                }
                measured
            });
        });
    }
    group.finish();
}

/// The generic way: `propagator` into a map, then each value copied into `attributes` as `make`
/// builds it, unless the key is taken. An empty value (`tracestate` without entries) is left out:
/// SQS and SNS refuse an attribute without a value.
fn propagate<V>(
    propagator: &impl TextMapPropagator,
    attributes: &mut HashMap<String, V>,
    make: impl Fn(String) -> V,
) {
    let mut carrier = HashMap::new();
    propagator.inject_context(&tracing::Span::current().context(), &mut carrier);
    for (key, value) in carrier {
        if !value.is_empty() {
            attributes.entry(key).or_insert_with(|| make(value));
        }
    }
}

fn sqs_string(value: impl Into<String>) -> aws_sdk_sqs::types::MessageAttributeValue {
    aws_sdk_sqs::types::MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("a String attribute")
}

fn sns_string(value: impl Into<String>) -> aws_sdk_sns::types::MessageAttributeValue {
    aws_sdk_sns::types::MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("a String attribute")
}

/// Two user attributes, which every injection must keep.
fn user_attributes<V>(make: impl Fn(&'static str) -> V) -> HashMap<String, V> {
    ["tenant", "kind"]
        .into_iter()
        .map(|key| (key.to_owned(), make("v")))
        .collect()
}

fn inject(c: &mut Criterion) {
    let _test = TestTelemetry::new();
    let span = tracing::info_span!("send");
    let _entered = span.enter();
    // The SDK's default propagators: the W3C formats tracekit's default `OTEL_PROPAGATORS` gives
    // message attributes (the X-Ray header travels as `AWSTraceHeader`, or not at all for SNS).
    let w3c = TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ]);
    let xray = XrayPropagator::new();
    let mut group = c.benchmark_group("inject");

    let sqs = user_attributes(sqs_string);
    let sqs_propagator = |attributes: &mut HashMap<_, _>| propagate(&w3c, attributes, sqs_string);
    let (mut ours, mut theirs) = (sqs.clone(), sqs.clone());
    tracekit::sqs::inject(&mut ours);
    sqs_propagator(&mut theirs);
    assert_eq!(ours, theirs, "the same SQS attributes");
    assert!(
        ours.contains_key("traceparent")
            && ours.contains_key("tenant")
            && ours.contains_key("kind")
    );
    group.bench_function("sqs", |b| {
        b.iter_batched_ref(
            || sqs.clone(),
            |attributes| black_box(tracekit::sqs::inject(attributes)),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("sqs_propagator", |b| {
        b.iter_batched_ref(|| sqs.clone(), sqs_propagator, BatchSize::SmallInput);
    });

    let sns = user_attributes(sns_string);
    let sns_propagator = |attributes: &mut HashMap<_, _>| propagate(&w3c, attributes, sns_string);
    let (mut ours, mut theirs) = (sns.clone(), sns.clone());
    tracekit::testing::sns_inject(&mut ours);
    sns_propagator(&mut theirs);
    assert_eq!(ours, theirs, "the same SNS attributes");
    assert!(
        ours.contains_key("traceparent")
            && ours.contains_key("tenant")
            && ours.contains_key("kind")
    );
    group.bench_function("sns", |b| {
        b.iter_batched_ref(
            || sns.clone(),
            tracekit::testing::sns_inject,
            BatchSize::SmallInput,
        );
    });
    group.bench_function("sns_propagator", |b| {
        b.iter_batched_ref(|| sns.clone(), sns_propagator, BatchSize::SmallInput);
    });

    // A PutEvents of one entry; the user's fields are its source, detail type and detail.
    let entries = vec![
        PutEventsRequestEntry::builder()
            .source("orders")
            .detail_type("OrderPlaced")
            .detail(r#"{"id":"42"}"#)
            .build(),
    ];
    let eventbridge_propagator = |entries: &mut Vec<PutEventsRequestEntry>| {
        let mut carrier = HashMap::new();
        xray.inject_context(&tracing::Span::current().context(), &mut carrier);
        if let Some(header) = carrier.remove(AWS_XRAY_TRACE_HEADER) {
            for entry in entries {
                entry.trace_header.get_or_insert_with(|| header.clone());
            }
        }
    };
    let (mut ours, mut theirs) = (entries.clone(), entries.clone());
    tracekit::testing::eventbridge_inject(&mut ours);
    eventbridge_propagator(&mut theirs);
    assert_eq!(ours, theirs, "the same PutEvents entries");
    assert!(ours[0].trace_header.is_some() && ours[0].detail_type.is_some());
    group.bench_function("eventbridge", |b| {
        b.iter_batched_ref(
            || entries.clone(),
            |entries| tracekit::testing::eventbridge_inject(entries),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("eventbridge_propagator", |b| {
        b.iter_batched_ref(
            || entries.clone(),
            eventbridge_propagator,
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, sdk_call, inject);
criterion_main!(benches);
