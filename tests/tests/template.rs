//! A project generated from tracekit's cargo-lambda template (`templates/tracekit`), as a new user
//! makes one: `scripts/template-check build` runs the pinned `cargo lambda new --template` and builds
//! the project's two functions (`make test` does it first). Here each runs under the Runtime API
//! harness with the project's own sample events, exporting on tracekit's default path (OTLP over
//! UDP to the agent stand-in), and its trace is checked:
//!
//! - the worker: an invocation span and a `process` span per message, linked to the producer the
//!   `AWSTraceHeader` names; the message that is not a JSON object failed alone, reported in
//!   `batchItemFailures`;
//! - the api (LocalStack's SQS): `POST /messages` sends the body to the queue under a PRODUCER span,
//!   and the message on the queue carries that span's context beside the body;
//! - both: a failure is named (the api's `errorType` when the queue fails), and an exporter the
//!   template leaves out (`xray`) is an init error naming the `Cargo.toml` line;
//! - the README's local loop: with `OTEL_TRACES_EXPORTER=console`, as its `cargo lambda watch` line
//!   sets it, the worker answers the project's sample event and prints its spans.

use integration_tests::otlp::{ReceivedSpan, SpanKind, SpanStatusCode};
use integration_tests::xray::{self, XrayDaemon};
use integration_tests::{FunctionProcess, Invocation, InvocationOutcome, stack};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

const PROJECT: &str = "hello-traces";
const WAIT: Duration = Duration::from_secs(15);

/// The generated project's binary `function` and its directory (`<target>/template/hello-traces`).
fn generated(function: &str) -> (PathBuf, PathBuf) {
    let binary = stack::function_binary(&format!("{PROJECT}-{function}"));
    let project = binary
        .parent()
        .and_then(|profile| profile.parent())
        .map(|target| target.join("template").join(PROJECT))
        .expect("the binary sits in <target>/<profile>/");
    assert!(
        project.join("Cargo.toml").is_file(),
        "no generated project at {}: run `scripts/template-check build` (`make test` does)",
        project.display()
    );
    (binary, project)
}

/// A sample event of the generated project's.
fn event(project: &std::path::Path, name: &str) -> Value {
    let path = project.join("events").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}: the template ships this event", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn header(trace_id: &str) -> String {
    format!(
        "Root={trace_id};Parent={};Sampled=1",
        xray::new_segment_id()
    )
}

/// The spans of one invocation of `binary`, on tracekit's default (agent) path, and its response.
async fn invoke_once(
    binary: &std::path::Path,
    env: &[(&str, String)],
    payload: Value,
    trace_id: &str,
    spans: usize,
) -> (Value, Vec<ReceivedSpan>) {
    let agent = XrayDaemon::recording().expect("agent stand-in");
    let mut env: Vec<(&str, String)> = env.to_vec();
    env.push(("AWS_XRAY_DAEMON_ADDRESS", agent.address().to_owned()));
    let function = FunctionProcess::spawn(binary, &env).expect("spawn");
    let outcome = function
        .invoke(Invocation::json(payload).trace_header(header(trace_id)))
        .await
        .expect("invocation");
    let response = outcome.json().expect("a JSON response");
    let received = agent
        .wait_for_spans(spans, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{spans} spans: {e}; got {:#?}", agent.spans()));
    let status = function.shutdown().await.expect("exit");
    assert!(status.success(), "exited cleanly after SIGTERM: {status:?}");
    (response, received)
}

#[tokio::test]
#[ignore = "needs `scripts/template-check build` (make test runs it)"]
async fn the_generated_worker_traces_each_message_and_reports_only_the_bad_one() {
    let (binary, project) = generated("worker");
    let batch = event(&project, "sqs-message.json");
    let trace_id = xray::new_trace_id();
    let env = [("OTEL_SERVICE_NAME", format!("{PROJECT}-worker"))];
    let (response, spans) = invoke_once(&binary, &env, batch.clone(), &trace_id, 3).await;

    assert_eq!(
        response,
        json!({ "batchItemFailures": [{ "itemIdentifier": batch["Records"][1]["messageId"] }] }),
        "the message that is not a JSON object fails alone"
    );
    let otel_trace_id = xray::otel_trace_id(&trace_id);
    assert!(
        spans.iter().all(|span| span.trace_id == otel_trace_id),
        "every span under the invocation's trace: {spans:#?}"
    );
    let invocation = spans
        .iter()
        .find(|span| span.kind == SpanKind::Server)
        .expect("the invocation span");
    assert_eq!(
        invocation.resource_str("service.name"),
        Some("hello-traces-worker")
    );
    let processed: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|span| span.name == "process queue")
        .collect();
    assert_eq!(processed.len(), 2, "a process span per message: {spans:#?}");
    let records = batch["Records"]
        .as_array()
        .expect("the sample is an SQS batch");
    for record in records {
        let id = record["messageId"].as_str();
        let span = processed
            .iter()
            .find(|span| span.attr_str("messaging.message.id") == id)
            .unwrap_or_else(|| panic!("no process span for message {id:?}: {processed:#?}"));
        assert_eq!(span.kind, SpanKind::Consumer);
        assert_eq!(
            span.parent_span_id.as_deref(),
            Some(invocation.span_id.as_str())
        );
        assert_eq!(span.links.len(), 1, "linked to its producer");
        // The producer the sample's AWSTraceHeader names.
        assert_eq!(span.links[0].trace_id, "6740a1b25759e988bd862e3fe1be46a9");
        assert_eq!(span.links[0].span_id, "53995c3f42cd8ad8");
    }
    let failed: Vec<_> = processed
        .iter()
        .filter(|span| span.status_code == SpanStatusCode::Error)
        .map(|span| span.attr_str("messaging.message.id"))
        .collect();
    assert_eq!(failed, [batch["Records"][1]["messageId"].as_str()]);
}

#[tokio::test]
#[ignore = "needs `scripts/template-check build` and LocalStack (make test runs both)"]
async fn the_generated_api_sends_to_the_queue_under_a_producer_span() {
    stack::require_localstack().await;
    let (binary, project) = generated("api");
    let queue_url = stack::create_queue("template-messages").await;
    let trace_id = xray::new_trace_id();
    let env = [
        ("QUEUE_URL", queue_url.clone()),
        ("AWS_ENDPOINT_URL_SQS", stack::endpoint(stack::Service::Sqs)),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("OTEL_SERVICE_NAME", format!("{PROJECT}-api")),
    ];
    let request = event(&project, "apigw-v2-post-message.json");
    let (response, spans) = invoke_once(&binary, &env, request, &trace_id, 2).await;

    assert_eq!(response["statusCode"], 202, "{response}");
    let otel_trace_id = xray::otel_trace_id(&trace_id);
    let invocation = spans
        .iter()
        .find(|span| span.kind == SpanKind::Server)
        .expect("the invocation span");
    assert_eq!(invocation.trace_id, otel_trace_id);
    assert_eq!(invocation.attr_str("http.request.method"), Some("POST"));
    let send = spans
        .iter()
        .find(|span| span.name == "SQS.SendMessage")
        .unwrap_or_else(|| panic!("the SendMessage span: {spans:#?}"));
    assert_eq!(send.kind, SpanKind::Producer);
    assert_eq!(send.trace_id, otel_trace_id);
    assert_eq!(
        send.parent_span_id.as_deref(),
        Some(invocation.span_id.as_str())
    );

    let sqs = stack::sqs_client().await;
    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .message_attribute_names("All")
        .wait_time_seconds(5)
        .send()
        .await
        .expect("receive");
    let messages = received.messages.unwrap_or_default();
    assert_eq!(messages.len(), 1, "the api sent one message");
    let message = &messages[0];
    assert_eq!(
        serde_json::from_str::<Value>(message.body().unwrap_or_default()).expect("JSON body"),
        json!({ "greeting": "hello" }),
        "the request's body, as it came"
    );
    let traceparent = message
        .message_attributes()
        .and_then(|attributes| attributes.get("traceparent"))
        .and_then(|value| value.string_value())
        .expect("a traceparent attribute");
    assert_eq!(
        traceparent,
        format!("00-{}-{}-01", send.trace_id, send.span_id),
        "the message carries the PRODUCER span's context"
    );
}

#[tokio::test]
#[ignore = "needs `scripts/template-check build` (make test runs it)"]
async fn the_generated_api_answers_lambda_with_its_errors_name() {
    let (binary, project) = generated("api");
    // A queue nothing answers at: the send fails at once.
    let env = [
        ("QUEUE_URL", "http://127.0.0.1:9/000000000000/nowhere"),
        ("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:9"),
        ("AWS_MAX_ATTEMPTS", "1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("OTEL_TRACES_EXPORTER", "none"),
    ];
    let function = FunctionProcess::spawn(&binary, &env).expect("spawn");
    let outcome = function
        .invoke(Invocation::json(event(
            &project,
            "apigw-v2-post-message.json",
        )))
        .await
        .expect("invocation");
    let InvocationOutcome::Error {
        error_type,
        error_message,
        ..
    } = &outcome
    else {
        panic!("the send fails the invocation: {outcome:?}");
    };
    assert_eq!(error_type, "QueueFailed", "{error_message}");
    assert!(error_message.starts_with("sending to the queue failed: "));
    assert!(function.shutdown().await.expect("exit").success());
}

#[tokio::test]
#[ignore = "needs `scripts/template-check build` (make test runs it)"]
async fn the_readmes_console_loop_prints_the_workers_spans() {
    let (binary, project) = generated("worker");
    let function =
        FunctionProcess::spawn(&binary, &[("OTEL_TRACES_EXPORTER", "console")]).expect("spawn");
    let outcome = function
        .invoke(Invocation::json(event(&project, "sqs-message.json")))
        .await
        .expect("invocation");
    let response = outcome.json().expect("a JSON response");
    assert!(
        response["batchItemFailures"].is_array(),
        "the worker answered: {response}"
    );
    assert!(function.shutdown().await.expect("exit").success());
    let stdout = function.stdout();
    let names: Vec<&str> = stdout
        .iter()
        .filter_map(|line| line.trim_start().strip_prefix("Name         : "))
        .collect();
    assert!(
        names.len() >= 2 && names.iter().any(|name| name.starts_with("process ")),
        "the console exporter printed the invocation's span and the message's: {names:?}\n{}",
        stdout.join("\n")
    );
}

#[tokio::test]
#[ignore = "needs `scripts/template-check build` (make test runs it)"]
async fn an_exporter_the_template_leaves_out_is_an_init_error_naming_the_line() {
    let (binary, _) = generated("worker");
    let function =
        FunctionProcess::spawn(&binary, &[("OTEL_TRACES_EXPORTER", "xray")]).expect("spawn");
    let status = function.wait_for_exit(WAIT).await.expect("it exits");
    assert!(!status.success(), "init fails: {status:?}");
    let stderr = function.stderr().join("\n");
    assert!(
        stderr.contains(
            "Error: OTEL_TRACES_EXPORTER=xray needs tracekit's `xray` feature, which this \
             build leaves out: add it to tracekit's features in Cargo.toml, e.g. \
             `tracekit = { version = \"0.1\", features = [\"xray\"] }`"
        ),
        "main prints the message, not the Debug form: {stderr}"
    );
}
