//! The worker against the local stack (DynamoDB on moto, S3 and SNS on LocalStack), with the sample
//! events from `events/`: partial batch failures, malformed records, redelivery, and the
//! `order.processed` notifications it publishes.

use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::stack;
use opentelemetry::trace::Status;
use serde_json::{Value, json};
use std::time::Duration;
use tracekit::sqs::{BatchProcessor, Carrier, SqsBatch, SqsBatchResponse, SqsMessage};
use tracekit::testing::TestTelemetry;
use tracing::Instrument;
use worker::handler::{self, App};

fn event(name: &str) -> Value {
    let path = stack::workspace_root().join("events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn sqs_events_round_trip_and_carry_context_in_each_carrier() {
    let _test = TestTelemetry::new(); // the propagators
    for (name, carrier) in [
        ("sqs-awstraceheader.json", Carrier::AwsTraceHeader),
        ("sqs-w3c-attributes.json", Carrier::MessageAttributes),
        ("sqs-sns-envelope.json", Carrier::SnsEnvelope),
    ] {
        let original = event(name);
        let typed: SqsEvent = serde_json::from_value(original.clone()).expect(name);
        let again: SqsEvent =
            serde_json::from_value(serde_json::to_value(&typed).expect(name)).expect(name);
        assert_eq!(typed, again, "{name} survives a serde round trip");
        for message in &typed.records {
            let found = tracekit::sqs::producer_context_with_carrier(message).map(|(_, c)| c);
            assert_eq!(found, Some(carrier), "{name}");
        }
        let batch: SqsBatch = serde_json::from_value(original).expect(name);
        assert_eq!(batch.records.len(), typed.records.len());
    }
    let malformed = event("sqs-malformed.json");
    assert!(
        serde_json::from_value::<SqsEvent>(malformed.clone()).is_err(),
        "read as one SqsEvent, one bad record would fail the whole batch"
    );
    let batch: SqsBatch = serde_json::from_value(malformed).expect("read record by record");
    assert_eq!(batch.records.len(), 3);
}

struct Fixture {
    app: App,
    test: TestTelemetry,
    /// The worker's topic of its own, with a raw-delivery queue that receives what it publishes.
    topic: stack::TopicSink,
}

impl Fixture {
    async fn new() -> Fixture {
        stack::require_moto().await;
        stack::require_localstack().await;
        let test = TestTelemetry::new();
        let topic = stack::topic_to_queue("worker-order-events", true).await;
        let app = App {
            dynamodb: stack::traced_dynamodb_client().await,
            s3: stack::traced_s3_client().await,
            sns: stack::traced_sns_client().await,
            table: stack::resource("ORDERS_TABLE"),
            bucket: stack::resource("RECEIPTS_BUCKET"),
            topic_arn: topic.topic_arn.clone(),
        };
        Fixture { app, test, topic }
    }

    /// Every notification the topic delivered within a few seconds: body and attributes.
    async fn notifications(&self) -> Vec<aws_sdk_sqs::types::Message> {
        let sqs = stack::sqs_client().await;
        let mut messages = Vec::new();
        for _ in 0..3 {
            let received = sqs
                .receive_message()
                .queue_url(&self.topic.queue_url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receive");
            messages.extend(received.messages.unwrap_or_default());
        }
        messages
    }

    async fn put_order(&self, id: &str) {
        self.app
            .dynamodb
            .put_item()
            .table_name(&self.app.table)
            .item("id", AttributeValue::S(id.into()))
            .item("status", AttributeValue::S("created".into()))
            .send()
            .await
            .expect("order");
    }

    async fn put_receipt(&self, id: &str) {
        let receipt = json!({"id": id, "customer": "ada", "items": [], "total_cents": 1650});
        self.app
            .s3
            .put_object()
            .bucket(&self.app.bucket)
            .key(format!("receipts/{id}.json"))
            .body(receipt.to_string().into_bytes().into())
            .send()
            .await
            .expect("receipt");
    }

    async fn order(&self, id: &str) -> std::collections::HashMap<String, AttributeValue> {
        self.app
            .dynamodb
            .get_item()
            .table_name(&self.app.table)
            .key("id", AttributeValue::S(id.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("get")
            .item
            .expect("the order exists")
    }

    async fn run(&self, records: Vec<Value>) -> SqsBatchResponse {
        let app = &self.app;
        BatchProcessor::default()
            .concurrency(4)
            .process(SqsBatch { records }, |message: SqsMessage| {
                handler::process(app, message)
            })
            .instrument(tracing::info_span!("invocation", otel.kind = "server"))
            .await
    }
}

fn record(message_id: &str, order_id: &str) -> Value {
    let mut record = event("sqs-awstraceheader.json")["Records"][0].clone();
    record["messageId"] = Value::from(message_id);
    record["body"] = Value::from(
        json!({"type": "order.created", "order_id": order_id, "receipt_key": format!("receipts/{order_id}.json")})
            .to_string(),
    );
    record
}

fn failed(response: &SqsBatchResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

#[tokio::test]
#[ignore = "needs the local stack (LocalStack and moto): `make test` runs it"]
async fn only_the_failed_and_malformed_records_are_reported() {
    let fx = Fixture::new().await;
    let good = stack::unique_name("order");
    let no_order = stack::unique_name("order");
    let no_receipt = stack::unique_name("order");
    fx.put_order(&good).await;
    fx.put_receipt(&good).await;
    fx.put_receipt(&no_order).await;
    fx.put_order(&no_receipt).await;

    let mut records = vec![
        record("m-good", &good),
        record("m-no-order", &no_order),
        record("m-no-receipt", &no_receipt),
    ];
    // The malformed sample: its first record names an order that does not exist here, the second
    // has a body that is not JSON, the third has message attributes that are not a map: no carrier,
    // so it is processed without its producer's context, and fails as its order does (no receipt).
    records.extend(
        event("sqs-malformed.json")["Records"]
            .as_array()
            .expect("records")
            .iter()
            .cloned(),
    );
    let response = fx.run(records).await;
    assert_eq!(
        failed(&response),
        vec![
            "m-no-order",
            "m-no-receipt",
            "4a5b3d84-0000-4000-8000-000000000001",
            "4a5b3d84-0000-4000-8000-000000000002",
            "4a5b3d84-0000-4000-8000-000000000003",
        ],
        "exactly the failures, in batch order"
    );
    let order = fx.order(&good).await;
    assert_eq!(
        order["status"].as_s().ok().map(String::as_str),
        Some("processed")
    );

    fx.test
        .telemetry()
        .force_flush(Duration::from_secs(5))
        .await;
    let spans = fx.test.spans();
    let process: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "process tracekit-orders")
        .collect();
    assert_eq!(process.len(), 6, "one process span per record");
    let mut error_types: Vec<String> = process
        .iter()
        .filter(|s| matches!(s.status, Status::Error { .. }))
        .filter_map(|s| {
            s.attributes
                .iter()
                .find(|kv| kv.key.as_str() == "error.type")
                .map(|kv| kv.value.as_str().into_owned())
        })
        .collect();
    error_types.sort();
    assert_eq!(
        error_types,
        vec![
            "BadReceipt",
            "BadReceipt",
            "BadReceipt",
            "MalformedBody",
            "OrderMissing"
        ]
    );
    let get_objects = spans.iter().filter(|s| s.name == "S3.GetObject").count();
    // The good order, the two whose order or receipt is missing, and the two of the sample the
    // handler reads (the first, and the one without a carrier): the record whose body is not JSON
    // never reaches S3.
    assert_eq!(
        get_objects, 5,
        "only records the handler could read reach S3"
    );
}

#[tokio::test]
#[ignore = "needs the local stack (LocalStack and moto): `make test` runs it"]
async fn a_redelivered_message_succeeds_without_changing_the_order_again() {
    let fx = Fixture::new().await;
    let id = stack::unique_name("order");
    fx.put_order(&id).await;
    fx.put_receipt(&id).await;
    let first = fx.run(vec![record("m-1", &id)]).await;
    assert!(first.batch_item_failures.is_empty());
    let processed_at = fx.order(&id).await["processed_at"].clone();
    let again = fx.run(vec![record("m-1", &id)]).await;
    assert!(
        again.batch_item_failures.is_empty(),
        "redelivery is not a failure"
    );
    assert_eq!(
        fx.order(&id).await["processed_at"],
        processed_at,
        "nothing changes the second time"
    );

    // Each delivery publishes order.processed with the order's one processed_at, so a publish that
    // failed the first time is made by the retry.
    let notifications = fx.notifications().await;
    assert_eq!(notifications.len(), 2, "{notifications:#?}");
    for notification in &notifications {
        let body: Value =
            serde_json::from_str(notification.body.as_deref().unwrap_or_default()).expect("JSON");
        assert_eq!(body["type"], "order.processed");
        assert_eq!(body["order_id"], id.as_str());
        assert_eq!(
            body["processed_at"].to_string(),
            processed_at.as_n().expect("a number").as_str()
        );
        let attributes = notification.message_attributes.clone().unwrap_or_default();
        assert_eq!(
            attributes["type"].string_value.as_deref(),
            Some("order.processed"),
            "the attribute filter policies match"
        );
        assert!(
            attributes.contains_key("traceparent"),
            "the interceptor carried the context: {attributes:?}"
        );
    }
}
