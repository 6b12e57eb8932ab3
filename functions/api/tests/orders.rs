//! The api handler against the local stack (DynamoDB on moto, S3 and SQS on LocalStack), with the
//! sample events from `events/`, traced by tracekit's in-memory exporter.

use api::handler::{self, App, Payments};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use integration_tests::scripted::{Scripted, ScriptedEndpoint};
use integration_tests::stack;
use lambda_http::{Body, Response};
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;
use serde_json::Value;
use std::time::Duration;
use tracekit::testing::TestTelemetry;
use tracing::Instrument;

fn event(name: &str) -> Value {
    let path = stack::workspace_root().join("events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn request(event: &Value) -> lambda_http::Request {
    lambda_http::request::from_str(&event.to_string()).expect("an API Gateway v2 request")
}

fn body_json(response: &Response<Body>) -> Value {
    serde_json::from_slice(response.body().as_ref()).expect("a JSON body")
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

async fn app(queue_url: String, payments: Option<Payments>) -> App {
    App {
        dynamodb: stack::traced_dynamodb_client().await,
        s3: stack::traced_s3_client().await,
        sqs: stack::traced_sqs_client().await,
        table: stack::resource("ORDERS_TABLE"),
        bucket: stack::resource("RECEIPTS_BUCKET"),
        queue_url,
        payments,
    }
}

/// An app whose AWS clients point nowhere, for requests answered before any AWS call.
async fn offline_app(payments: Option<Payments>) -> App {
    let (dynamodb, s3, sqs) = stack::offline_traced_clients().await;
    App {
        dynamodb,
        s3,
        sqs,
        table: "unused".into(),
        bucket: "unused".into(),
        queue_url: "unused".into(),
        payments,
    }
}

/// The payment provider at `endpoint`, through the traced reqwest client `main` builds.
fn payments(endpoint: &ScriptedEndpoint) -> Payments {
    Payments {
        client: tracekit::http_client::reqwest_client(reqwest::Client::new()),
        url: endpoint.url(),
    }
}

/// Runs the handler under an invocation span, as `tracekit::run_http` would.
async fn invoke(app: &App, event: &Value, order_id: &str) -> Response<Body> {
    handler::handle(app, request(event), order_id)
        .instrument(tracing::info_span!("invocation", otel.kind = "server"))
        .await
}

async fn spans(test: &TestTelemetry) -> Vec<SpanData> {
    test.telemetry().force_flush(Duration::from_secs(5)).await;
    test.spans()
}

#[test]
fn api_gateway_events_round_trip_and_read_as_requests() {
    for (name, method, path) in [
        ("apigw-v2-post-order.json", "POST", "/orders"),
        ("apigw-v2-post-order-invalid.json", "POST", "/orders"),
        ("apigw-v2-get-order.json", "GET", "/orders/4f2d9a7e-order"),
    ] {
        let original = event(name);
        let typed: ApiGatewayV2httpRequest = serde_json::from_value(original.clone()).expect(name);
        let again: ApiGatewayV2httpRequest =
            serde_json::from_value(serde_json::to_value(&typed).expect(name)).expect(name);
        assert_eq!(typed, again, "{name} survives a serde round trip");
        assert_eq!(typed.route_key.as_deref(), original["routeKey"].as_str());
        let request = request(&original);
        assert_eq!(request.method().as_str(), method, "{name}");
        assert_eq!(request.uri().path(), path, "{name}");
    }
}

#[tokio::test]
async fn a_bad_body_is_a_400_with_its_reason_and_an_error_span() {
    let test = TestTelemetry::new();
    // No AWS call is made: the body is rejected before any client is used, so no stack is needed.
    let app = offline_app(None).await;
    let response = invoke(&app, &event("apigw-v2-post-order-invalid.json"), "order-x").await;
    assert_eq!(response.status(), 400);
    let body = body_json(&response);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("1 to 100 items"),
        "{body}"
    );
    let spans = spans(&test).await;
    let validate = spans
        .iter()
        .find(|s| s.name == "validate order")
        .expect("validate span");
    assert!(matches!(validate.status, Status::Error { .. }));
    assert_eq!(
        attr(validate, "error.type").as_deref(),
        Some("InvalidOrder")
    );
    // The invocation span's `http.response.status_code` is tracekit's to record, from the response
    // `run_http` sees (tests/tests/end_to_end.rs); this span stands in for it without that.
    assert!(
        !spans.iter().any(|s| s.span_kind == SpanKind::Client),
        "nothing reached AWS"
    );
}

#[tokio::test]
async fn a_declined_payment_is_a_402_and_nothing_is_stored() {
    let test = TestTelemetry::new();
    // The provider declines before any AWS call, so no stack is needed.
    let provider =
        ScriptedEndpoint::start(vec![Scripted::json(402, r#"{"reason":"card_declined"}"#)])
            .expect("payment provider");
    let app = offline_app(Some(payments(&provider))).await;
    let response = invoke(&app, &event("apigw-v2-post-order.json"), "order-declined").await;
    assert_eq!(response.status(), 402, "{:?}", body_json(&response));
    assert!(
        body_json(&response)["error"]
            .as_str()
            .is_some_and(|e| e.contains("declined")),
        "{:?}",
        body_json(&response)
    );

    let received = provider.received();
    assert_eq!(received.len(), 1, "one authorization asked");
    let asked = &received[0];
    assert_eq!(asked.path, "/authorizations");
    assert_eq!(asked.header("idempotency-key"), Some("order-declined"));
    let asked: Value = serde_json::from_slice(&asked.body).expect("a JSON body");
    assert_eq!(
        asked,
        serde_json::json!({ "order_id": "order-declined", "amount_cents": 1650 })
    );

    let spans = spans(&test).await;
    let clients: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Client)
        .collect();
    assert_eq!(
        clients.len(),
        1,
        "only the provider was called: {clients:#?}"
    );
    let http = clients[0];
    assert_eq!(http.name, "POST");
    assert_eq!(attr(http, "error.type").as_deref(), Some("402"));
    let invocation = spans
        .iter()
        .find(|s| s.name == "invocation")
        .expect("invocation");
    assert_eq!(http.parent_span_id, invocation.span_context.span_id());
}

#[tokio::test]
#[ignore = "needs the local stack (LocalStack and moto): `make test` runs it"]
async fn an_order_is_stored_announced_and_read_back() {
    stack::require_moto().await;
    stack::require_localstack().await;
    let test = TestTelemetry::new();
    let queue_url = stack::create_queue("api-orders").await;
    let provider = ScriptedEndpoint::start(vec![Scripted::json(201, r#"{"status":"authorized"}"#)])
        .expect("payment provider");
    let app = app(queue_url.clone(), Some(payments(&provider))).await;
    let order_id = stack::unique_name("order");

    let response = invoke(&app, &event("apigw-v2-post-order.json"), &order_id).await;
    assert_eq!(response.status(), 201, "{:?}", body_json(&response));
    assert_eq!(body_json(&response)["total_cents"], 1650);

    // The order reads back through GET.
    let mut get = event("apigw-v2-get-order.json");
    let path = format!("/orders/{order_id}");
    get["rawPath"] = Value::from(path.clone());
    get["requestContext"]["http"]["path"] = Value::from(path);
    get["pathParameters"]["id"] = Value::from(order_id.clone());
    let response = invoke(&app, &get, "unused").await;
    assert_eq!(response.status(), 200);
    let order = body_json(&response);
    assert_eq!(order["id"], order_id.as_str());
    assert_eq!(order["status"], "created");
    assert_eq!(order["items"][0]["sku"], "tea-assam");

    // The receipt is in S3, the message in the queue with the user's attribute and the context.
    let receipt = stack::s3_client()
        .await
        .get_object()
        .bucket(&app.bucket)
        .key(format!("receipts/{order_id}.json"))
        .send()
        .await
        .expect("receipt");
    let receipt: Value =
        serde_json::from_slice(&receipt.body.collect().await.expect("body").into_bytes())
            .expect("receipt JSON");
    assert_eq!(receipt["total_cents"], 1650);
    let received = stack::sqs_client()
        .await
        .receive_message()
        .queue_url(&queue_url)
        .message_attribute_names("All")
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .wait_time_seconds(1)
        .send()
        .await
        .expect("receive");
    let message = received
        .messages()
        .first()
        .expect("the order.created message");
    let body: Value = serde_json::from_str(message.body().unwrap_or_default()).expect("JSON");
    assert_eq!(body["type"], "order.created");
    assert_eq!(body["order_id"], order_id.as_str());
    let attributes = message.message_attributes().expect("attributes");
    assert_eq!(
        attributes["event_type"].string_value(),
        Some("order.created"),
        "the function's own attribute arrives"
    );
    assert!(attributes.contains_key("traceparent"));

    let spans = spans(&test).await;
    let put = spans
        .iter()
        .find(|s| s.name == "DynamoDB.PutItem")
        .expect("PutItem");
    let post = spans
        .iter()
        .find(|s| s.name == "invocation" && s.span_context.span_id() == put.parent_span_id)
        .expect("the POST invocation, PutItem's parent");
    for (name, kind) in [
        ("POST", SpanKind::Client),
        ("DynamoDB.PutItem", SpanKind::Client),
        ("S3.PutObject", SpanKind::Client),
        ("SQS.SendMessage", SpanKind::Producer),
    ] {
        let span = spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} in {spans:#?}"));
        assert_eq!(span.span_kind, kind, "{name}");
        assert_eq!(
            span.parent_span_id,
            post.span_context.span_id(),
            "{name} under the POST"
        );
    }
    let send = spans
        .iter()
        .find(|s| s.name == "SQS.SendMessage")
        .expect("send");
    let trace_header = message
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::AwsTraceHeader))
        .expect("AWSTraceHeader");
    assert!(
        trace_header.contains(&format!("Parent={}", send.span_context.span_id())),
        "{trace_header}"
    );
    // The provider was asked once, with the HTTP span's context.
    let http = spans
        .iter()
        .find(|s| s.name == "POST")
        .expect("the provider's span");
    let asked = provider.received();
    assert_eq!(asked.len(), 1);
    assert_eq!(
        asked[0].header("traceparent"),
        Some(
            format!(
                "00-{}-{}-01",
                http.span_context.trace_id(),
                http.span_context.span_id()
            )
            .as_str()
        )
    );
    let everything = format!("{spans:?}");
    assert!(
        !everything.contains("tea-assam") && !everything.contains("\"ada\""),
        "no order contents in any span"
    );
}
