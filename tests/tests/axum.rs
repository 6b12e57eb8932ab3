//! An axum router under `lambda_http` through the harness (`axum-function`, with
//! `tracekit::axum::route_layer`): the invocation span named after the route the router matched,
//! whatever route the event names; a 5xx answer an error; an unmatched request keeping the event's
//! name.

use integration_tests::flow::sample_event;
use integration_tests::otlp::SpanKind;
use integration_tests::{FunctionProcess, Invocation, OtlpReceiver, stack, xray};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// The function URL sample (no route of its own) for `method` and `path`.
fn function_url_event(method: &str, path: &str) -> Value {
    let mut event = sample_event("function-url-get-order.json").expect("sample");
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["path"] = json!(path);
    event["requestContext"]["http"]["method"] = json!(method);
    event
}

#[tokio::test]
async fn the_invocation_span_is_named_after_the_route_the_router_matched() {
    let otlp = OtlpReceiver::start().expect("receiver");
    let function = FunctionProcess::spawn(
        &stack::function_binary("axum-function"),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint())],
    )
    .expect("spawn");
    // API Gateway's catch-all route: the event names the span `ANY /{proxy+}` on its own.
    let mut proxied = sample_event("apigw-v2-get-order.json").expect("sample");
    proxied["routeKey"] = json!("ANY /{proxy+}");
    proxied["requestContext"]["routeKey"] = json!("ANY /{proxy+}");
    // (event, status, span name, http.route, is an error)
    let plan = [
        (
            function_url_event("GET", "/orders/o-1"),
            200,
            "GET /orders/{id}",
            Some("/orders/{id}"),
            false,
        ),
        (
            function_url_event("GET", "/orders/boom"),
            500,
            "GET /orders/{id}",
            Some("/orders/{id}"),
            true,
        ),
        (
            function_url_event("POST", "/orders"),
            201,
            "POST /orders",
            Some("/orders"),
            false,
        ),
        (
            function_url_event("GET", "/nowhere"),
            404,
            "GET",
            None,
            false,
        ),
        (
            proxied,
            200,
            "GET /orders/{id}",
            Some("/orders/{id}"),
            false,
        ),
    ];
    for (event, status, ..) in &plan {
        let header = xray::new_trace_header();
        let outcome = function
            .invoke(Invocation::json(event.clone()).trace_header(header))
            .await
            .expect("invocation");
        let response = outcome.json().expect("a response");
        assert_eq!(response["statusCode"], *status, "{event}");
    }
    let spans = otlp
        .wait_for_spans(plan.len() + 3, WAIT)
        .await
        .expect("spans");
    function.shutdown().await.expect("exit");
    let mut servers: Vec<_> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server)
        .collect();
    servers.sort_by_key(|s| s.start_unix_nanos);
    assert_eq!(servers.len(), plan.len(), "{spans:#?}");
    for (span, (_, status, name, route, error)) in servers.iter().zip(&plan) {
        assert_eq!(span.name, *name, "{status}");
        assert_eq!(span.attr_str("http.route"), *route, "{name}");
        assert_eq!(
            span.attr_i64("http.response.status_code"),
            Some(i64::from(*status))
        );
        assert_eq!(
            span.attr_str("error.type"),
            error.then_some("500"),
            "only a 5xx is the server's error: {name} {status}"
        );
    }
    // The handler's own span is a child of the renamed invocation span.
    let render = spans.iter().filter(|s| s.name == "render").count();
    assert_eq!(render, 3, "GET /orders/{{id}} ran three times");
}
