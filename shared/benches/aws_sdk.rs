//! What tracekit adds to an AWS SDK call, and what SQS context injection costs.
//!
//! `sdk_call_cpu/untraced` and `sdk_call_cpu/traced` make the same DynamoDB GetItem against a local
//! endpoint (a keep-alive HTTP/1.1 responder on its own threads, 127.0.0.1); the difference is the
//! interceptor, the span and its trip through the span processor. They report the calling thread's
//! CPU time, not wall time: the loopback round trip and the responder's work would otherwise bury a
//! difference of microseconds in scheduling noise. `sqs_inject` is `tracekit::sqs::inject` into a message that
//! already carries two user attributes.
//!
//! `cargo bench -p tracekit --bench aws_sdk --features testing`

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::MessageAttributeValue;
use cpu_time::ThreadTime;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use std::collections::HashMap;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::Duration;
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

fn sqs_inject(c: &mut Criterion) {
    let _test = TestTelemetry::new();
    let span = tracing::info_span!("send");
    let _entered = span.enter();
    let user: HashMap<String, MessageAttributeValue> = ["tenant", "kind"]
        .into_iter()
        .map(|key| {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value("v")
                .build()
                .expect("attribute");
            (key.to_owned(), value)
        })
        .collect();
    c.bench_function("sqs_inject", |b| {
        b.iter_batched_ref(
            || user.clone(),
            |attributes| black_box(tracekit::sqs::inject(attributes)),
            BatchSize::SmallInput,
        );
    });
}

criterion_group!(benches, sdk_call, sqs_inject);
criterion_main!(benches);
