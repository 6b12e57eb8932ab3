//! The notifier with the sample event from `events/`, and against the local stack (S3 on
//! LocalStack): the notification written, a bad message failing on its own span.

use integration_tests::{FunctionProcess, Invocation, InvocationOutcome, stack};
use opentelemetry::trace::Status;
use serde_json::Value;
use std::time::Duration;
use tracekit::sns::{SnsBatch, SnsFailure, SnsProcessor};
use tracekit::testing::TestTelemetry;
use tracing::Instrument;

fn sample() -> Value {
    let path = stack::workspace_root().join("events/sns-order-processed.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("the sample event is JSON")
}

#[test]
fn the_sample_event_is_an_order_processed_message_with_its_producers_context() {
    let _test = TestTelemetry::new(); // the propagators
    let event: aws_lambda_events::sns::SnsEvent =
        serde_json::from_value(sample()).expect("an SNS event");
    let message = &event.records[0].sns;
    let parsed = notifier::handler::parse(&message.message).expect("order.processed");
    assert_eq!(parsed.order_id, "order-4");
    let producer = tracekit::sns::producer_context(message).expect("the traceparent attribute");
    assert_eq!(
        producer.trace_id().to_string(),
        "6740a1b55759e988bd862e3fe1be46a9"
    );
}

/// The notifier's own process under the Runtime API harness: a message it cannot use fails the
/// invocation, and Lambda (its console, the dead-letter queue's `ErrorCode`) is told the message's
/// own error by name, not lambda_runtime's `&alloc::boxed::Box<dyn core::error::Error + ..>`.
/// Nothing is called: no stack needed.
#[tokio::test]
async fn lambda_is_told_a_bad_messages_error_by_name() {
    let mut event = sample();
    event["Records"][0]["Sns"]["Message"] = Value::from("not an order");
    let env = [
        ("RECEIPTS_BUCKET", "receipts"),
        ("OTEL_TRACES_EXPORTER", "none"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let function = FunctionProcess::spawn(env!("CARGO_BIN_EXE_notifier").as_ref(), &env)
        .expect("the notifier starts");
    let outcome = function
        .invoke(Invocation::json(event))
        .await
        .expect("the notifier answers");
    let InvocationOutcome::Error {
        error_type,
        error_message,
        ..
    } = &outcome
    else {
        panic!("the invocation fails: {outcome:?}");
    };
    assert_eq!(error_type, "MalformedMessage");
    assert!(
        error_message.starts_with("the message is not an order.processed event: "),
        "the message's own error: {error_message}"
    );
    assert!(function.shutdown().await.expect("exit").success());
}

#[tokio::test]
#[ignore = "needs the local stack (LocalStack): `make test` runs it"]
async fn the_notification_is_written_and_a_bad_message_fails_alone() {
    stack::require_localstack().await;
    let test = TestTelemetry::new();
    let app = notifier::handler::App {
        s3: stack::traced_s3_client().await,
        bucket: stack::resource("RECEIPTS_BUCKET"),
    };
    let order_id = stack::unique_name("order");
    let mut good = sample()["Records"][0].clone();
    good["Sns"]["Message"] = Value::from(
        serde_json::json!({"type": "order.processed", "order_id": order_id, "processed_at": 7})
            .to_string(),
    );
    let mut bad = good.clone();
    bad["Sns"]["MessageId"] = Value::from("m-bad");
    bad["Sns"]["Message"] = Value::from("not an order");
    let batch = SnsBatch {
        records: vec![good, bad],
    };
    let outcome = SnsProcessor::default()
        .process(batch, |message| notifier::handler::process(&app, message))
        .instrument(tracing::info_span!("invocation", otel.kind = "server"))
        .await;
    assert!(
        matches!(&outcome, Err(SnsFailure::Failed { failed, total: 2, .. }) if failed == &["m-bad"]),
        "{outcome:?}"
    );

    let object = stack::s3_client()
        .await
        .get_object()
        .bucket(stack::resource("RECEIPTS_BUCKET"))
        .key(notifier::handler::notification_key(&order_id))
        .send()
        .await
        .expect("the notification exists");
    let bytes = object.body.collect().await.expect("body").into_bytes();
    let written: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(written["order_id"], order_id.as_str());
    assert_eq!(written["processed_at"], 7);

    test.telemetry().force_flush(Duration::from_secs(5)).await;
    let spans = test.spans();
    let process: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "process tracekit-order-events")
        .collect();
    assert_eq!(process.len(), 2, "one process span per message");
    let failed: Vec<_> = process
        .iter()
        .filter(|s| matches!(s.status, Status::Error { .. }))
        .collect();
    assert_eq!(failed.len(), 1);
    let put = spans
        .iter()
        .find(|s| s.name == "S3.PutObject")
        .expect("the S3 span");
    let good = process
        .iter()
        .find(|s| !matches!(s.status, Status::Error { .. }))
        .expect("the good message's span");
    assert_eq!(
        put.parent_span_id,
        good.span_context.span_id(),
        "only the good message reached S3"
    );
    assert_ne!(put.parent_span_id, failed[0].span_context.span_id());
}
