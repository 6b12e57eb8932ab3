//! `OTEL_SDK_DISABLED=true` turns tracing off while the function runs as ever: the handler answers,
//! log lines are written, and nothing is exported, no extension registers (even under `amortized`),
//! and the SDK interceptor leaves the call alone (its `X-Amzn-Trace-Id` is the SDK's own, from
//! Lambda's header, not a client span of tracekit's).

use integration_tests::{
    FunctionProcess, Invocation, InvocationOutcome, OtlpReceiver, Scripted, ScriptedEndpoint, stack,
};
use serde_json::json;
use std::time::Duration;

const HEADER: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

#[tokio::test]
async fn disabled_tracing_records_and_exports_nothing_and_the_function_runs() {
    let otlp = OtlpReceiver::start().expect("receiver");
    let endpoint =
        ScriptedEndpoint::start(vec![Scripted::json(200, "{}")]).expect("scripted endpoint");
    let function = FunctionProcess::spawn(
        &stack::function_binary("traced-function"),
        &[
            ("OTEL_SDK_DISABLED", "true".to_owned()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint()),
            ("TRACEKIT_FLUSH", "amortized".to_owned()),
            ("AWS_ACCESS_KEY_ID", "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
        ],
    )
    .expect("spawn");
    for _ in 0..3 {
        let outcome = function
            .invoke(
                Invocation::json(json!({"children": 2, "sdk_call": endpoint.url()}))
                    .trace_header(HEADER),
            )
            .await
            .expect("invocation");
        let InvocationOutcome::Response(body) = &outcome else {
            panic!("the handler's answer is lost: {outcome:?}");
        };
        let answer: serde_json::Value = serde_json::from_slice(body).expect("JSON");
        assert_eq!(answer["ok"], true);
    }
    let status = function.shutdown().await.expect("shutdown");
    assert!(status.success(), "SIGTERM ends it cleanly: {status:?}");
    assert!(
        function.extensions().is_empty(),
        "no extension registers: {:?}",
        function.extensions()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(otlp.request_count(), 0, "nothing is exported");
    let logs = function
        .stdout()
        .into_iter()
        .filter(|line| line.contains("working"))
        .count();
    assert_eq!(logs, 6, "log lines are written as ever");
    let received = endpoint.received();
    assert_eq!(received.len(), 3);
    for request in &received {
        let header = request.header("x-amzn-trace-id").unwrap_or_default();
        assert!(
            header.is_empty() || header.contains("Parent=53995c3f42cd8ad8"),
            "no client span of tracekit's names the call: {header}"
        );
    }
}
