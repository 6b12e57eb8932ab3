//! The two flush strategies in a real function process under the Runtime API harness.
//!
//! `end-of-invocation` exports each invocation's spans before the next `/next` and registers no
//! extension. `amortized` registers tracekit's internal extension before the first `/next`, exports
//! only once the buffer passes its threshold, and exports the rest on SIGTERM, which Lambda sends at
//! shutdown because an extension is registered.

use integration_tests::{FunctionProcess, Invocation, OtlpReceiver, stack, xray};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);
/// Spans per invocation: the SERVER span and 10 children.
const SPANS: usize = 11;

fn spawn(receiver: &OtlpReceiver, env: &[(&str, &str)]) -> FunctionProcess {
    let mut env: Vec<(&str, String)> = env
        .iter()
        .map(|(key, value)| (*key, (*value).to_owned()))
        .collect();
    env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()));
    FunctionProcess::spawn(&stack::function_binary("traced-function"), &env).expect("spawn")
}

/// Invokes with 10 child spans and returns once the function polls `/next` again: any flush this
/// invocation owed has then reached the receiver.
async fn invoke(function: &FunctionProcess) -> String {
    let trace_id = xray::new_trace_id();
    let header = format!(
        "Root={trace_id};Parent={};Sampled=1",
        xray::new_segment_id()
    );
    let timed = function
        .invoke_timed(Invocation::json(json!({"children": 10})).trace_header(header))
        .await
        .expect("invocation");
    assert!(
        timed.outcome.json().is_ok(),
        "the handler answers: {:?}",
        timed.outcome
    );
    timed.turnaround().await.expect("the next /next");
    assert!(
        function.protocol_violations().is_empty(),
        "{:?}",
        function.protocol_violations()
    );
    trace_id
}

#[tokio::test]
async fn end_of_invocation_exports_every_invocation_and_registers_no_extension() {
    let receiver = OtlpReceiver::start().expect("receiver");
    let function = spawn(&receiver, &[]);
    for n in 1..=2 {
        invoke(&function).await;
        assert_eq!(
            receiver.spans().len(),
            SPANS * n,
            "each invocation's spans, before the next one"
        );
    }
    assert!(
        function.extensions().is_empty(),
        "{:?}",
        function.extensions()
    );
    assert!(function.shutdown().await.expect("exit").success());
}

#[tokio::test]
async fn amortized_exports_past_the_threshold_and_the_rest_on_sigterm() {
    let receiver = OtlpReceiver::start().expect("receiver");
    let function = spawn(
        &receiver,
        &[
            ("TRACEKIT_FLUSH", "amortized"),
            ("TRACEKIT_FLUSH_MAX_SPANS", "30"),
        ],
    );
    let mut traces = Vec::new();
    for _ in 0..2 {
        traces.push(invoke(&function).await);
    }
    assert_eq!(
        receiver.request_count(),
        0,
        "22 spans are below the threshold of 30: nothing exported yet"
    );
    assert_eq!(function.extensions(), ["tracekit"]);

    traces.push(invoke(&function).await);
    let spans = receiver
        .wait_for_spans(3 * SPANS, WAIT)
        .await
        .expect("33 spans buffered: one flush");
    assert_eq!(spans.len(), 3 * SPANS);
    assert_eq!(receiver.request_count(), 1, "in one export request");

    for _ in 0..2 {
        traces.push(invoke(&function).await);
    }
    assert_eq!(receiver.spans().len(), 3 * SPANS, "22 spans wait again");

    let status = function.shutdown().await.expect("exit status");
    assert!(status.success(), "exits cleanly on SIGTERM: {status:?}");
    let spans = receiver
        .wait_for_spans(5 * SPANS, WAIT)
        .await
        .expect("the spans still buffered are exported on SIGTERM");
    assert_eq!(spans.len(), 5 * SPANS, "nothing exported twice");
    for trace_id in &traces {
        let in_trace = spans
            .iter()
            .filter(|span| span.trace_id == xray::otel_trace_id(trace_id))
            .count();
        assert_eq!(
            in_trace, SPANS,
            "every span under its invocation's trace header"
        );
    }
}

#[tokio::test]
async fn amortized_flushes_spans_that_waited_past_the_age_limit() {
    let receiver = OtlpReceiver::start().expect("receiver");
    let function = spawn(
        &receiver,
        &[
            ("TRACEKIT_FLUSH", "amortized"),
            ("TRACEKIT_FLUSH_MAX_AGE_MS", "300"),
        ],
    );
    invoke(&function).await;
    assert_eq!(receiver.request_count(), 0, "the spans are fresh");
    tokio::time::sleep(Duration::from_millis(300)).await;
    invoke(&function).await;
    receiver
        .wait_for_spans(2 * SPANS, WAIT)
        .await
        .expect("the first invocation's spans waited past 300 ms: both are exported");
    assert!(function.shutdown().await.expect("exit").success());
}
