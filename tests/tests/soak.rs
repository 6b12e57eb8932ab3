//! Soak: one process under Lambda Managed Instances (`tracekit::run_concurrent`,
//! `AWS_LAMBDA_MAX_CONCURRENCY=64`) serving 100,000 invocations, 64 at a time, exporting over
//! OTLP/HTTP with the default managed-concurrency flush (`amortized`, in the background). Every
//! invocation's spans arrive, once, under its own trace, request id and parent, before SIGTERM;
//! the process's resident memory after the run is reported against the memory after a warm-up, and
//! bounded.
//!
//! `TRACEKIT_SOAK_INVOCATIONS` runs fewer (or more) invocations, for a quick local run;
//! `TRACEKIT_SOAK_FLUSH` sets the function's `TRACEKIT_FLUSH`, to compare flush strategies.

use futures_util::{StreamExt, stream};
use integration_tests::otlp::{ReceivedSpan, SpanKind};
use integration_tests::xray;
use integration_tests::{FunctionProcess, Invocation, InvocationOutcome, OtlpReceiver, stack};
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 64;
const DEFAULT_INVOCATIONS: usize = 100_000;
/// Invocations served before the memory baseline is read: pools, buffers and caches are warm.
const WARM_UP: usize = 5_000;
/// The whole run must end within this; it takes a few minutes on these machines.
const BOUND: Duration = Duration::from_secs(20 * 60);
/// How much the resident memory may grow from the warm-up to the end: a leak of even a few
/// bytes per invocation would pass it only at a few thousand invocations.
const RSS_GROWTH_BOUND_KIB: u64 = 16 * 1024;

fn invocations() -> usize {
    std::env::var("TRACEKIT_SOAK_INVOCATIONS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(DEFAULT_INVOCATIONS)
}

/// Invocation `n`: its trace id and request id.
fn plan(n: usize) -> (String, String) {
    (xray::new_trace_id(), format!("soak-{n}"))
}

async fn serve(
    function: &FunctionProcess,
    plans: &[(String, String)],
    range: std::ops::Range<usize>,
) {
    let calls = stream::iter(range).map(|n| {
        let (trace, request_id) = &plans[n];
        let header = format!("Root={trace};Parent={};Sampled=1", xray::new_segment_id());
        let invocation = Invocation::json(json!({"children": 1}))
            .request_id(request_id.clone())
            .trace_header(header);
        async move { (n, function.invoke(invocation).await) }
    });
    let mut answers = calls.buffer_unordered(CONCURRENCY);
    while let Some((n, outcome)) = answers.next().await {
        match outcome {
            Ok(InvocationOutcome::Response(_)) => {}
            other => panic!("invocation {n}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::print_stdout,
    reason = "the soak's figures are its report (`cargo test -- --nocapture` shows them)"
)]
async fn a_hundred_thousand_concurrent_invocations_lose_nothing_and_mix_nothing() {
    let total = invocations();
    let receiver = OtlpReceiver::start().expect("OTLP receiver");
    let endpoint = receiver.endpoint();
    let mut env = vec![
        ("TRACED_FUNCTION_ENTRY", "concurrent".to_owned()),
        ("AWS_LAMBDA_MAX_CONCURRENCY", "64".to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        // The receiver shares two cores with the harness and the function; on a loaded machine
        // one answer can take more than the default 10 s, and a late answer counts as a loss.
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "60000".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    if let Ok(flush) = std::env::var("TRACEKIT_SOAK_FLUSH") {
        env.push(("TRACEKIT_FLUSH", flush));
    }
    let function =
        FunctionProcess::spawn(&stack::function_binary("traced-function"), &env).expect("spawn");
    let plans: Vec<(String, String)> = (0..total).map(plan).collect();
    let started = Instant::now();
    let run = async {
        let warm_up = WARM_UP.min(total);
        serve(&function, &plans, 0..warm_up).await;
        let baseline = function.memory_kib().expect("memory").0;
        serve(&function, &plans, warm_up..total).await;
        let end = function.memory_kib().expect("memory");
        (baseline, end)
    };
    let (baseline, (rss, peak)) = tokio::time::timeout(BOUND, run)
        .await
        .expect("the soak ends within its bound");
    let served = started.elapsed();
    println!(
        "soak: {total} invocations, {CONCURRENCY} at once, in {:.1} s ({:.0}/s); RSS after {WARM_UP}: {baseline} KiB, at the end: {rss} KiB (growth {} KiB), peak {peak} KiB",
        served.as_secs_f64(),
        total as f64 / served.as_secs_f64(),
        rss.saturating_sub(baseline),
    );
    let expected = total * 2;
    let spans = receiver
        .wait_for_spans(expected, Duration::from_secs(120))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} of {expected} spans arrived; rejected requests: {:?}",
                receiver.spans().len(),
                receiver.rejections()
            )
        });
    println!(
        "soak: {} spans in {} OTLP requests",
        spans.len(),
        receiver.request_count()
    );
    // Everything arrived from the background flush (by size, and by age for the last ones), with
    // the process still running; SIGTERM finds nothing left to send.
    let status = function.shutdown().await.expect("exit");
    assert!(status.success(), "{status:?}");
    assert_eq!(spans.len(), expected, "each span exactly once");

    let mut by_trace: HashMap<&str, Vec<&ReceivedSpan>> = HashMap::with_capacity(total);
    for span in &spans {
        by_trace
            .entry(span.trace_id.as_str())
            .or_default()
            .push(span);
    }
    assert_eq!(by_trace.len(), total, "one trace per invocation");
    let mut cold = 0;
    for (n, (trace, request_id)) in plans.iter().enumerate() {
        let own = &by_trace[xray::otel_trace_id(trace).as_str()];
        let server = own
            .iter()
            .find(|s| s.kind == SpanKind::Server)
            .unwrap_or_else(|| panic!("invocation {n}: its span"));
        assert_eq!(
            server.attr_str("faas.invocation_id"),
            Some(request_id.as_str()),
            "invocation {n}: its own request id"
        );
        let step = own
            .iter()
            .find(|s| s.name == "step")
            .unwrap_or_else(|| panic!("invocation {n}: its child"));
        assert_eq!(
            step.parent_span_id.as_deref(),
            Some(server.span_id.as_str()),
            "invocation {n}: its child under its own span"
        );
        if server.attr_bool("faas.coldstart") == Some(true) {
            cold += 1;
        }
    }
    assert_eq!(cold, 1, "cold start once per process");
    assert!(
        rss.saturating_sub(baseline) <= RSS_GROWTH_BOUND_KIB,
        "RSS grew {} KiB (bound {RSS_GROWTH_BOUND_KIB} KiB)",
        rss.saturating_sub(baseline)
    );
}
