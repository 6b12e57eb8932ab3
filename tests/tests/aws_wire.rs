//! tracekit's SDK interceptor on the wire: against a scripted endpoint (500, 429, 400 and 503 answers)
//! for retries and error classes, and against LocalStack for the `X-Amzn-Trace-Id` → `AWSTraceHeader`
//! hand-off. Spans are read from tracekit's in-memory exporter and, where it matters, translated the
//! way the X-Ray exporters translate them.

use aws_sdk_dynamodb::{config::retry::RetryConfig, types::AttributeValue};
use integration_tests::{
    FunctionProcess, Invocation, InvocationOutcome, OtlpReceiver, Scripted, ScriptedEndpoint, stack,
};
use opentelemetry::trace::Status;
use opentelemetry_aws::xray_exporter::SegmentTranslator;
use opentelemetry_sdk::trace::SpanData;
use serde_json::{Value, json};
use std::time::Duration;
use tracekit::testing::TestTelemetry;
use tracing::Instrument;

fn attr_i64(span: &SpanData, key: &str) -> Option<i64> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .and_then(|kv| match kv.value {
            opentelemetry::Value::I64(v) => Some(v),
            _ => None,
        })
}

fn attr_str(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

/// A traced DynamoDB client for `endpoint`, three attempts with millisecond backoff.
async fn dynamodb_at(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let sdk = stack::sdk_config().await;
    let config = tracekit::aws::traced(aws_sdk_dynamodb::config::Builder::from(&sdk))
        .endpoint_url(endpoint)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(1)),
        )
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

async fn get_item(client: &aws_sdk_dynamodb::Client) -> Result<(), String> {
    client
        .get_item()
        .table_name("orders")
        .key("id", AttributeValue::S("42".into()))
        .send()
        .await
        .map(drop)
        .map_err(|error| format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(error)))
}

/// One traced GetItem, under a handler span, against an endpoint answering `script`.
async fn scripted_get_item(
    script: Vec<Scripted>,
) -> (ScriptedEndpoint, TestTelemetry, Result<(), String>) {
    let endpoint = ScriptedEndpoint::start(script).expect("endpoint");
    let test = TestTelemetry::new();
    let client = dynamodb_at(&endpoint.url()).await;
    let result = get_item(&client)
        .instrument(tracing::info_span!("handler"))
        .await;
    (endpoint, test, result)
}

/// The one `DynamoDB.GetItem` span after a flush.
async fn the_get_item_span(test: &TestTelemetry) -> SpanData {
    test.telemetry().force_flush(Duration::from_secs(5)).await;
    let spans: Vec<SpanData> = test
        .spans()
        .into_iter()
        .filter(|span| span.name == "DynamoDB.GetItem")
        .collect();
    assert_eq!(
        spans.len(),
        1,
        "one span per operation, whatever the attempts"
    );
    spans.into_iter().next().unwrap_or_else(|| unreachable!())
}

/// The X-Ray subsegment the span becomes, as JSON.
fn as_xray(span: &SpanData) -> Value {
    let batch = [span.clone()];
    let translator = SegmentTranslator::new();
    let documents = translator.translate_spans(&batch);
    assert_eq!(documents.len(), 1, "the span translates to one document");
    serde_json::from_str(&documents[0].to_string()).unwrap_or_else(|e| panic!("document: {e}"))
}

#[tokio::test]
async fn a_retried_server_error_is_one_span_with_its_attempts_and_a_retry_event() {
    let (endpoint, test, result) = scripted_get_item(vec![
        Scripted::dynamodb_error(500, "InternalServerError"),
        Scripted::json(200, "{}").header("x-amzn-requestid", "req-after-retry"),
    ])
    .await;
    result.expect("the retry succeeds");

    let span = the_get_item_span(&test).await;
    assert_eq!(attr_i64(&span, "aws.attempts"), Some(2));
    assert_eq!(attr_i64(&span, "http.response.status_code"), Some(200));
    assert_eq!(
        attr_str(&span, "aws.request_id").as_deref(),
        Some("req-after-retry")
    );
    assert_eq!(span.status, Status::Unset, "a retried success is a success");
    let retries: Vec<_> = span
        .events
        .iter()
        .filter(|event| event.name == "retry")
        .collect();
    assert_eq!(retries.len(), 1);
    let reason = retries[0]
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "aws.retry.reason")
        .map(|kv| kv.value.as_str().into_owned());
    assert_eq!(reason.as_deref(), Some("InternalServerError"));
    assert_eq!(endpoint.received().len(), 2);
}

#[tokio::test]
async fn throttling_client_errors_and_server_errors_are_told_apart_as_xray_reads_them() {
    // (scripted answer, attempts the SDK makes, error.type, the X-Ray flags the span must translate to)
    let cases = [
        (
            Scripted::dynamodb_error(429, "ThrottlingException"),
            3,
            "ThrottlingException",
            json!({"throttle": true, "error": true, "fault": null}),
        ),
        (
            Scripted::dynamodb_error(400, "ValidationException"),
            1,
            "ValidationException",
            json!({"throttle": null, "error": true, "fault": null}),
        ),
        (
            Scripted::dynamodb_error(503, "ServiceUnavailable"),
            3,
            "ServiceUnavailable",
            json!({"throttle": null, "error": null, "fault": true}),
        ),
    ];
    for (answer, attempts, error_type, flags) in cases {
        let status = answer.clone();
        let (endpoint, test, result) = scripted_get_item(vec![answer]).await;
        let error = result.expect_err("the scripted endpoint always fails");
        assert!(
            error.contains(error_type),
            "the caller's error is the SDK's own: {error}"
        );

        let span = the_get_item_span(&test).await;
        assert_eq!(
            attr_i64(&span, "aws.attempts"),
            Some(attempts),
            "{status:?}"
        );
        assert_eq!(endpoint.received().len() as i64, attempts);
        assert_eq!(
            attr_str(&span, "error.type").as_deref(),
            Some(error_type),
            "{status:?}"
        );
        assert!(matches!(span.status, Status::Error { .. }));
        assert_eq!(
            span.events.iter().filter(|e| e.name == "retry").count() as i64,
            attempts - 1
        );
        let document = as_xray(&span);
        for flag in ["throttle", "error", "fault"] {
            let expected = flags[flag].as_bool().unwrap_or(false);
            let actual = document[flag].as_bool().unwrap_or(false);
            assert_eq!(actual, expected, "{flag} for {error_type}: {document}");
        }
    }
}

#[tokio::test]
async fn every_attempt_carries_the_client_span_in_x_amzn_trace_id_outside_the_signature() {
    let (endpoint, test, result) = scripted_get_item(vec![
        Scripted::dynamodb_error(500, "InternalServerError"),
        Scripted::json(200, "{}"),
    ])
    .await;
    result.expect("get");
    let span = the_get_item_span(&test).await;
    let trace_id = span.span_context.trace_id().to_string();
    let expected = format!(
        "Root=1-{}-{};Parent={};Sampled=1",
        &trace_id[..8],
        &trace_id[8..],
        span.span_context.span_id()
    );
    let received = endpoint.received();
    assert_eq!(received.len(), 2);
    for request in &received {
        assert_eq!(request.header("x-amzn-trace-id"), Some(expected.as_str()));
        let authorization = request.header("authorization").expect("signed request");
        let signed = authorization
            .split("SignedHeaders=")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .expect("SignedHeaders in Authorization");
        assert!(
            !signed.split(';').any(|h| h == "x-amzn-trace-id"),
            "the trace header is outside the signature, so setting it never breaks it: {signed}"
        );
        assert!(
            !String::from_utf8_lossy(&request.body).is_empty(),
            "the request went out whole"
        );
    }
}

#[tokio::test]
async fn inside_lambda_the_client_span_wins_over_recursion_detection() {
    // The SDK's recursion detection fills X-Amzn-Trace-Id from _X_AMZN_TRACE_ID when
    // AWS_LAMBDA_FUNCTION_NAME is set (always true under Lambda); tracekit's value must replace it.
    let endpoint = ScriptedEndpoint::start(vec![Scripted::json(200, "{}")]).expect("endpoint");
    let otlp = OtlpReceiver::start().expect("receiver");
    let lambda_segment =
        "Root=1-11111111-222222222222222222222222;Parent=3333333333333333;Sampled=1";
    let function = FunctionProcess::spawn(
        &stack::function_binary("traced-function"),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint()),
            ("_X_AMZN_TRACE_ID", lambda_segment.to_owned()),
            ("AWS_ACCESS_KEY_ID", "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ],
    )
    .expect("spawn");
    let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let outcome = function
        .invoke(
            Invocation::json(json!({"children": 0, "sdk_call": endpoint.url()}))
                .trace_header(header),
        )
        .await
        .expect("invoke");
    assert!(
        matches!(outcome, InvocationOutcome::Response(_)),
        "{outcome:?}"
    );
    let spans = otlp
        .wait_for_spans(2, Duration::from_secs(10))
        .await
        .expect("spans");
    let client = spans
        .iter()
        .find(|span| span.name == "DynamoDB.GetItem")
        .expect("the SDK call's span");
    let received = endpoint.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].header("x-amzn-trace-id"),
        Some(
            format!(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent={};Sampled=1",
                client.span_id
            )
            .as_str()
        ),
        "the header names tracekit's client span, in the invocation's trace"
    );
    function.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn localstack_copies_the_trace_header_into_aws_trace_header() {
    stack::require_localstack().await;
    let sqs = stack::sqs_client().await;
    let queue = sqs
        .create_queue()
        .queue_name(stack::unique_name("wire"))
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
    let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    // No AWSTraceHeader system attribute: only the request header, as tracekit sets it on the wire.
    sqs.send_message()
        .queue_url(&queue)
        .message_body("{}")
        .customize()
        .mutate_request(move |request| {
            request.headers_mut().insert("X-Amzn-Trace-Id", header);
        })
        .send()
        .await
        .expect("send");
    let received = sqs
        .receive_message()
        .queue_url(&queue)
        .message_system_attribute_names(
            aws_sdk_sqs::types::MessageSystemAttributeName::AwsTraceHeader,
        )
        .wait_time_seconds(1)
        .send()
        .await
        .expect("receive");
    let message = received.messages().first().expect("one message");
    let copied = message
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::AwsTraceHeader))
        .map(String::as_str);
    assert_eq!(copied, Some(header));
}
