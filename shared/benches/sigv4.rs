//! What signing one OTLP request for X-Ray's OTLP endpoint costs: tracekit's signer (its own path
//! for the request shape the exporter sends, the derived signing key kept per UTC day) against
//! aws-sigv4's `sign` as tracekit configured it before (the key derived for every request, four
//! HMACs), on the same request, in the same run. Bodies: one invocation's 11 spans as the OTLP
//! exporter sends them (~3 KB of protobuf), and a 64 KiB `amortized` batch.
//!
//! `cargo bench -p tracekit --features sigv4,fuzzing --bench sigv4`

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Request, header};
use std::{hint::black_box, time::SystemTime};
use tracekit::__fuzz::sigv4::{Signer, SigningCredentials, sign_with_aws_sigv4};

const REGION: &str = "us-east-1";
const ENDPOINT: &str = "https://xray.us-east-1.amazonaws.com/v1/traces";

/// A request as the OTLP exporter builds it before signing.
fn request(body_len: usize) -> Request<Bytes> {
    // Bytes that do not compress to nothing, as a protobuf body does not.
    let body: Vec<u8> = (0..body_len)
        .map(|index| (index as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0])
        .collect();
    let mut request = Request::post(ENDPOINT)
        .body(Bytes::from(body))
        .expect("request");
    request.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-protobuf"),
    );
    request
}

fn bench(c: &mut Criterion) {
    // Lambda's credentials are temporary: a session token is signed too.
    let credentials = SigningCredentials::new(
        "ASIAEXAMPLE000000000",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        Some(&"IQoJb3JpZ2luX2VjEXAMPLE".repeat(40)),
    );
    let mut group = c.benchmark_group("sigv4");
    for (name, body_len) in [("3KB", 3_000), ("64KiB", 64 * 1024)] {
        let unsigned = request(body_len);
        let signer = Signer::new(REGION);
        group.bench_function(format!("tracekit/{name}"), |b| {
            b.iter_batched_ref(
                || unsigned.clone(),
                |request| {
                    signer
                        .sign(request, &credentials, SystemTime::now())
                        .expect("signed");
                    black_box(request);
                },
                BatchSize::SmallInput,
            )
        });
        group.bench_function(format!("aws_sigv4/{name}"), |b| {
            b.iter_batched_ref(
                || unsigned.clone(),
                |request| {
                    sign_with_aws_sigv4(request, &credentials, REGION, SystemTime::now())
                        .expect("signed");
                    black_box(request);
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
