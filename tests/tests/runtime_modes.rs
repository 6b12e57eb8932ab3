//! tracekit's entry points as a function runs them: what a function prints when it starts, and what
//! each entry point keeps (span, error, flush, SIGTERM).

use integration_tests::xray::{self, XrayDaemon};
use integration_tests::{FunctionProcess, Invocation, InvocationOutcome, stack};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

fn spawn(agent: &XrayDaemon, env: &[(&str, &str)]) -> FunctionProcess {
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.push(("AWS_XRAY_DAEMON_ADDRESS", agent.address()));
    FunctionProcess::spawn(&stack::function_binary("traced-function"), &env).expect("spawn")
}

fn header() -> String {
    format!(
        "Root={};Parent={};Sampled=1",
        xray::new_trace_id(),
        xray::new_segment_id()
    )
}

/// Starts the function, serves it one invocation and stops it: every line it printed.
async fn lines_of_one_invocation(env: &[(&str, &str)]) -> Vec<String> {
    let agent = XrayDaemon::recording().expect("agent stand-in");
    let function = spawn(&agent, env);
    let outcome = function
        .invoke(Invocation::json(json!({"children": 1})).trace_header(header()))
        .await
        .expect("invocation");
    assert!(
        matches!(outcome, InvocationOutcome::Response(_)),
        "{outcome:?}"
    );
    // Under managed concurrency the flush is amortized: the spans may wait for SIGTERM.
    function.shutdown().await.expect("exit");
    agent.wait_for_spans(2, WAIT).await.expect("the spans");
    let mut lines = function.stdout();
    lines.extend(function.stderr());
    lines
}

/// `cargo lambda watch` (and Lambda itself) set `AWS_LAMBDA_MAX_CONCURRENCY=1`; the user set
/// nothing. A traced function's start is its own lines only.
#[tokio::test]
async fn a_traced_function_starts_quietly() {
    for entry in ["sequential", "concurrent"] {
        let lines = lines_of_one_invocation(&[
            ("AWS_LAMBDA_MAX_CONCURRENCY", "1"),
            ("TRACED_FUNCTION_ENTRY", entry),
        ])
        .await;
        let noise: Vec<&String> = lines
            .iter()
            .filter(|line| {
                line.contains("Global tracer provider")
                    || line.contains("AWS_LAMBDA_MAX_CONCURRENCY")
                    || line.contains(r#""target":"opentelemetry"#)
            })
            .collect();
        assert!(noise.is_empty(), "{entry}: {noise:?}");
        // The handler's own line is there: the check above looked at real output.
        assert!(
            lines.iter().any(|line| line.contains("working")),
            "{entry}: {lines:?}"
        );
    }
}

/// A sequential entry point in an environment that asks for several invocations at once says so,
/// once, and names the entry point to use.
#[tokio::test]
async fn a_sequential_entry_point_under_managed_concurrency_says_which_to_use() {
    let lines = lines_of_one_invocation(&[("AWS_LAMBDA_MAX_CONCURRENCY", "4")]).await;
    let warnings: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains("AWS_LAMBDA_MAX_CONCURRENCY"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("tracekit::run_concurrent")
            && warnings[0].contains(r#""level":"WARN""#),
        "{warnings:?}"
    );
}

/// Log lines carry Lambda's JSON log fields, and under managed concurrency each line names the
/// invocation it was logged in, never another running beside it.
#[tokio::test]
async fn log_lines_name_their_own_invocation() {
    let agent = XrayDaemon::recording().expect("agent stand-in");
    let function = spawn(
        &agent,
        &[
            ("AWS_LAMBDA_MAX_CONCURRENCY", "4"),
            ("TRACED_FUNCTION_ENTRY", "concurrent"),
        ],
    );
    let traces: Vec<String> = (0..8).map(|_| xray::new_trace_id()).collect();
    let calls = traces.iter().enumerate().map(|(n, trace)| {
        let header = format!("Root={trace};Parent={};Sampled=1", xray::new_segment_id());
        let invocation = Invocation::json(json!({"children": 1, "sleep_ms": 30}))
            .request_id(format!("req-{n}"))
            .trace_header(header);
        function.invoke(invocation)
    });
    for outcome in futures_util::future::join_all(calls).await {
        let outcome = outcome.expect("invocation");
        assert!(
            matches!(outcome, InvocationOutcome::Response(_)),
            "{outcome:?}"
        );
    }
    function.shutdown().await.expect("exit");
    let lines: Vec<serde_json::Value> = function
        .stdout()
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|line: &serde_json::Value| line["message"] == "working")
        .collect();
    assert_eq!(lines.len(), traces.len(), "one line per invocation");
    for line in &lines {
        for field in ["timestamp", "level", "message", "requestId", "traceId"] {
            assert!(line[field].is_string(), "{field} in {line}");
        }
        let n: usize = line["requestId"]
            .as_str()
            .and_then(|id| id.strip_prefix("req-"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a request id of ours: {line}"));
        assert_eq!(
            line["traceId"], traces[n],
            "the line's own invocation: {line}"
        );
    }
}

/// `AWS_LAMBDA_LOG_LEVEL` (Lambda's advanced logging controls) wins over `RUST_LOG`, as in
/// lambda_runtime; `AWS_LAMBDA_LOG_FORMAT=Text` gives text lines.
#[tokio::test]
async fn lambda_log_level_and_format_are_followed() {
    let lines =
        lines_of_one_invocation(&[("AWS_LAMBDA_LOG_LEVEL", "WARN"), ("RUST_LOG", "debug")]).await;
    assert!(
        !lines.iter().any(|line| line.contains("working")),
        "an INFO line under WARN: {lines:?}"
    );
    let lines = lines_of_one_invocation(&[("AWS_LAMBDA_LOG_FORMAT", "Text")]).await;
    let working = lines
        .iter()
        .find(|line| line.contains("working"))
        .expect("the handler's line");
    assert!(
        !working.starts_with('{') && working.contains("INFO"),
        "{working}"
    );
}
