//! Tests of the harness itself: the Runtime API driving a plain `lambda_runtime` function
//! (`echo-function`), the OTLP receiver, and the X-Ray daemon stand-in (with moto).

use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use integration_tests::otlp::{AttrValue, Mode, SpanKind, SpanStatusCode};
use integration_tests::stack::{self, http_request};
use integration_tests::xray::{self, XrayDaemon};
use integration_tests::{Error, FunctionProcess, Invocation, InvocationOutcome, OtlpReceiver};
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
