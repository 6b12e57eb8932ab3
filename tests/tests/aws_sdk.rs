//! tracekit's SDK interceptor against the local stack: DynamoDB on moto, S3 and SQS on LocalStack.
//! Spans are read from tracekit's in-memory exporter (`testing` feature) after a flush.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ReturnConsumedCapacity, ScalarAttributeType,
};
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};
use integration_tests::stack;
use opentelemetry::{
    Value,
    trace::{SpanKind, Status},
};
use opentelemetry_sdk::trace::SpanData;
use std::time::Duration;
use tracekit::testing::TestTelemetry;
use tracing::Instrument;

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn string_array(values: &[&str]) -> Value {
    Value::Array(
        values
            .iter()
            .map(|v| opentelemetry::StringValue::from(v.to_string()))
            .collect::<Vec<_>>()
            .into(),
    )
}

fn attr_str(span: &SpanData, key: &str) -> Option<String> {
    attr(span, key).map(|v| v.as_str().into_owned())
}

async fn spans(test: &TestTelemetry) -> Vec<SpanData> {
    test.telemetry().force_flush(Duration::from_secs(5)).await;
    test.spans()
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

#[tokio::test]
async fn dynamodb_calls_are_client_spans_with_table_names_and_modeled_errors() {
    stack::require_moto().await;
    let test = TestTelemetry::new();
    let sdk = stack::sdk_config().await;
    let client = tracekit::aws::dynamodb_client(&sdk);
    let table = stack::unique_name("orders");
    let other = stack::unique_name("audit");
    let handler = tracing::info_span!("handler");
    async {
        for name in [&table, &other] {
            client
                .create_table()
                .table_name(name)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name("id")
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .expect("definition"),
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("id")
                        .key_type(KeyType::Hash)
                        .build()
                        .expect("key"),
                )
                .send()
                .await
                .expect("create table");
        }
        client
            .put_item()
            .table_name(&table)
            .item("id", AttributeValue::S("42".into()))
            .item("secret", AttributeValue::S("card-4111".into()))
            .send()
            .await
            .expect("put");
        let conflict = client
            .put_item()
            .table_name(&table)
            .item("id", AttributeValue::S("42".into()))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await;
        assert!(conflict.is_err(), "the condition fails");
        client
            .transact_write_items()
            .transact_items(
                aws_sdk_dynamodb::types::TransactWriteItem::builder()
                    .put(
                        aws_sdk_dynamodb::types::Put::builder()
                            .table_name(&table)
                            .item("id", AttributeValue::S("43".into()))
                            .build()
                            .expect("put"),
                    )
                    .build(),
            )
            .transact_items(
                aws_sdk_dynamodb::types::TransactWriteItem::builder()
                    .put(
                        aws_sdk_dynamodb::types::Put::builder()
                            .table_name(&other)
                            .item("id", AttributeValue::S("1".into()))
                            .build()
                            .expect("put"),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("transact");
        client
            .get_item()
            .table_name(&table)
            .key("id", AttributeValue::S("42".into()))
            .consistent_read(true)
            .projection_expression("id")
            .send()
            .await
            .expect("get");
        client
            .update_item()
            .table_name(&table)
            .key("id", AttributeValue::S("42".into()))
            .update_expression("SET #s = :s")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":s", AttributeValue::S("card-4111-processed".into()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .expect("update");
        client
            .query()
            .table_name(&table)
            .key_condition_expression("id = :id")
            .expression_attribute_values(":id", AttributeValue::S("42".into()))
            .limit(5)
            .send()
            .await
            .expect("query");
        let write = |id: &str| {
            aws_sdk_dynamodb::types::WriteRequest::builder()
                .put_request(
                    aws_sdk_dynamodb::types::PutRequest::builder()
                        .item("id", AttributeValue::S(id.into()))
                        .build()
                        .expect("put request"),
                )
                .build()
        };
        client
            .batch_write_item()
            .request_items(&table, vec![write("50"), write("51")])
            .request_items(&other, vec![write("52")])
            .send()
            .await
            .expect("batch write");
    }
    .instrument(handler.clone())
    .await;
    drop(handler);

    let spans = spans(&test).await;
    let handler = named(&spans, "handler")[0];
    let puts = named(&spans, "DynamoDB.PutItem");
    assert_eq!(puts.len(), 2, "{spans:#?}");
    for put in &puts {
        assert_eq!(put.span_kind, SpanKind::Client);
        assert_eq!(
            put.parent_span_id,
            handler.span_context.span_id(),
            "child of the caller's span"
        );
        assert_eq!(put.span_context.trace_id(), handler.span_context.trace_id());
        assert_eq!(attr_str(put, "rpc.system").as_deref(), Some("aws-api"));
        assert_eq!(attr_str(put, "rpc.system.name").as_deref(), Some("aws-api"));
        assert_eq!(attr_str(put, "rpc.service").as_deref(), Some("DynamoDB"));
        assert_eq!(attr_str(put, "rpc.method").as_deref(), Some("PutItem"));
        assert_eq!(
            attr_str(put, "db.system.name").as_deref(),
            Some("aws.dynamodb")
        );
        assert_eq!(attr_str(put, "cloud.region").as_deref(), Some("us-east-1"));
        assert_eq!(
            attr_str(put, "server.address").as_deref(),
            Some("127.0.0.1")
        );
        assert!(attr(put, "aws.request_id").is_some(), "request id recorded");
        assert_eq!(attr(put, "aws.attempts"), Some(&Value::I64(1)));
        assert_eq!(
            attr(put, "aws.dynamodb.table_names"),
            Some(&string_array(&[table.as_str()]))
        );
        assert!(
            !format!("{put:?}").contains("card-4111"),
            "no item values recorded"
        );
    }
    let failed = puts
        .iter()
        .find(|s| s.status != Status::Unset)
        .expect("the failed put");
    assert!(matches!(failed.status, Status::Error { .. }));
    assert_eq!(
        attr_str(failed, "error.type").as_deref(),
        Some("ConditionalCheckFailedException")
    );
    assert_eq!(
        attr(failed, "http.response.status_code"),
        Some(&Value::I64(400))
    );
    assert!(failed.events.iter().any(|e| e.name == "exception"));

    let mut tables = [table.clone(), other.clone()];
    tables.sort();
    let tables: Vec<&str> = tables.iter().map(String::as_str).collect();
    for name in ["DynamoDB.TransactWriteItems", "DynamoDB.BatchWriteItem"] {
        let span = named(&spans, name)[0];
        assert_eq!(
            attr(span, "aws.dynamodb.table_names"),
            Some(&string_array(&tables)),
            "{name} names every table it touches"
        );
        assert_eq!(span.span_kind, SpanKind::Client);
    }

    let get = named(&spans, "DynamoDB.GetItem")[0];
    assert_eq!(
        attr(get, "aws.dynamodb.consistent_read"),
        Some(&Value::Bool(true))
    );
    assert_eq!(
        attr_str(get, "aws.dynamodb.projection").as_deref(),
        Some("id")
    );
    assert!(
        attr(get, "aws.dynamodb.consumed_capacity").is_none(),
        "capacity only when the caller asks for it"
    );

    let update = named(&spans, "DynamoDB.UpdateItem")[0];
    let Some(Value::Array(opentelemetry::Array::String(capacity))) =
        attr(update, "aws.dynamodb.consumed_capacity")
    else {
        panic!("consumed capacity recorded as a string array: {update:#?}");
    };
    let capacity: serde_json::Value =
        serde_json::from_str(capacity[0].as_str()).expect("capacity is JSON");
    assert_eq!(capacity["TableName"], table.as_str());
    assert!(capacity["CapacityUnits"].as_f64().is_some(), "{capacity}");
    assert!(
        !format!("{update:?}").contains("card-4111"),
        "no update values recorded"
    );

    let query = named(&spans, "DynamoDB.Query")[0];
    assert_eq!(attr(query, "aws.dynamodb.limit"), Some(&Value::I64(5)));
    assert_eq!(attr(query, "aws.dynamodb.count"), Some(&Value::I64(1)));
    assert_eq!(
        attr(query, "aws.dynamodb.scanned_count"),
        Some(&Value::I64(1))
    );
}

#[tokio::test]
async fn s3_calls_record_bucket_and_key_and_a_missing_key_is_an_error() {
    stack::require_localstack().await;
    let test = TestTelemetry::new();
    let client = stack::traced_s3_client().await;
    let bucket = stack::unique_name("receipts");
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket");
    client
        .put_object()
        .bucket(&bucket)
        .key("orders/42.json")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(
            b"{\"card\":\"card-4111\"}",
        ))
        .send()
        .await
        .expect("put");
    client
        .get_object()
        .bucket(&bucket)
        .key("orders/42.json")
        .send()
        .await
        .expect("get");
    let missing = client
        .head_object()
        .bucket(&bucket)
        .key("orders/missing.json")
        .send()
        .await;
    assert!(missing.is_err());

    let spans = spans(&test).await;
    for name in ["S3.PutObject", "S3.GetObject", "S3.HeadObject"] {
        let span = named(&spans, name);
        assert_eq!(span.len(), 1, "{name}: {spans:#?}");
        assert_eq!(
            attr_str(span[0], "aws.s3.bucket").as_deref(),
            Some(bucket.as_str()),
            "{name}"
        );
        assert!(
            !format!("{:?}", span[0]).contains("card-4111"),
            "{name}: no object body recorded"
        );
    }
    let head = named(&spans, "S3.HeadObject")[0];
    assert_eq!(
        attr_str(head, "aws.s3.key").as_deref(),
        Some("orders/missing.json")
    );
    assert_eq!(
        attr(head, "http.response.status_code"),
        Some(&Value::I64(404))
    );
    assert_eq!(attr_str(head, "error.type").as_deref(), Some("NotFound"));
}

fn user_attributes(n: usize) -> Vec<(String, MessageAttributeValue)> {
    (0..n)
        .map(|i| {
            (
                format!("user{i}"),
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(format!("value-{i}"))
                    .build()
                    .expect("attribute"),
            )
        })
        .collect()
}

#[tokio::test]
async fn sqs_send_carries_the_producer_context_without_losing_user_attributes() {
    stack::require_localstack().await;
    let test = TestTelemetry::new();
    let sdk = stack::sdk_config().await;
    let client = tracekit::aws::sqs_client(&sdk);
    let queue_name = stack::unique_name("orders");
    let queue_url = client
        .create_queue()
        .queue_name(&queue_name)
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");

    for user_count in [0usize, 9, 10] {
        test.reset();
        let mut send = client
            .send_message()
            .queue_url(&queue_url)
            .message_body("secret body");
        for (key, value) in user_attributes(user_count) {
            send = send.message_attributes(key, value);
        }
        let sent = send.send().await.expect("send");

        let received = client
            .receive_message()
            .queue_url(&queue_url)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        let message = received
            .messages
            .unwrap_or_default()
            .into_iter()
            .next()
            .expect("a message");
        client
            .delete_message()
            .queue_url(&queue_url)
            .receipt_handle(message.receipt_handle.clone().unwrap_or_default())
            .send()
            .await
            .expect("delete");

        let attributes = message.message_attributes.clone().unwrap_or_default();
        for (key, value) in user_attributes(user_count) {
            assert_eq!(
                attributes.get(&key),
                Some(&value),
                "{user_count}: {key} arrives intact"
            );
        }
        assert!(
            attributes.len() <= 10,
            "{user_count}: at most 10 attributes"
        );
        assert_eq!(
            attributes.contains_key("traceparent"),
            user_count < 10,
            "{user_count}: traceparent only where it fits"
        );

        let spans = spans(&test).await;
        let producer = named(&spans, "SQS.SendMessage")[0];
        assert_eq!(producer.span_kind, SpanKind::Producer);
        assert_eq!(
            attr_str(producer, "messaging.system").as_deref(),
            Some("aws_sqs")
        );
        assert_eq!(
            attr_str(producer, "messaging.operation.name").as_deref(),
            Some("send")
        );
        assert_eq!(
            attr_str(producer, "messaging.destination.name").as_deref(),
            Some(queue_name.as_str())
        );
        assert_eq!(
            attr_str(producer, "aws.sqs.queue.url").as_deref(),
            Some(queue_url.as_str())
        );
        assert_eq!(
            attr_str(producer, "messaging.message.id"),
            sent.message_id.clone()
        );
        assert!(
            !format!("{producer:?}").contains("secret body"),
            "no message body recorded"
        );

        let header = message
            .attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::AwsTraceHeader))
            .cloned()
            .expect("AWSTraceHeader always present");
        assert!(
            header.contains(&format!("Parent={}", producer.span_context.span_id())),
            "{user_count}: AWSTraceHeader names the PRODUCER span: {header}"
        );
        if let Some(traceparent) = attributes
            .get("traceparent")
            .and_then(|v| v.string_value.clone())
        {
            assert!(
                traceparent.contains(&producer.span_context.span_id().to_string()),
                "{traceparent}"
            );
        }
        let receive = named(&spans, "SQS.ReceiveMessage")[0];
        assert_eq!(
            attr_str(receive, "messaging.operation.name").as_deref(),
            Some("receive")
        );
        assert_eq!(
            attr(receive, "messaging.batch.message_count"),
            Some(&Value::I64(1))
        );
    }
}

#[tokio::test]
async fn sqs_batch_entries_each_carry_the_context() {
    stack::require_localstack().await;
    let test = TestTelemetry::new();
    let sdk = stack::sdk_config().await;
    let client = tracekit::aws::sqs_client(&sdk);
    let queue_url = client
        .create_queue()
        .queue_name(stack::unique_name("batch"))
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
    let mut batch = client.send_message_batch().queue_url(&queue_url);
    for i in 0..3 {
        batch = batch.entries(
            aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                .id(format!("m{i}"))
                .message_body("x")
                .build()
                .expect("entry"),
        );
    }
    batch.send().await.expect("batch");
    let received = client
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
        .wait_time_seconds(1)
        .send()
        .await
        .expect("receive");
    let spans = spans(&test).await;
    let producer = named(&spans, "SQS.SendMessageBatch")[0];
    assert_eq!(producer.span_kind, SpanKind::Producer);
    assert_eq!(
        attr(producer, "messaging.batch.message_count"),
        Some(&Value::I64(3))
    );
    let messages = received.messages.unwrap_or_default();
    assert!(!messages.is_empty());
    for message in messages {
        let header = message
            .attributes
            .and_then(|a| a.get(&MessageSystemAttributeName::AwsTraceHeader).cloned())
            .expect("AWSTraceHeader");
        assert!(header.contains(&producer.span_context.span_id().to_string()));
        assert!(
            message
                .message_attributes
                .unwrap_or_default()
                .contains_key("traceparent")
        );
    }
}
