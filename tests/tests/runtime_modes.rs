//! tracekit's entry points as a function runs them: what a function prints when it starts, and what
//! each entry point keeps (span, error, flush, SIGTERM).

use integration_tests::otlp::{SpanKind, SpanStatusCode};
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

/// Starts the function, serves it one invocation and stops it: every line it printed.
async fn lines_of_one_invocation(env: &[(&str, &str)]) -> Vec<String> {
    let agent = XrayDaemon::recording().expect("agent stand-in");
    let function = spawn(&agent, env);
    let outcome = function
        .invoke(Invocation::json(json!({"children": 1})).trace_header(xray::new_trace_header()))
        .await
        .expect("invocation");
    assert!(
        matches!(outcome, InvocationOutcome::Response(_)),
        "{outcome:?}"
    );
    // Under managed concurrency the flush is amortized: the spans may wait for SIGTERM.
    let status = function.shutdown().await.expect("exit");
    assert!(status.success(), "exited cleanly after SIGTERM: {status:?}");
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
    // The warning is what is tested here; the SIGTERM flush of every entry point is tested below.
    let lines = lines_of_one_invocation(&[
        ("AWS_LAMBDA_MAX_CONCURRENCY", "4"),
        ("TRACEKIT_FLUSH", "end-of-invocation"),
    ])
    .await;
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

/// An API Gateway HTTP API event for `GET {path}`.
fn http_event(path: &str) -> serde_json::Value {
    let text =
        std::fs::read_to_string(stack::workspace_root().join("events/apigw-v2-get-order.json"))
            .expect("the sample event");
    let mut event: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["path"] = json!(path);
    event["routeKey"] = json!("GET /{proxy+}");
    event
}

/// A streamed response as the runtime posted it: the metadata prelude, eight NUL bytes, the body.
fn streamed(body: &[u8]) -> (serde_json::Value, String) {
    let split = body
        .windows(8)
        .position(|window| window == [0u8; 8])
        .unwrap_or_else(|| {
            panic!(
                "no prelude delimiter in {:?}",
                String::from_utf8_lossy(body)
            )
        });
    let prelude = serde_json::from_slice(&body[..split]).expect("a JSON prelude");
    let rest = String::from_utf8_lossy(&body[split + 8..]).into_owned();
    (prelude, rest)
}

/// Every `lambda_http` entry point through the harness: the invocation span with the response's
/// status (a 5xx and a handler error as errors), the child span under it, the response Lambda gets,
/// the flush policy (amortized here: nothing leaves before SIGTERM) and the SIGTERM flush.
#[tokio::test]
async fn every_http_entry_point_keeps_span_status_error_flush_and_sigterm() {
    let entries = [
        ("run_http", false, false),
        ("run_http_concurrent", true, false),
        ("run_http_streaming", false, true),
        ("run_http_streaming_concurrent", true, true),
    ];
    for (entry, concurrent, streaming) in entries {
        let agent = XrayDaemon::recording().expect("agent stand-in");
        let env = [
            ("AWS_XRAY_DAEMON_ADDRESS", agent.address()),
            ("TRACED_FUNCTION_ENTRY", entry),
            (
                "AWS_LAMBDA_MAX_CONCURRENCY",
                if concurrent { "4" } else { "1" },
            ),
            ("TRACEKIT_FLUSH", "amortized"),
            ("TRACEKIT_FLUSH_MAX_SPANS", "1000"),
            ("TRACEKIT_FLUSH_MAX_AGE_MS", "600000"),
        ];
        let function =
            FunctionProcess::spawn(&stack::function_binary("http-function"), &env).expect("spawn");
        // (path, status recorded, span is an error, error.type)
        let plan = [
            ("/status/200", Some(200), false, None),
            ("/status/503", Some(503), true, Some("503")),
            ("/fail", None, true, Some("Refused")),
        ];
        let traces: Vec<String> = plan.iter().map(|_| xray::new_trace_id()).collect();
        let calls = plan.iter().zip(&traces).map(|((path, ..), trace)| {
            let header = format!("Root={trace};Parent={};Sampled=1", xray::new_segment_id());
            function.invoke(Invocation::json(http_event(path)).trace_header(header))
        });
        let outcomes = futures_util::future::join_all(calls).await;
        for ((path, status, ..), outcome) in plan.iter().zip(outcomes) {
            let outcome = outcome.expect("invocation");
            match (status, &outcome) {
                (Some(code), InvocationOutcome::Response(body)) if streaming => {
                    let (prelude, body) = streamed(body);
                    assert_eq!(prelude["statusCode"], *code, "{entry} {path}");
                    assert_eq!(prelude["cookies"], json!(["session=1"]), "{entry} {path}");
                    assert_eq!(body, format!("status {code}"), "{entry} {path}");
                }
                (Some(code), InvocationOutcome::Response(_)) => {
                    let response = outcome.json().expect("JSON");
                    assert_eq!(response["statusCode"], *code, "{entry} {path}");
                    assert_eq!(response["body"], format!("status {code}"), "{entry} {path}");
                }
                (None, InvocationOutcome::Error { error_type, .. }) => {
                    assert_eq!(error_type, "Refused", "{entry} {path}");
                }
                (_, other) => panic!("{entry} {path}: {other:?}"),
            }
        }
        // Amortized with thresholds no test reaches: every span still waits in the buffer.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(agent.spans().is_empty(), "{entry}: nothing before SIGTERM");
        let status = function.shutdown().await.expect("exit");
        assert!(status.success(), "{entry}: {status:?}");
        let spans = agent
            .wait_for_spans(plan.len() * 2, WAIT)
            .await
            .expect("every span at SIGTERM");
        assert_eq!(spans.len(), plan.len() * 2, "{entry}: each span once");
        for ((path, status, is_error, error_type), trace) in plan.iter().zip(&traces) {
            let trace = xray::otel_trace_id(trace);
            let server = spans
                .iter()
                .find(|s| s.trace_id == trace && s.kind == SpanKind::Server)
                .unwrap_or_else(|| panic!("{entry} {path}: the invocation span"));
            assert_eq!(
                server.attr_i64("http.response.status_code"),
                status.map(i64::from),
                "{entry} {path}"
            );
            assert_eq!(server.attr_str("url.path"), Some(*path), "{entry} {path}");
            assert_eq!(
                server.status_code == SpanStatusCode::Error,
                *is_error,
                "{entry} {path}"
            );
            assert_eq!(server.attr_str("error.type"), *error_type, "{entry} {path}");
            if streaming && status.is_some() {
                // The body takes three 20 ms chunks: the span lasts until the last was sent.
                let lasted = server
                    .end_unix_nanos
                    .saturating_sub(server.start_unix_nanos);
                assert!(
                    lasted >= 60_000_000,
                    "{entry} {path}: the span ends after the stream ({lasted} ns)"
                );
            }
            let render = spans
                .iter()
                .find(|s| s.trace_id == trace && s.name == "render")
                .unwrap_or_else(|| panic!("{entry} {path}: the child span"));
            assert_eq!(
                render.parent_span_id.as_deref(),
                Some(server.span_id.as_str()),
                "{entry} {path}"
            );
        }
    }
}

/// The same for lambda_runtime's entry points (`tracekit::run`, `tracekit::run_concurrent`) and for
/// a runtime `main` composes with a layer of its own (`tracekit::runtime`, `runtime_concurrent`).
#[tokio::test]
async fn every_lambda_runtime_entry_point_keeps_span_error_flush_and_sigterm() {
    let entries = [
        ("sequential", "1"),
        ("concurrent", "4"),
        ("runtime", "1"),
        ("runtime_concurrent", "4"),
    ];
    for (entry, concurrency) in entries {
        let agent = XrayDaemon::recording().expect("agent stand-in");
        let function = spawn(
            &agent,
            &[
                ("TRACED_FUNCTION_ENTRY", entry),
                ("AWS_LAMBDA_MAX_CONCURRENCY", concurrency),
                ("TRACEKIT_FLUSH", "amortized"),
                ("TRACEKIT_FLUSH_MAX_SPANS", "1000"),
                ("TRACEKIT_FLUSH_MAX_AGE_MS", "600000"),
            ],
        );
        let (ok, failing) = (xray::new_trace_id(), xray::new_trace_id());
        let invoke = |trace: &str, payload: serde_json::Value| {
            let header = format!("Root={trace};Parent={};Sampled=1", xray::new_segment_id());
            function.invoke(Invocation::json(payload).trace_header(header))
        };
        let (answered, refused) = tokio::join!(
            invoke(&ok, json!({"children": 1})),
            invoke(&failing, json!({"fail": "no stock"}))
        );
        assert!(
            matches!(
                answered.expect("invocation"),
                InvocationOutcome::Response(_)
            ),
            "{entry}"
        );
        assert!(
            matches!(
                refused.expect("invocation"),
                InvocationOutcome::Error { .. }
            ),
            "{entry}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(agent.spans().is_empty(), "{entry}: nothing before SIGTERM");
        let status = function.shutdown().await.expect("exit");
        assert!(status.success(), "{entry}: {status:?}");
        let spans = agent
            .wait_for_spans(3, WAIT)
            .await
            .expect("every span at SIGTERM");
        assert_eq!(spans.len(), 3, "{entry}");
        let server_of = |trace: &str| {
            let trace = xray::otel_trace_id(trace);
            spans
                .iter()
                .find(|s| s.trace_id == trace && s.kind == SpanKind::Server)
                .unwrap_or_else(|| panic!("{entry}: the invocation span"))
                .clone()
        };
        let server = server_of(&ok);
        assert_ne!(server.status_code, SpanStatusCode::Error, "{entry}");
        assert!(
            spans.iter().any(|s| s.name == "step"
                && s.parent_span_id.as_deref() == Some(server.span_id.as_str())),
            "{entry}: the child under its invocation"
        );
        let failed = server_of(&failing);
        assert_eq!(failed.status_code, SpanStatusCode::Error, "{entry}");
        assert_eq!(failed.attr_str("error.type"), Some("OrderError"), "{entry}");
        if entry.starts_with("runtime") {
            let seen = function
                .stdout()
                .iter()
                .filter(|line| line.contains("user layer: "))
                .count();
            assert_eq!(
                seen, 2,
                "{entry}: the function's own layer ran for each invocation"
            );
        }
    }
}
