//! tracekit in a real function process: the invocation span and its children leave the process
//! through the real exporters (OTLP/HTTP to the receiver standing in for the ADOT layer, X-Ray segment
//! documents over UDP to the daemon stand-in and on to the X-Ray API), parented on the trace header
//! the Runtime API gave the invocation.

use integration_tests::otlp::{AttrValue, SpanKind, SpanStatusCode};
use integration_tests::stack;
use integration_tests::xray::{self, XrayDaemon};
use integration_tests::{FunctionProcess, Invocation, InvocationOutcome, OtlpReceiver};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn header(trace_id: &str, parent: &str) -> String {
    format!("Root={trace_id};Parent={parent};Sampled=1")
}

fn spawn(env: &[(&str, String)]) -> FunctionProcess {
    FunctionProcess::spawn(&stack::function_binary("traced-function"), env)
        .expect("spawning traced-function")
}

#[tokio::test]
async fn otlp_export_carries_the_invocation_trace() {
    for protocol in ["http/protobuf", "http/json"] {
        let otlp = OtlpReceiver::start().expect("OTLP receiver");
        let function = spawn(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
            ("OTEL_SERVICE_NAME", "orders".to_owned()),
        ]);
        let trace_id = xray::new_trace_id();
        let parent = xray::new_segment_id();
        let outcome = function
            .invoke(
                Invocation::json(json!({"children": 3}))
                    .trace_header(header(&trace_id, &parent))
                    .request_id("req-otlp"),
            )
            .await
            .expect("invocation");
        assert!(
            matches!(outcome, InvocationOutcome::Response(_)),
            "{protocol}: {outcome:?}"
        );

        let spans = otlp.wait_for_spans(4, WAIT).await.expect("spans arrive");
        assert_eq!(
            spans.len(),
            4,
            "{protocol}: one server span and three children"
        );
        let otel_trace_id = xray::otel_trace_id(&trace_id);
        assert!(
            spans.iter().all(|s| s.trace_id == otel_trace_id),
            "{protocol}: one trace"
        );
        let server = spans
            .iter()
            .find(|s| s.kind == SpanKind::Server)
            .expect("server span");
        assert_eq!(
            server.parent_span_id.as_deref(),
            Some(parent.as_str()),
            "{protocol}"
        );
        assert_eq!(server.name, function.name());
        assert_eq!(server.attr_str("faas.invocation_id"), Some("req-otlp"));
        assert_eq!(server.attr_str("faas.trigger"), Some("other"));
        assert_eq!(server.attr_bool("faas.coldstart"), Some(true));
        assert_eq!(server.attr_str("cloud.account.id"), Some("123456789012"));
        assert_eq!(server.resource_str("service.name"), Some("orders"));
        assert_eq!(server.resource_str("cloud.platform"), Some("aws_lambda"));
        assert_eq!(server.resource_str("cloud.provider"), Some("aws"));
        assert_eq!(server.resource_str("faas.name"), Some(function.name()));
        // Logs, metrics and traces linked as Application Signals links them: the log group and
        // stream the function's lines (and EMF metrics) go to.
        let log_group = format!("/aws/lambda/{}", function.name());
        assert_eq!(
            server
                .resource
                .get("aws.log.group.names")
                .and_then(AttrValue::as_str_array),
            Some(vec![log_group.as_str()])
        );
        assert!(
            server
                .resource_str("faas.instance")
                .is_some_and(|stream| stream.contains("[$LATEST]")),
            "{:?}",
            server.resource_str("faas.instance")
        );
        for child in spans.iter().filter(|s| s.name == "step") {
            assert_eq!(
                child.parent_span_id.as_deref(),
                Some(server.span_id.as_str())
            );
        }

        // The JSON log lines carry the X-Ray trace id.
        let logged = function
            .wait_for_stdout(|line| line.contains(r#""message":"working""#), WAIT)
            .await
            .expect("log line");
        let line: Value = serde_json::from_str(&logged).expect("JSON log line");
        assert_eq!(line["traceId"], trace_id.as_str());
    }
}

#[tokio::test]
async fn second_invocation_is_warm_and_errors_are_recorded() {
    let otlp = OtlpReceiver::start().expect("OTLP receiver");
    let function = spawn(&[("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint())]);
    let trace_id = xray::new_trace_id();
    function
        .invoke(
            Invocation::json(json!({"children": 0}))
                .trace_header(header(&trace_id, &xray::new_segment_id())),
        )
        .await
        .expect("first invocation");
    otlp.wait_for_spans(1, WAIT).await.expect("first span");
    otlp.clear();

    let outcome = function
        .invoke(
            Invocation::json(json!({"fail": "order 42 is out of stock"}))
                .trace_header(header(&trace_id, &xray::new_segment_id())),
        )
        .await
        .expect("second invocation");
    match outcome {
        InvocationOutcome::Error {
            error_type,
            error_message,
            ..
        } => {
            assert_eq!(
                error_type, "OrderError",
                "the error reaches the runtime unchanged"
            );
            assert_eq!(error_message, "order 42 is out of stock");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    let spans = otlp.wait_for_spans(1, WAIT).await.expect("error span");
    let server = &spans[0];
    assert_eq!(server.attr_bool("faas.coldstart"), Some(false));
    assert_eq!(server.status_code, SpanStatusCode::Error);
    assert_eq!(server.attr_str("error.type"), Some("OrderError"));
    let exception = server.event("exception").expect("exception event");
    assert!(format!("{:?}", exception).contains("order 42 is out of stock"));
}

#[tokio::test]
async fn a_panicking_handler_is_recorded_and_the_runtime_reports_it() {
    let otlp = OtlpReceiver::start().expect("OTLP receiver");
    let function = spawn(&[("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint())]);
    let outcome = function
        .invoke(
            Invocation::json(json!({"panic": true}))
                .trace_header(header(&xray::new_trace_id(), &xray::new_segment_id())),
        )
        .await
        .expect("invocation");
    assert!(
        matches!(outcome, InvocationOutcome::Error { .. }),
        "{outcome:?}"
    );
    let spans = otlp.wait_for_spans(1, WAIT).await.expect("span");
    assert_eq!(spans[0].attr_str("error.type"), Some("panic"));
    assert_eq!(spans[0].status_code, SpanStatusCode::Error);
}

#[tokio::test]
async fn an_unreachable_collector_never_fails_the_invocation() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", closed.local_addr().expect("address"));
    drop(closed);
    let function = spawn(&[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)]);
    for _ in 0..2 {
        let outcome = function
            .invoke(
                Invocation::json(json!({}))
                    .trace_header(header(&xray::new_trace_id(), &xray::new_segment_id())),
            )
            .await
            .expect("invocation");
        assert!(
            matches!(outcome, InvocationOutcome::Response(_)),
            "{outcome:?}"
        );
    }
    function
        .wait_for_stdout(|line| line.contains("span export failed"), WAIT)
        .await
        .expect("the failed export is logged");
}

#[tokio::test]
async fn a_bad_setting_is_an_init_error_naming_the_variable() {
    let function = spawn(&[("OTEL_TRACES_EXPORTER", "jaeger".to_owned())]);
    let error = function
        .invoke(Invocation::json(json!({})))
        .await
        .expect_err("the function cannot start");
    let message = error.to_string();
    assert!(message.contains("OTEL_TRACES_EXPORTER"), "{message}");
    assert!(message.contains("jaeger"), "{message}");
}

#[tokio::test]
async fn xray_export_reaches_the_xray_api_under_the_lambda_trace() {
    stack::require_moto().await;
    let client = stack::xray_client().await;
    let daemon = XrayDaemon::start(client.clone()).expect("daemon stand-in");
    let function = spawn(&[
        ("OTEL_TRACES_EXPORTER", "xray".to_owned()),
        ("AWS_XRAY_DAEMON_ADDRESS", daemon.address().to_owned()),
    ]);
    let trace_id = xray::new_trace_id();
    let parent = xray::new_segment_id();
    let outcome = function
        .invoke(Invocation::json(json!({"children": 1})).trace_header(header(&trace_id, &parent)))
        .await
        .expect("invocation");
    assert!(
        matches!(outcome, InvocationOutcome::Response(_)),
        "{outcome:?}"
    );
    daemon
        .wait_for_forwarded(2, WAIT)
        .await
        .expect("two documents forwarded");
    assert!(
        daemon.forward_errors().is_empty(),
        "{:?}",
        daemon.forward_errors()
    );

    let documents = xray::batch_get_traces(&client, &[trace_id.as_str()], WAIT)
        .await
        .expect("trace in the X-Ray API");
    let segment = documents
        .iter()
        .find(|d| d.get("origin").is_some())
        .unwrap_or_else(|| panic!("a segment with an origin: {documents:#?}"));
    assert_eq!(segment["trace_id"], trace_id.as_str());
    assert_eq!(segment["parent_id"], parent.as_str());
    assert_eq!(segment["origin"], "AWS::Lambda::Function");
    let child = documents
        .iter()
        .find(|d| d["name"] == "step")
        .unwrap_or_else(|| panic!("the child span: {documents:#?}"));
    assert_eq!(child["trace_id"], trace_id.as_str());
    assert_eq!(child["parent_id"], segment["id"]);
}
