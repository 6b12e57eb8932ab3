//! The orders flow, end to end: the real `api` and `worker` binaries as Lambda processes against the
//! local stack, and the harness doing what Lambda's SQS event source mapping does in between.
//!
//! [`Flow::start`] creates a queue of its own (so no other test's messages reach the worker) and
//! spawns both functions with the export settings a caller chooses. [`Flow::post_order`] invokes the
//! api with an API Gateway v2 event under a chosen `Lambda-Runtime-Trace-Id`; [`Flow::deliver`]
//! receives what is in the queue, builds the SQS event Lambda would send (`attributes.AWSTraceHeader`,
//! `messageAttributes`), invokes the worker and, like the event source mapping, deletes the messages
//! the worker did not report in `batchItemFailures`.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use serde_json::{Value, json};

use crate::runtime_api::{FunctionProcess, Invocation, InvocationOutcome};
use crate::stack::{self, Service};
use crate::{Error, Result};

/// The account id LocalStack derives from the access key `test`.
const LOCAL_ACCOUNT: &str = "000000000000";

/// The two functions and their queue.
#[derive(Debug)]
pub struct Flow {
    /// The api function process.
    pub api: FunctionProcess,
    /// The worker function process.
    pub worker: FunctionProcess,
    /// The flow's own queue.
    pub queue_url: String,
    sqs: aws_sdk_sqs::Client,
}

/// What one [`Flow::deliver`] did.
#[derive(Debug)]
pub struct Delivery {
    /// The SQS event the worker was invoked with.
    pub event: Value,
    /// What the worker answered.
    pub outcome: InvocationOutcome,
    /// Message ids the worker reported failed (left in the queue for redelivery).
    pub failed: Vec<String>,
}

impl Flow {
    /// Creates the flow's queue (visibility timeout `visibility`, so failed messages come back soon)
    /// and spawns both functions with the stack's endpoints, the resource names and `export_env`.
    pub async fn start(export_env: &[(&str, String)], visibility: Duration) -> Result<Flow> {
        stack::require_localstack().await;
        stack::require_moto().await;
        let sqs = stack::sqs_client().await;
        let queue_url = sqs
            .create_queue()
            .queue_name(stack::unique_name("flow-orders"))
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                visibility.as_secs().to_string(),
            )
            .send()
            .await
            .map_err(|e| Error::Invalid(format!("creating the flow's queue: {e:?}")))?
            .queue_url
            .ok_or_else(|| Error::Invalid("SQS returned no queue URL".into()))?;
        let common = |service: &str| -> Vec<(String, String)> {
            let mut env = vec![
                ("AWS_ENDPOINT_URL_S3".into(), stack::endpoint(Service::S3)),
                ("AWS_ENDPOINT_URL_SQS".into(), stack::endpoint(Service::Sqs)),
                (
                    "AWS_ENDPOINT_URL_DYNAMODB".into(),
                    stack::endpoint(Service::DynamoDb),
                ),
                ("AWS_ACCESS_KEY_ID".into(), "test".into()),
                ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
                ("ORDERS_TABLE".into(), stack::resource("ORDERS_TABLE")),
                ("RECEIPTS_BUCKET".into(), stack::resource("RECEIPTS_BUCKET")),
                ("ORDERS_QUEUE_URL".into(), queue_url.clone()),
                ("OTEL_SERVICE_NAME".into(), service.into()),
            ];
            env.extend(export_env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
            env
        };
        let api = FunctionProcess::spawn(&stack::function_binary("api"), &common("tracekit-api"))?;
        let worker = FunctionProcess::spawn(
            &stack::function_binary("worker"),
            &common("tracekit-worker"),
        )?;
        Ok(Flow {
            api,
            worker,
            queue_url,
            sqs,
        })
    }

    /// Invokes the api with `POST /orders` and `body` (any JSON, valid or not) under `trace_header`.
    pub async fn post_order(&self, body: &Value, trace_header: &str) -> Result<InvocationOutcome> {
        self.post_event(Self::order_event(body)?, trace_header)
            .await
    }

    /// The `POST /orders` API Gateway event with `body`, for a test to add headers or a query to.
    pub fn order_event(body: &Value) -> Result<Value> {
        let mut event = sample_event("apigw-v2-post-order.json")?;
        event["body"] = Value::from(body.to_string());
        Ok(event)
    }

    /// Invokes the api with an API Gateway event under `trace_header`.
    pub async fn post_event(&self, event: Value, trace_header: &str) -> Result<InvocationOutcome> {
        self.api
            .invoke(Invocation::json(event).trace_header(trace_header))
            .await
    }

    /// Receives up to ten messages (waiting up to `wait` for the first), invokes the worker with them
    /// under `trace_header`, and deletes those it did not report failed. `None` when the queue
    /// stayed empty.
    pub async fn deliver(&self, trace_header: &str, wait: Duration) -> Result<Option<Delivery>> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(i32::try_from(wait.as_secs()).unwrap_or(20).clamp(0, 20))
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| Error::Invalid(format!("receiving from the flow's queue: {e:?}")))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(None);
        }
        let queue_name = self.queue_url.rsplit('/').next().unwrap_or_default();
        let arn = format!(
            "arn:aws:sqs:{}:{LOCAL_ACCOUNT}:{queue_name}",
            stack::region()
        );
        let records: Vec<Value> = messages
            .iter()
            .map(|message| sqs_record(message, &arn))
            .collect();
        let event = json!({ "Records": records });
        let outcome = self
            .worker
            .invoke(Invocation::json(event.clone()).trace_header(trace_header))
            .await?;
        let failed: Vec<String> = match &outcome {
            InvocationOutcome::Response(body) => serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("batchItemFailures").cloned())
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
                .collect(),
            // A failed invocation fails the whole batch: nothing is deleted.
            _ => messages
                .iter()
                .filter_map(|m| m.message_id.clone())
                .collect(),
        };
        for message in &messages {
            let id = message.message_id.clone().unwrap_or_default();
            if failed.contains(&id) {
                continue;
            }
            if let Some(handle) = &message.receipt_handle {
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| Error::Invalid(format!("deleting {id}: {e:?}")))?;
            }
        }
        Ok(Some(Delivery {
            event,
            outcome,
            failed,
        }))
    }

    /// Sends `body` to the flow's queue as a producer outside the flow would: with a W3C
    /// `traceparent` message attribute and no `AWSTraceHeader` (an OpenTelemetry producer's way).
    pub async fn send_as_w3c_producer(&self, body: &str, traceparent: &str) -> Result<()> {
        let attribute = aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(traceparent)
            .build()
            .map_err(|e| Error::Invalid(format!("a traceparent attribute: {e}")))?;
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes("traceparent", attribute)
            .send()
            .await
            .map_err(|e| Error::Invalid(format!("sending as a W3C producer: {e:?}")))?;
        Ok(())
    }

    /// Stops both functions and deletes the flow's queue.
    pub async fn shutdown(&self) -> Result<()> {
        self.api.shutdown().await?;
        self.worker.shutdown().await?;
        self.sqs
            .delete_queue()
            .queue_url(&self.queue_url)
            .send()
            .await
            .map_err(|e| Error::Invalid(format!("deleting the flow's queue: {e:?}")))?;
        Ok(())
    }
}

/// A sample event from `events/`.
pub fn sample_event(name: &str) -> Result<Value> {
    let path = stack::workspace_root().join("events").join(name);
    let text = std::fs::read_to_string(&path).map_err(Error::io(path.display().to_string()))?;
    serde_json::from_str(&text).map_err(|e| Error::Invalid(format!("{name}: {e}")))
}

/// The record Lambda's event source mapping builds from a received message.
fn sqs_record(message: &aws_sdk_sqs::types::Message, arn: &str) -> Value {
    let attributes: HashMap<String, String> = message
        .attributes
        .iter()
        .flatten()
        .map(|(name, value)| (name.as_str().to_owned(), value.clone()))
        .collect();
    let message_attributes: HashMap<String, Value> = message
        .message_attributes
        .iter()
        .flatten()
        .map(|(name, value)| {
            (
                name.clone(),
                json!({
                    "stringValue": value.string_value,
                    "stringListValues": [],
                    "binaryListValues": [],
                    "dataType": value.data_type,
                }),
            )
        })
        .collect();
    json!({
        "messageId": message.message_id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.md5_of_body,
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": stack::region(),
    })
}
