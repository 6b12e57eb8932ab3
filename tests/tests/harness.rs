//! Tests of the harness itself: the Runtime API driving a plain `lambda_runtime` function
//! (`echo-function`), the OTLP receiver (plain, and as X-Ray's HTTPS, SigV4 endpoint), the
//! container-credentials server, and the X-Ray daemon stand-in (with moto).

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use integration_tests::otlp::{AttrValue, Mode, SpanKind, SpanStatusCode};
use integration_tests::sigv4::sign_request;
use integration_tests::stack::{self, http_request, https_request};
use integration_tests::xray::{self, XrayDaemon};
use integration_tests::{
    Auth, CredentialStore, CredentialsServer, Error, FunctionProcess, Invocation,
    InvocationOutcome, OtlpReceiver, TestCa, TestCredentials, TlsOptions,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde_json::{Value, json};

const TRACE_HEADER: &str =
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

/// The untraced echo function (package `test-functions`).
fn echo() -> std::path::PathBuf {
    stack::function_binary("echo-function")
}

fn spawn_echo() -> FunctionProcess {
    FunctionProcess::spawn(
        &stack::function_binary("echo-function"),
        &[("RUST_LOG", "info")],
    )
    .expect("spawning echo-function")
}

#[tokio::test]
async fn echo_returns_the_payload() {
    let function = spawn_echo();
    let payload = json!({"hello": "world", "n": [1, 2, 3]});

    let outcome = function
        .invoke(Invocation::json(payload.clone()))
        .await
        .expect("invoke");

    assert_eq!(outcome.json().expect("a JSON response"), payload);
    assert!(function.protocol_violations().is_empty());
}

#[tokio::test]
async fn raw_payload_that_is_not_json_is_reported_by_the_runtime_as_an_error() {
    let function = spawn_echo();

    let outcome = function
        .invoke(Invocation::raw("not json"))
        .await
        .expect("invoke");

    let InvocationOutcome::Error { error_type, .. } = outcome else {
        panic!("expected an error outcome, got {outcome:?}");
    };
    assert!(error_type.ends_with("DeserializeError"), "{error_type}");
}

#[tokio::test]
async fn handler_error_arrives_with_its_error_type_and_message() {
    let function = spawn_echo();

    let outcome = function
        .invoke(Invocation::json(json!({"fail": "the order was rejected"})))
        .await
        .expect("invoke");

    let InvocationOutcome::Error {
        error_type,
        error_message,
        body,
    } = &outcome
    else {
        panic!("expected an error outcome, got {outcome:?}");
    };
    assert_eq!(error_type, "EchoError");
    assert_eq!(error_message, "the order was rejected");
    let body: Value = serde_json::from_slice(body).expect("the error body is JSON");
    assert_eq!(body["errorType"], "EchoError");
    assert!(
        outcome.json().is_err(),
        "an error outcome has no JSON response"
    );
}

#[tokio::test]
async fn panic_is_reported_as_an_error_and_the_process_keeps_serving() {
    let function = spawn_echo();

    let outcome = function
        .invoke(Invocation::json(json!({"panic": true})))
        .await
        .expect("invoke");
    let InvocationOutcome::Error { error_message, .. } = outcome else {
        panic!("expected an error outcome, got {outcome:?}");
    };
    assert!(error_message.contains("asked to panic"), "{error_message}");

    let after = function
        .invoke(Invocation::json(json!({"still": "alive"})))
        .await
        .expect("invoke");
    assert_eq!(
        after.json().expect("a JSON response"),
        json!({"still": "alive"})
    );
    assert_eq!(function.exit_status(), None);
}

#[tokio::test]
async fn trace_header_deadline_arn_and_request_id_reach_the_function() {
    let function = spawn_echo();
    let deadline = SystemTime::now() + Duration::from_secs(42);
    let deadline_ms = deadline
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis() as u64;
    let arn = format!("{}:live", function.arn());

    let outcome = function
        .invoke(
            Invocation::json(json!({"context": true}))
                .request_id("8476a536-e9f4-11e8-9739-2dfe598c3fcd")
                .trace_header(TRACE_HEADER)
                .deadline(deadline)
                .invoked_arn(&arn),
        )
        .await
        .expect("invoke");

    let context = outcome.json().expect("a JSON response");
    assert_eq!(
        context["request_id"],
        "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
    );
    assert_eq!(context["xray_trace_id"], TRACE_HEADER);
    assert_eq!(context["deadline"], deadline_ms);
    assert_eq!(context["invoked_function_arn"], arn.as_str());
    assert_eq!(context["function_name"], "echo-function");
}

#[tokio::test]
async fn defaults_send_no_trace_header_a_future_deadline_and_the_unqualified_arn() {
    let function = spawn_echo();
    let before_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis() as u64;

    let outcome = function
        .invoke(Invocation::json(json!({"context": true})))
        .await
        .expect("invoke");

    let context = outcome.json().expect("a JSON response");
    assert_eq!(context["xray_trace_id"], Value::Null);
    assert_eq!(
        context["invoked_function_arn"],
        "arn:aws:lambda:us-east-1:123456789012:function:echo-function"
    );
    let deadline = context["deadline"].as_u64().expect("a numeric deadline");
    assert!(
        (before_ms + 29_000..=before_ms + 31_000).contains(&deadline),
        "deadline {deadline}"
    );
    let request_id = context["request_id"].as_str().expect("a request id");
    assert_eq!(request_id.len(), 36, "a UUID: {request_id}");
}

#[tokio::test]
async fn environment_overrides_win_and_function_name_follows_them() {
    let function = FunctionProcess::spawn(&echo(), &[("AWS_LAMBDA_FUNCTION_NAME", "orders-api")])
        .expect("spawning echo-function");

    let context = function
        .invoke(Invocation::json(json!({"context": true})))
        .await
        .expect("invoke")
        .json()
        .expect("a JSON response");

    assert_eq!(function.name(), "orders-api");
    assert_eq!(context["function_name"], "orders-api");
    assert_eq!(
        context["invoked_function_arn"],
        "arn:aws:lambda:us-east-1:123456789012:function:orders-api"
    );
}

#[tokio::test]
async fn invocations_run_in_sequence_in_one_process_with_timing_marks() {
    let function = spawn_echo();
    let init = function
        .init_duration()
        .await
        .expect("the first /next poll");
    assert!(init < Duration::from_secs(10), "init took {init:?}");

    for n in 0..5 {
        let sent = Instant::now();
        let timed = function
            .invoke_timed(Invocation::json(json!({"n": n})).request_id(format!("request-{n}")))
            .await
            .expect("invoke");
        let waited = sent.elapsed();

        assert_eq!(
            timed.outcome.json().expect("a JSON response"),
            json!({"n": n})
        );
        assert_eq!(timed.request_id, format!("request-{n}"));
        assert!(timed.served_at <= timed.answered_at);
        assert!(
            timed.latency() <= waited,
            "latency {:?} > {waited:?}",
            timed.latency()
        );
        let turnaround = timed.turnaround().await.expect("the next /next poll");
        assert!(
            turnaround < Duration::from_secs(5),
            "turnaround {turnaround:?}"
        );
    }
    assert_eq!(
        function.exit_status(),
        None,
        "one process served every invocation"
    );
    let logged = function
        .wait_for_stdout(|line| line.contains("request-4"), Duration::from_secs(5))
        .await
        .expect("the handler's log line");
    assert!(logged.contains("echo"), "{logged}");
    assert!(function.protocol_violations().is_empty());
}

#[tokio::test]
async fn cpu_time_counts_what_the_function_ran_and_not_its_waiting() {
    let function = spawn_echo();
    function
        .init_duration()
        .await
        .expect("the first /next poll");
    let at_init = function.cpu_time().expect("CPU time");
    assert!(at_init > Duration::ZERO, "init ran on some CPU");
    // Waiting on /next costs no CPU...
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = function.cpu_time().expect("CPU time") - at_init;
    assert!(idle < Duration::from_millis(20), "{idle:?} while waiting");
    // ...invocations do.
    for n in 0..50 {
        function
            .invoke(Invocation::json(json!({"n": n})))
            .await
            .expect("invoke");
    }
    assert!(function.cpu_time().expect("CPU time") > at_init + idle);
}

#[tokio::test]
async fn a_launcher_runs_the_function_in_its_own_process() {
    // `env` sets one more variable and then becomes the function, as `valgrind` does.
    let launcher = [OsStr::new("env"), OsStr::new("ECHO_LAUNCHED=1")];
    let function = FunctionProcess::spawn_under(&launcher, &echo(), &[("RUST_LOG", "info")])
        .expect("spawning echo-function under env");
    let payload = json!({"launched": true});
    let outcome = function
        .invoke(Invocation::json(payload.clone()))
        .await
        .expect("invoke");
    assert_eq!(outcome.json().expect("a JSON answer"), payload);
    // The process the harness watches (its CPU time, its memory) is the function itself, not a
    // launcher waiting on it.
    let exe = std::fs::read_link(format!("/proc/{}/exe", function.pid())).expect("/proc/PID/exe");
    assert_eq!(
        exe,
        std::fs::canonicalize(echo()).expect("echo-function's path")
    );
    let status = function.shutdown().await.expect("shutdown");
    assert_eq!(status.signal(), Some(15), "{status:?}");
}

#[tokio::test]
async fn shutdown_sends_sigterm_and_returns_the_exit_status() {
    let function = spawn_echo();
    function
        .init_duration()
        .await
        .expect("the first /next poll");

    let status = function.shutdown().await.expect("shutdown");

    // lambda_runtime installs no SIGTERM handler, so the default action ends the process.
    assert_eq!(status.signal(), Some(15), "{status:?}");
    assert_eq!(function.exit_status(), Some(status));
    assert_eq!(
        function
            .shutdown()
            .await
            .expect("a second shutdown")
            .signal(),
        Some(15)
    );
}

#[tokio::test]
async fn function_that_dies_at_start_up_is_reported_with_exit_status_and_stderr() {
    let function = FunctionProcess::spawn(&echo(), &[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "lots")])
        .expect("spawning echo-function");

    let error = function
        .invoke(Invocation::json(json!({})))
        .await
        .expect_err("the function panics at start-up");

    let message = error.to_string();
    assert!(matches!(error, Error::Function(_)), "{message}");
    assert!(
        message.contains("exited before it could poll /next"),
        "{message}"
    );
    assert!(message.contains("exit status: 101"), "{message}");
    assert!(
        message.contains("AWS_LAMBDA_FUNCTION_MEMORY_SIZE env var is not <i32>"),
        "{message}"
    );
}

#[tokio::test]
async fn init_error_fails_the_invocation_with_its_message() {
    let function = spawn_echo();
    let url = format!(
        "http://{}/2018-06-01/runtime/init/error",
        function.runtime_api_address()
    );
    let init_error = http::Request::post(url)
        .header("lambda-runtime-function-error-type", "Runtime.InitError")
        .body(Bytes::from(
            r#"{"errorType":"ConfigError","errorMessage":"OTEL_TRACES_EXPORTER=carrier-pigeon"}"#,
        ))
        .expect("a request");
    let response = http_request(init_error).await.expect("POST /init/error");
    assert_eq!(response.status(), http::StatusCode::ACCEPTED);

    let error = function
        .invoke(Invocation::json(json!({})))
        .await
        .expect_err("an init error");

    let message = error.to_string();
    assert!(message.contains("reported an init error"), "{message}");
    assert!(
        message.contains("ConfigError: OTEL_TRACES_EXPORTER=carrier-pigeon"),
        "{message}"
    );
}

#[tokio::test]
async fn requests_lambda_would_refuse_are_protocol_violations() {
    let function = spawn_echo();
    let base = format!("http://{}", function.runtime_api_address());
    let requests = [
        (
            http::Method::POST,
            "/2020-01-01/extension/register",
            http::StatusCode::BAD_REQUEST,
        ),
        (
            http::Method::POST,
            "/2018-06-01/runtime/invocation/nobody/response",
            http::StatusCode::BAD_REQUEST,
        ),
        (
            http::Method::GET,
            "/2018-06-01/runtime/invocation/some-id/error",
            http::StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];

    for (method, path, expected) in &requests {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{base}{path}"))
            .body(Bytes::new())
            .expect("a request");
        let response = http_request(request).await.expect("a response");
        assert_eq!(response.status(), *expected, "{method} {path}");
    }

    let violations = function.protocol_violations();
    assert_eq!(violations.len(), requests.len(), "{violations:?}");
    assert!(
        violations[0].starts_with("POST /2020-01-01/extension/register"),
        "{violations:?}"
    );
    assert!(
        violations[1].contains("invocation nobody is not in flight"),
        "{violations:?}"
    );
}

#[tokio::test]
async fn header_value_http_cannot_carry_is_refused_before_sending() {
    let function = spawn_echo();

    let error = function
        .invoke(Invocation::json(json!({})).trace_header("Root=1-abc\nParent=1"))
        .await
        .expect_err("a newline cannot be in a header");

    assert!(matches!(error, Error::Invalid(_)), "{error}");
    let after = function
        .invoke(Invocation::json(json!({"ok": 1})))
        .await
        .expect("invoke");
    assert_eq!(after.json().expect("a JSON response"), json!({"ok": 1}));
}

fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..KeyValue::default()
    }
}

fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

/// A server span and a client child, in the shape an OTel SDK exports them.
fn export_request() -> ExportTraceServiceRequest {
    let trace_id = hex_bytes("5759e988bd862e3fe1be46a994272793");
    let server = Span {
        trace_id: trace_id.clone(),
        span_id: hex_bytes("53995c3f42cd8ad8"),
        name: "echo-function".to_owned(),
        kind: SpanKind::Server as i32,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_250_000_000,
        attributes: vec![
            string_attribute("faas.trigger", "other"),
            attribute("faas.coldstart", any_value::Value::BoolValue(true)),
        ],
        events: vec![Event {
            name: "exception".to_owned(),
            attributes: vec![string_attribute("exception.type", "EchoError")],
            ..Event::default()
        }],
        status: Some(Status {
            message: "the order was rejected".to_owned(),
            code: SpanStatusCode::Error as i32,
        }),
        ..Span::default()
    };
    let client = Span {
        trace_id,
        span_id: hex_bytes("0123456789abcdef"),
        parent_span_id: hex_bytes("53995c3f42cd8ad8"),
        name: "DynamoDB.PutItem".to_owned(),
        kind: SpanKind::Client as i32,
        attributes: vec![
            attribute("http.response.status_code", any_value::Value::IntValue(200)),
            attribute(
                "aws.dynamodb.table_names",
                any_value::Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(any_value::Value::StringValue("orders".to_owned())),
                    }],
                }),
            ),
        ],
        links: vec![Link {
            trace_id: hex_bytes("00000000000000000000000000000001"),
            span_id: hex_bytes("0000000000000002"),
            ..Link::default()
        }],
        ..Span::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string_attribute("cloud.platform", "aws_lambda")],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "tracekit".to_owned(),
                    ..InstrumentationScope::default()
                }),
                spans: vec![server, client],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

async fn post_traces(
    otlp: &OtlpReceiver,
    content_type: &str,
    body: Vec<u8>,
) -> http::Response<Bytes> {
    let request = http::Request::post(format!("{}/v1/traces", otlp.endpoint()))
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Bytes::from(body))
        .expect("a request");
    http_request(request).await.expect("POST /v1/traces")
}

#[tokio::test]
async fn otlp_receiver_decodes_protobuf_exports() {
    let otlp = OtlpReceiver::start().expect("starting the OTLP receiver");

    let response = post_traces(
        &otlp,
        "application/x-protobuf",
        export_request().encode_to_vec(),
    )
    .await;

    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(
        response.headers()[http::header::CONTENT_TYPE],
        "application/x-protobuf"
    );
    assert_eq!(
        ExportTraceServiceResponse::decode(response.into_body())
            .expect("an ExportTraceServiceResponse"),
        ExportTraceServiceResponse::default()
    );
    let spans = otlp
        .wait_for_spans(2, Duration::from_secs(1))
        .await
        .expect("two spans");
    let (server, client) = (&spans[0], &spans[1]);
    assert_eq!(server.trace_id, "5759e988bd862e3fe1be46a994272793");
    assert_eq!(server.span_id, "53995c3f42cd8ad8");
    assert_eq!(server.parent_span_id, None);
    assert_eq!(server.kind, SpanKind::Server);
    assert_eq!(server.attr_str("faas.trigger"), Some("other"));
    assert_eq!(server.attr_bool("faas.coldstart"), Some(true));
    assert_eq!(server.status_code, SpanStatusCode::Error);
    assert_eq!(server.status_message, "the order was rejected");
    let exception = server.event("exception").expect("an exception event");
    assert_eq!(
        exception.attributes["exception.type"],
        AttrValue::String("EchoError".to_owned())
    );
    assert_eq!(server.duration(), Duration::from_millis(250));
    assert_eq!(server.resource_str("cloud.platform"), Some("aws_lambda"));
    assert_eq!(server.scope_name, "tracekit");

    assert_eq!(client.parent_span_id.as_deref(), Some("53995c3f42cd8ad8"));
    assert_eq!(client.kind, SpanKind::Client);
    assert_eq!(client.attr_i64("http.response.status_code"), Some(200));
    let tables = client
        .attr("aws.dynamodb.table_names")
        .and_then(AttrValue::as_str_array);
    assert_eq!(tables, Some(vec!["orders"]));
    assert_eq!(client.links[0].trace_id, "00000000000000000000000000000001");
    assert_eq!(client.links[0].span_id, "0000000000000002");
    assert_eq!(otlp.request_count(), 1);
}

#[tokio::test]
async fn otlp_receiver_decodes_the_json_mapping() {
    let otlp = OtlpReceiver::start().expect("starting the OTLP receiver");
    // The OTLP JSON mapping: hex ids, enum numbers, 64-bit integers as strings.
    let body = json!({"resourceSpans": [{"scopeSpans": [{"scope": {"name": "tracekit"}, "spans": [{
        "traceId": "5759e988bd862e3fe1be46a994272793",
        "spanId": "53995c3f42cd8ad8",
        "name": "send orders",
        "kind": 4,
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000001000000",
        "attributes": [{"key": "messaging.batch.message_count", "value": {"intValue": "3"}}]
    }]}]}]});

    let response = post_traces(&otlp, "application/json", body.to_string().into_bytes()).await;

    assert_eq!(response.status(), http::StatusCode::OK);
    let spans = otlp
        .wait_for_spans(1, Duration::from_secs(1))
        .await
        .expect("one span");
    assert_eq!(spans[0].kind, SpanKind::Producer);
    assert_eq!(spans[0].trace_id, "5759e988bd862e3fe1be46a994272793");
    assert_eq!(spans[0].attr_i64("messaging.batch.message_count"), Some(3));
    assert_eq!(spans[0].duration(), Duration::from_millis(1));
}

#[tokio::test]
async fn otlp_receiver_refuses_what_it_cannot_decode_and_fails_on_request() {
    let otlp = OtlpReceiver::start().expect("starting the OTLP receiver");

    let text = post_traces(&otlp, "text/plain", b"hello".to_vec()).await;
    let garbage = post_traces(&otlp, "application/x-protobuf", vec![0xff; 7]).await;
    otlp.set_mode(Mode::Fail(http::StatusCode::SERVICE_UNAVAILABLE));
    let failed = post_traces(
        &otlp,
        "application/x-protobuf",
        export_request().encode_to_vec(),
    )
    .await;

    assert_eq!(text.status(), http::StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(garbage.status(), http::StatusCode::BAD_REQUEST);
    assert_eq!(failed.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    assert!(otlp.spans().is_empty());
    assert_eq!(otlp.request_count(), 3);
    assert_eq!(otlp.rejections().len(), 2, "{:?}", otlp.rejections());

    otlp.set_mode(Mode::Accept);
    post_traces(
        &otlp,
        "application/x-protobuf",
        export_request().encode_to_vec(),
    )
    .await;
    assert_eq!(otlp.spans().len(), 2);
    otlp.clear();
    assert!(otlp.spans().is_empty());
}

#[tokio::test]
async fn otlp_receiver_in_delay_mode_answers_late_and_keeps_the_spans() {
    let otlp = OtlpReceiver::start().expect("starting the OTLP receiver");
    otlp.set_mode(Mode::Delay(Duration::from_millis(300)));

    let sent = Instant::now();
    let response = post_traces(
        &otlp,
        "application/x-protobuf",
        export_request().encode_to_vec(),
    )
    .await;

    assert!(
        sent.elapsed() >= Duration::from_millis(300),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(otlp.spans().len(), 2);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

/// One span, the smallest useful export.
fn one_span_export() -> Vec<u8> {
    let mut export = export_request();
    export.resource_spans[0].scope_spans[0].spans.truncate(1);
    export.encode_to_vec()
}

fn traces_request(url: &str, content_type: &str, body: impl Into<Bytes>) -> http::Request<Bytes> {
    http::Request::post(url)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(body.into())
        .expect("a request")
}

#[tokio::test]
async fn tls_receiver_stores_spans_from_a_client_that_trusts_its_ca() {
    let ca = Arc::new(TestCa::new().expect("a CA"));
    let otlp = OtlpReceiver::start_tls(TlsOptions::new(&ca)).expect("starting the HTTPS receiver");
    assert!(
        otlp.endpoint().starts_with("https://127.0.0.1:"),
        "{}",
        otlp.endpoint()
    );
    assert_eq!(otlp.traces_url(), format!("{}/v1/traces", otlp.endpoint()));

    let request = traces_request(
        &otlp.traces_url(),
        "application/x-protobuf",
        one_span_export(),
    );
    let response = https_request(request, ca.client_config().expect("a client config"))
        .await
        .expect("POST over HTTPS");

    assert_eq!(response.status(), http::StatusCode::OK);
    let spans = otlp
        .wait_for_spans(1, Duration::from_secs(1))
        .await
        .expect("one span");
    assert_eq!(spans[0].name, "echo-function");
    assert_eq!(otlp.handshake_failures(), 0);
    let pem = std::fs::read_to_string(ca.pem_file().expect("the CA's PEM file")).expect("PEM");
    assert_eq!(pem, ca.pem());
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
}

#[tokio::test]
async fn tls_receiver_is_refused_by_clients_that_do_not_trust_its_certificate() {
    let ca = Arc::new(TestCa::new().expect("a CA"));
    let otlp = OtlpReceiver::start_tls(TlsOptions::new(&ca)).expect("starting the HTTPS receiver");
    let other_ca = TestCa::new().expect("another CA");
    let clients = [
        integration_tests::tls::client_config(rustls::RootCertStore::empty()).expect("no roots"),
        other_ca
            .client_config()
            .expect("another CA's client config"),
    ];

    for client in clients {
        let request = traces_request(
            &otlp.traces_url(),
            "application/x-protobuf",
            one_span_export(),
        );
        let error = https_request(request, client)
            .await
            .expect_err("an untrusted certificate");
        let message = error.to_string();
        assert!(matches!(error, Error::Io { .. }), "{message}");
        assert!(message.contains("invalid peer certificate"), "{message}");
        assert!(message.contains("UnknownIssuer"), "{message}");
    }

    stack::wait_until(Duration::from_secs(2), "two failed handshakes", || async {
        (otlp.handshake_failures() == 2).then_some(())
    })
    .await
    .expect("the receiver counts the refused handshakes");
    assert!(otlp.requests().is_empty());
    assert!(otlp.spans().is_empty());
}

#[tokio::test]
async fn tls_receiver_with_a_certificate_for_another_name_is_refused() {
    let ca = Arc::new(TestCa::new().expect("a CA"));
    let otlp = OtlpReceiver::start_tls(TlsOptions::new(&ca).names(["elsewhere.example"]))
        .expect("starting the HTTPS receiver");

    let request = traces_request(
        &otlp.traces_url(),
        "application/x-protobuf",
        one_span_export(),
    );
    let error = https_request(request, ca.client_config().expect("a client config"))
        .await
        .expect_err("a certificate for another name");

    let message = error.to_string();
    assert!(message.contains("invalid peer certificate"), "{message}");
    assert!(message.contains("not valid for name"), "{message}");
    stack::wait_until(Duration::from_secs(2), "a failed handshake", || async {
        (otlp.handshake_failures() == 1).then_some(())
    })
    .await
    .expect("the receiver counts the refused handshake");
    assert!(otlp.spans().is_empty());
}

const REGION: &str = "us-east-1";

/// A protobuf export request for `otlp`, signed for X-Ray in `region` at `time`.
fn signed(
    otlp: &OtlpReceiver,
    credentials: &TestCredentials,
    region: &str,
    time: SystemTime,
) -> http::Request<Bytes> {
    let mut request = traces_request(
        &otlp.traces_url(),
        "application/x-protobuf",
        one_span_export(),
    );
    sign_request(&mut request, credentials, region, "xray", time).expect("signing");
    request
}

#[tokio::test]
async fn sigv4_receiver_accepts_a_correctly_signed_request_over_https() {
    let ca = Arc::new(TestCa::new().expect("a CA"));
    let store = CredentialStore::new();
    let otlp = OtlpReceiver::start_tls(TlsOptions::new(&ca).auth(Auth::sigv4(REGION, &store)))
        .expect("starting the HTTPS receiver");
    let credentials = store.issue(Duration::from_secs(3600));
    // Signed over the compressed bytes, as sent.
    let mut request = traces_request(
        &otlp.traces_url(),
        "application/x-protobuf",
        gzip(&one_span_export()),
    );
    request.headers_mut().insert(
        http::header::CONTENT_ENCODING,
        http::HeaderValue::from_static("gzip"),
    );
    sign_request(
        &mut request,
        &credentials,
        REGION,
        "xray",
        SystemTime::now(),
    )
    .expect("signing");
    let signed_headers = request.headers()[http::header::AUTHORIZATION]
        .to_str()
        .expect("ASCII")
        .to_owned();

    let response = https_request(request, ca.client_config().expect("a client config"))
        .await
        .expect("POST over HTTPS");

    assert_eq!(
        response.status(),
        http::StatusCode::OK,
        "{:?}",
        otlp.rejections()
    );
    assert!(
        signed_headers.contains(
            "SignedHeaders=content-encoding;content-type;host;x-amz-date;x-amz-security-token,"
        ),
        "{signed_headers}"
    );
    let requests = otlp.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some("AWS4-HMAC-SHA256")
    );
    assert_eq!(requests[0].content_encoding.as_deref(), Some("gzip"));
    assert!(requests[0].accepted);
    assert_eq!(requests[0].spans, 1);
    assert_eq!(requests[0].status, 200);
}

#[tokio::test]
async fn sigv4_receiver_refuses_what_x_ray_would_refuse() {
    let otlp = OtlpReceiver::start().expect("starting the OTLP receiver");
    let store = CredentialStore::new();
    otlp.set_auth(Auth::sigv4(REGION, &store));
    let good = store.issue(Duration::from_secs(3600));
    let expired = store.issue(Duration::ZERO);
    let revoked = store.issue(Duration::from_secs(3600));
    store.revoke(&revoked.access_key_id);
    let stranger = CredentialStore::new().issue(Duration::from_secs(3600));
    let now = SystemTime::now();

    let mut changed_body = signed(&otlp, &good, REGION, now);
    let mut body = changed_body.body().to_vec();
    body[3] ^= 1;
    *changed_body.body_mut() = Bytes::from(body);
    let mut no_token = signed(&otlp, &good, REGION, now);
    no_token.headers_mut().remove("x-amz-security-token");
    let mut wrong_token = signed(&otlp, &good, REGION, now);
    wrong_token.headers_mut().insert(
        "x-amz-security-token",
        http::HeaderValue::from_str(&expired.session_token).expect("a header value"),
    );
    let mut unsigned = signed(&otlp, &good, REGION, now);
    unsigned.headers_mut().remove(http::header::AUTHORIZATION);
    let cases = [
        (changed_body, "sigv4: signature mismatch"),
        (
            signed(&otlp, &expired, REGION, now),
            "sigv4: expired credentials",
        ),
        (
            signed(&otlp, &revoked, REGION, now),
            "sigv4: revoked access key",
        ),
        (
            signed(&otlp, &stranger, REGION, now),
            "sigv4: unknown access key",
        ),
        (
            signed(&otlp, &good, "eu-west-1", now),
            "region is \"eu-west-1\"",
        ),
        (no_token, "sigv4: no x-amz-security-token"),
        (wrong_token, "is not the session token"),
        (unsigned, "sigv4: no Authorization header"),
        (
            signed(&otlp, &good, REGION, now - Duration::from_secs(600)),
            "away from the receiver's clock",
        ),
    ];
    let expected: Vec<&str> = cases.iter().map(|(_, reason)| *reason).collect();
    // A scripted failure does not hide a bad signature.
    otlp.set_mode(Mode::Fail(http::StatusCode::SERVICE_UNAVAILABLE));

    for (request, reason) in cases {
        let response = http_request(request).await.expect("POST /v1/traces");
        assert_eq!(response.status(), http::StatusCode::FORBIDDEN, "{reason}");
    }
    otlp.set_mode(Mode::Accept);
    let accepted = http_request(signed(&otlp, &good, REGION, SystemTime::now()))
        .await
        .expect("POST /v1/traces");

    assert_eq!(
        accepted.status(),
        http::StatusCode::OK,
        "{:?}",
        otlp.rejections()
    );
    let rejections = otlp.rejections();
    assert_eq!(rejections.len(), expected.len(), "{rejections:?}");
    for (rejection, expected) in rejections.iter().zip(&expected) {
        assert!(
            rejection.contains(expected),
            "{rejection:?} should say {expected:?}"
        );
        for credentials in [&good, &expired, &revoked, &stranger] {
            assert!(
                !rejection.contains(&credentials.secret_access_key),
                "{rejection}"
            );
            assert!(
                !rejection.contains(&credentials.session_token),
                "{rejection}"
            );
        }
    }
    assert!(
        rejections[1].contains(&expired.access_key_id),
        "{}",
        rejections[1]
    );
    let requests = otlp.requests();
    assert_eq!(requests.len(), expected.len() + 1);
    assert!(
        requests[..expected.len()]
            .iter()
            .all(|request| !request.accepted && request.status == 403)
    );
    assert_eq!(otlp.spans().len(), 1);
}

#[tokio::test]
async fn bearer_receiver_wants_exactly_its_key_and_no_signature() {
    let otlp = OtlpReceiver::start().expect("starting the OTLP receiver");
    otlp.set_auth(Auth::Bearer("Bearer abc".to_owned()));
    let store = CredentialStore::new();
    let credentials = store.issue(Duration::from_secs(3600));
    let with = |value: Option<&'static str>| {
        let mut request = traces_request(
            &otlp.traces_url(),
            "application/x-protobuf",
            one_span_export(),
        );
        if let Some(value) = value {
            request.headers_mut().insert(
                http::header::AUTHORIZATION,
                http::HeaderValue::from_static(value),
            );
        }
        request
    };

    let good = http_request(with(Some("Bearer abc"))).await.expect("POST");
    let wrong = http_request(with(Some("Bearer abd"))).await.expect("POST");
    let missing = http_request(with(None)).await.expect("POST");
    let sigv4 = http_request(signed(&otlp, &credentials, REGION, SystemTime::now()))
        .await
        .expect("POST");

    assert_eq!(good.status(), http::StatusCode::OK);
    for refused in [&wrong, &missing, &sigv4] {
        assert_eq!(refused.status(), http::StatusCode::FORBIDDEN);
    }
    let rejections = otlp.rejections();
    assert_eq!(rejections.len(), 3, "{rejections:?}");
    assert!(
        rejections
            .iter()
            .all(|reason| !reason.contains("abc") && !reason.contains("abd"))
    );
    let schemes: Vec<Option<String>> = otlp
        .requests()
        .into_iter()
        .map(|r| r.authorization)
        .collect();
    assert_eq!(
        schemes,
        [
            Some("Bearer"),
            Some("Bearer"),
            None,
            Some("AWS4-HMAC-SHA256")
        ]
        .map(|s| s.map(str::to_owned))
    );
}

#[tokio::test]
async fn otlp_receiver_decodes_gzipped_bodies_and_refuses_corrupt_ones() {
    let otlp = OtlpReceiver::start().expect("starting the OTLP receiver");
    let json = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "5759e988bd862e3fe1be46a994272793",
        "spanId": "53995c3f42cd8ad8",
        "name": "from json",
    }]}]}]})
    .to_string();
    let protobuf = export_request().encode_to_vec();
    let gzipped = |content_type: &str, body: Vec<u8>| {
        let mut request = traces_request(&otlp.traces_url(), content_type, body);
        request.headers_mut().insert(
            http::header::CONTENT_ENCODING,
            http::HeaderValue::from_static("gzip"),
        );
        request
    };

    let from_json = http_request(gzipped("application/json", gzip(json.as_bytes())))
        .await
        .expect("POST");
    let from_protobuf = http_request(gzipped("application/x-protobuf", gzip(&protobuf)))
        .await
        .expect("POST");
    let corrupt = http_request(gzipped("application/x-protobuf", protobuf.clone()))
        .await
        .expect("POST");
    let mut brotli = traces_request(
        &otlp.traces_url(),
        "application/x-protobuf",
        protobuf.clone(),
    );
    brotli.headers_mut().insert(
        http::header::CONTENT_ENCODING,
        http::HeaderValue::from_static("br"),
    );
    let brotli = http_request(brotli).await.expect("POST");

    assert_eq!(
        from_json.status(),
        http::StatusCode::OK,
        "{:?}",
        otlp.rejections()
    );
    assert_eq!(
        from_protobuf.status(),
        http::StatusCode::OK,
        "{:?}",
        otlp.rejections()
    );
    assert_eq!(corrupt.status(), http::StatusCode::BAD_REQUEST);
    assert_eq!(brotli.status(), http::StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let names: Vec<String> = otlp.spans().into_iter().map(|span| span.name).collect();
    assert_eq!(names, ["from json", "echo-function", "DynamoDB.PutItem"]);
    let requests = otlp.requests();
    assert_eq!(requests[0].uncompressed_bytes, json.len());
    assert_eq!(requests[1].uncompressed_bytes, protobuf.len());
    assert!(
        requests[1].body_bytes < requests[1].uncompressed_bytes,
        "{:?}",
        requests[1]
    );
    assert_eq!(requests[1].spans, 2);
    assert_eq!(requests[1].content_encoding.as_deref(), Some("gzip"));
    assert!(!requests[2].accepted);
    let rejections = otlp.rejections();
    assert!(
        rejections[0].starts_with("undecodable gzip body"),
        "{rejections:?}"
    );
    assert!(
        rejections[1].contains("Content-Encoding br"),
        "{rejections:?}"
    );
}

#[tokio::test]
async fn fail_times_answers_with_the_status_and_retry_after_then_accepts() {
    let otlp = OtlpReceiver::start().expect("starting the OTLP receiver");
    otlp.set_mode(Mode::FailTimes {
        status: http::StatusCode::TOO_MANY_REQUESTS,
        retry_after: Some("2"),
        times: 2,
    });

    let mut responses = Vec::new();
    for _ in 0..3 {
        let request = traces_request(
            &otlp.traces_url(),
            "application/x-protobuf",
            one_span_export(),
        );
        responses.push(http_request(request).await.expect("POST"));
    }

    for throttled in &responses[..2] {
        assert_eq!(throttled.status(), http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(throttled.headers()[http::header::RETRY_AFTER], "2");
    }
    assert_eq!(responses[2].status(), http::StatusCode::OK);
    assert!(
        !responses[2]
            .headers()
            .contains_key(http::header::RETRY_AFTER)
    );
    let outcomes: Vec<(bool, u16)> = otlp
        .requests()
        .into_iter()
        .map(|request| (request.accepted, request.status))
        .collect();
    assert_eq!(outcomes, [(false, 429), (false, 429), (true, 200)]);
    assert!(otlp.rejections().is_empty());
    assert_eq!(otlp.spans().len(), 1);
}

const ECS_CHILD_EXPECT: &str = "HARNESS_ECS_CHILD_EXPECT";
const ECS_TOKEN: &str = "tracekit-container-token";

#[tokio::test]
async fn credentials_server_feeds_the_sdks_container_provider() {
    let store = CredentialStore::new();
    let server = CredentialsServer::start(store.clone()).expect("starting the credentials server");
    let url = server.url();
    let none = http_request(
        http::Request::get(&url)
            .body(Bytes::new())
            .expect("a request"),
    )
    .await
    .expect("GET");
    assert_eq!(none.status(), http::StatusCode::NOT_FOUND);
    let credentials = store.issue(Duration::from_secs(3600));
    let served = http_request(
        http::Request::get(&url)
            .body(Bytes::new())
            .expect("a request"),
    )
    .await
    .expect("GET");
    let served: Value = serde_json::from_slice(served.body()).expect("JSON");
    assert_eq!(served["AccessKeyId"], credentials.access_key_id.as_str());
    let expiration = served["Expiration"].as_str().expect("an expiry");
    assert!(
        expiration.len() == 20 && expiration.ends_with('Z') && expiration.as_bytes()[10] == b'T',
        "{expiration}"
    );
    server.require_token(ECS_TOKEN);
    let untokened = http_request(
        http::Request::get(&url)
            .body(Bytes::new())
            .expect("a request"),
    )
    .await
    .expect("GET");
    assert_eq!(untokened.status(), http::StatusCode::UNAUTHORIZED);

    // The SDK's provider reads its configuration from the environment only, and tests must not
    // change this process's: it runs in a child, this test binary again.
    let expected = json!({
        "access_key_id": credentials.access_key_id,
        "secret_access_key": credentials.secret_access_key,
        "session_token": credentials.session_token,
        "expiration": credentials.expiration.duration_since(UNIX_EPOCH).expect("after the epoch").as_secs(),
    });
    let output = tokio::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args([
            "--exact",
            "ecs_provider_in_a_child_process",
            "--ignored",
            "--test-threads=1",
        ])
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url)
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", ECS_TOKEN)
        .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        .env_remove("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
        .env(ECS_CHILD_EXPECT, expected.to_string())
        .output()
        .await
        .expect("running the child test");

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("1 passed"),
        "the child test did not run: {stdout}"
    );
    assert_eq!(server.requests(), 4);
}

/// The child side of `credentials_server_feeds_the_sdks_container_provider`: the SDK's own
/// container-credentials provider, configured from this process's environment.
#[tokio::test]
#[ignore = "run in a child process by credentials_server_feeds_the_sdks_container_provider"]
async fn ecs_provider_in_a_child_process() {
    let Ok(expected) = std::env::var(ECS_CHILD_EXPECT) else {
        return;
    };
    let expected: Value = serde_json::from_str(&expected).expect("JSON");

    let credentials = aws_config::ecs::EcsCredentialsProvider::builder()
        .build()
        .credentials()
        .await
        .expect("credentials from the container endpoint");

    assert_eq!(credentials.access_key_id(), expected["access_key_id"]);
    assert_eq!(
        credentials.secret_access_key(),
        expected["secret_access_key"]
    );
    assert_eq!(
        credentials.session_token(),
        expected["session_token"].as_str()
    );
    let expiry = credentials
        .expiry()
        .expect("an expiry")
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs();
    assert_eq!(Some(expiry), expected["expiration"].as_u64());
}

/// A segment document as the X-Ray SDKs write it (https://docs.aws.amazon.com/xray/latest/devguide/xray-api-segmentdocuments.html).
fn segment_document(trace_id: &str) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs_f64();
    json!({
        "trace_id": trace_id,
        "id": xray::new_segment_id(),
        "name": "echo-function",
        "start_time": now - 0.25,
        "end_time": now,
        "origin": "AWS::Lambda::Function",
        "annotations": {"tracekit": true},
        "subsegments": [{
            "id": xray::new_segment_id(),
            "name": "DynamoDB",
            "namespace": "aws",
            "start_time": now - 0.2,
            "end_time": now - 0.1,
            "aws": {"operation": "PutItem", "table_name": "orders"}
        }]
    })
}

async fn send_datagram(daemon: &XrayDaemon, datagram: &str) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("a UDP socket");
    socket
        .send_to(datagram.as_bytes(), daemon.address())
        .await
        .expect("sending a datagram");
}

#[tokio::test]
async fn xray_daemon_rejects_malformed_datagrams() {
    let daemon = XrayDaemon::recording().expect("starting the X-Ray daemon stand-in");
    let document = segment_document(&xray::new_trace_id());

    send_datagram(&daemon, &document.to_string()).await;
    send_datagram(
        &daemon,
        &format!("{{\"format\": \"json\", \"version\": 2}}\n{document}"),
    )
    .await;
    send_datagram(&daemon, "{\"format\": \"json\", \"version\": 1}\n{\"id\": ").await;
    send_datagram(
        &daemon,
        &format!("{{\"format\": \"json\", \"version\": 1}}\n{document}"),
    )
    .await;

    let documents = daemon
        .wait_for_documents(1, Duration::from_secs(2))
        .await
        .expect("the good document");
    assert_eq!(documents, vec![document]);
    stack::wait_until(Duration::from_secs(2), "three rejections", || async {
        (daemon.rejected().len() == 3).then_some(())
    })
    .await
    .expect("the malformed datagrams are recorded");
}

#[tokio::test]
async fn segment_sent_through_the_daemon_comes_back_from_batch_get_traces_unchanged() {
    stack::require_moto().await;
    let client = stack::xray_client().await;
    let daemon = XrayDaemon::start(client.clone()).expect("starting the X-Ray daemon stand-in");
    let trace_id = xray::new_trace_id();
    let document = segment_document(&trace_id);

    send_datagram(
        &daemon,
        &format!("{{\"format\":\"json\",\"version\":1}}\n{document}"),
    )
    .await;
    daemon
        .wait_for_forwarded(1, Duration::from_secs(10))
        .await
        .expect("PutTraceSegments");

    let documents = xray::batch_get_traces(&client, &[&trace_id], Duration::from_secs(10))
        .await
        .expect("BatchGetTraces");
    assert_eq!(documents, vec![document]);
    assert!(
        daemon.forward_errors().is_empty(),
        "{:?}",
        daemon.forward_errors()
    );
}

#[tokio::test]
async fn stack_clients_reach_the_emulators() {
    stack::require_localstack().await;
    stack::require_moto().await;
    let bucket = stack::unique_name("harness");
    let queue = stack::unique_name("harness");

    let s3 = stack::s3_client().await;
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("CreateBucket");
    s3.put_object()
        .bucket(&bucket)
        .key("receipt.json")
        .body(Bytes::from_static(b"{}").into())
        .send()
        .await
        .expect("PutObject (path-style)");
    let sqs = stack::sqs_client().await;
    let queue_url = sqs
        .create_queue()
        .queue_name(&queue)
        .send()
        .await
        .expect("CreateQueue");
    let tables = stack::dynamodb_client()
        .await
        .list_tables()
        .send()
        .await
        .expect("ListTables");

    assert!(
        queue_url
            .queue_url()
            .is_some_and(|url| url.ends_with(&queue))
    );
    assert!(tables.table_names().iter().all(|name| !name.is_empty()));
}
