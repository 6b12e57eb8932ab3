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
//! - the README's local loop, its commands read from the README and run as written in the project:
//!   `tracekit-view` on its default addresses, `cargo lambda watch` (the pinned cargo-lambda) with
//!   the README's variables only, and each `cargo lambda invoke` with the project's events; each
//!   answer is checked, and each trace arrives in the viewer with nothing set; and its alternative,
//!   `OTEL_TRACES_EXPORTER=console`, prints the worker's spans.

use integration_tests::otlp::{ReceivedSpan, SpanKind, SpanStatusCode};
use integration_tests::page;
use integration_tests::xray::{self, XrayDaemon};
use integration_tests::{FunctionProcess, Invocation, InvocationOutcome, Program, stack};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
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

/// The commands of the generated README's `sh` blocks, in order, comments dropped.
fn readme_commands(project: &Path) -> Vec<String> {
    let readme = std::fs::read_to_string(project.join("README.md")).expect("the project's README");
    let mut commands = Vec::new();
    let mut in_sh = false;
    for line in readme.lines() {
        match line.trim() {
            "```sh" => in_sh = true,
            "```" => in_sh = false,
            command if in_sh => {
                let command = command.split(" #").next().unwrap_or_default().trim();
                if !command.is_empty() {
                    commands.push(command.to_owned());
                }
            }
            _ => {}
        }
    }
    commands
}

/// `cargo lambda <subcommand> ...` of the README, as cargo-lambda's arguments.
fn cargo_lambda_args<'a>(commands: &'a [String], subcommand: &str) -> Vec<Vec<&'a str>> {
    let prefix = format!("cargo lambda {subcommand}");
    commands
        .iter()
        .filter(|command| command.starts_with(&prefix))
        .map(|command| command.split_whitespace().skip(1).collect())
        .collect()
}

/// A command run in the generated project as a user's shell would, with none of the test's
/// devstack or tracing variables: only the README's own, and credentials (LocalStack takes any).
fn in_project(program: &Path, args: &[&str], project: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(program);
    command.args(args).current_dir(project);
    for (key, _) in std::env::vars_os() {
        let key_str = key.to_string_lossy();
        if ["AWS_", "OTEL_", "TRACEKIT_", "_X_AMZN_TRACE_ID"]
            .iter()
            .any(|prefix| key_str.starts_with(prefix))
        {
            command.env_remove(&key);
        }
    }
    let target = project
        .parent()
        .and_then(Path::parent)
        .expect("the project sits in <target>/template/");
    command
        .envs([
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            // The functions template-check built, not a second build in the project's own target/.
            ("CARGO_NET_OFFLINE", "true"),
        ])
        .env("CARGO_TARGET_DIR", target);
    command
}

#[tokio::test]
#[ignore = "needs `scripts/template-check build`, tracekit-view, the pinned cargo-lambda and LocalStack (make test)"]
async fn the_readmes_local_loop_shows_each_invocations_trace_in_tracekit_view() {
    stack::require_localstack().await;
    let (_, project) = generated("worker");
    let commands = readme_commands(&project);
    // The README's queue, on the local stack.
    let watch = cargo_lambda_args(&commands, "watch");
    assert_eq!(watch.len(), 1, "one `cargo lambda watch`: {commands:#?}");
    let queue_url = watch[0]
        .iter()
        .find_map(|arg| arg.strip_prefix("QUEUE_URL="))
        .expect("the watch line sets QUEUE_URL");
    let sqs_endpoint = stack::endpoint(stack::Service::Sqs);
    assert!(
        queue_url.starts_with(sqs_endpoint.trim_end_matches('/')),
        "the README's queue {queue_url} is not on the local stack's SQS at {sqs_endpoint} \
         (scripts/devstack: TRACEKIT_LOCALSTACK_PORT must be unset)"
    );
    let queue_name = queue_url.rsplit('/').next().unwrap_or_default();
    let sqs = stack::sqs_client().await;
    let created = sqs
        .create_queue()
        .queue_name(queue_name)
        .send()
        .await
        .expect("create the README's queue");
    let created_url = created.queue_url().expect("the queue's URL").to_owned();

    // Terminal 1: the viewer, as the README runs it (on its default addresses).
    let viewer_line = commands
        .iter()
        .find(|command| command.starts_with("tracekit-view"))
        .expect("the README runs tracekit-view");
    let viewer_args: Vec<&str> = viewer_line.split_whitespace().skip(1).collect();
    let viewer = Program::spawn(&stack::function_binary("tracekit-view"), &viewer_args)
        .expect("tracekit-view");
    let page_line = viewer
        .wait_for_stdout(|line| line.starts_with("tracekit-view: page"), WAIT)
        .await
        .expect("the viewer starts (are 127.0.0.1:2000, :4318 and :4319 free?)");
    let page_url = page_line
        .split_whitespace()
        .last()
        .expect("the page's address")
        .to_owned();

    // Terminal 2: the emulator.
    let cargo_lambda = stack::cargo_lambda();
    let emulator = Program::start(in_project(&cargo_lambda, &watch[0], &project)).expect("watch");
    // A user invokes once the emulator says it listens.
    let listening = |line: &str| line.contains("starting Runtime server");
    tokio::select! {
        Ok(_) = emulator.wait_for_stdout(listening, WAIT) => {}
        Ok(_) = emulator.wait_for_stderr(listening, WAIT) => {}
        else => panic!("cargo lambda watch did not start: {:#?}", emulator.stderr()),
    }
    // Terminal 3: each invocation, answered.
    let mut answers = Vec::new();
    for invoke in cargo_lambda_args(&commands, "invoke") {
        let run = Program::start(in_project(&cargo_lambda, &invoke, &project)).expect("invoke");
        // The first starts the function (already built): well within a minute.
        let status = run
            .wait_for_exit(Duration::from_secs(90))
            .await
            .unwrap_or_else(|e| panic!("{invoke:?}: {e}\nemulator: {:#?}", emulator.stderr()));
        assert!(
            status.success(),
            "{invoke:?}: {status:?}\n{:#?}\n{:#?}",
            run.stdout(),
            run.stderr()
        );
        let answer: Value = serde_json::from_str(&run.stdout().join("\n")).unwrap_or_else(|e| {
            panic!(
                "{invoke:?} printed no JSON answer ({e}): {:?}",
                run.stdout()
            )
        });
        answers.push(answer);
    }
    assert_eq!(answers.len(), 2, "the worker and the api: {commands:#?}");
    assert_eq!(
        answers[0]["batchItemFailures"][0]["itemIdentifier"],
        "1d2f0a51-0000-4000-8000-000000000002",
        "the worker reports the message that is not an object"
    );
    assert_eq!(answers[1]["statusCode"], 202, "the api sent to the queue");
    let body: Value = answers[1]["body"]
        .as_str()
        .and_then(|body| serde_json::from_str(body).ok())
        .unwrap_or_default();
    let sent_id = body["message_id"]
        .as_str()
        .expect("the api names the message");
    let received = sqs
        .receive_message()
        .queue_url(&created_url)
        .max_number_of_messages(10)
        .wait_time_seconds(5)
        .send()
        .await
        .expect("receive");
    assert!(
        received
            .messages()
            .iter()
            .any(|message| message.message_id() == Some(sent_id)),
        "message {sent_id} reached the queue the README names ({queue_url}): {received:?}"
    );

    // Each trace arrived in the viewer with no variable set: one line each, and on the page.
    let worker = viewer
        .wait_for_stdout(|line| line.contains("(hello-traces-worker)"), WAIT)
        .await
        .expect("the worker's trace");
    assert!(
        worker.contains(" 3 spans ") && worker.contains("1 error ("),
        "the invocation and a process span per message, the bad one failed: {worker}"
    );
    let api = viewer
        .wait_for_stdout(|line| line.contains("(hello-traces-api)"), WAIT)
        .await
        .expect("the api's trace");
    assert!(api.contains("no errors"), "{api}");
    let (spans, edges) = page::served_page(&page_url).await.expect("the page");
    let names: Vec<&str> = spans.iter().map(|span| span.name.as_str()).collect();
    assert_eq!(
        names
            .iter()
            .filter(|name| **name == "process queue")
            .count(),
        2,
        "{names:?}"
    );
    assert!(names.contains(&"SQS.SendMessage"), "{names:?}");
    for (from, to) in [("hello-traces-api", "SQS"), ("SQS", "hello-traces-worker")] {
        assert!(
            edges.contains(&(from.to_owned(), to.to_owned())),
            "the service map's {from} → {to}: {edges:?}"
        );
    }
    assert!(
        !emulator
            .stdout()
            .iter()
            .chain(&emulator.stderr())
            .any(|line| line.contains("nothing is listening")),
        "no warning about a missing agent: {:#?}",
        emulator.stderr()
    );
    assert!(
        viewer.stderr().is_empty(),
        "nothing refused: {:#?}",
        viewer.stderr()
    );
}
