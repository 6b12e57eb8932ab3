//! The orders flow, end to end: the real `api`, `worker` and `notifier` binaries as Lambda processes
//! against the local stack, and the harness doing what Lambda's SQS event source mapping and SNS
//! trigger do in between.
//!
//! [`Flow::start`] creates a queue and an order events topic of its own (so no other test's
//! messages reach the functions), starts the payment provider's stand-in (a local HTTP server that
//! authorizes every order) and spawns the three functions with the export settings a caller
//! chooses. [`Flow::post_order`] invokes the
//! api with an API Gateway v2 event under a chosen `Lambda-Runtime-Trace-Id`; [`Flow::deliver`]
//! receives what is in the queue, builds the SQS event Lambda would send (`attributes.AWSTraceHeader`,
//! `messageAttributes`), invokes the worker and, like the event source mapping, deletes the messages
//! the worker did not report in `batchItemFailures`. [`Flow::notify`] takes what the worker
//! published: LocalStack delivers it to a queue subscribed to the topic (the SNS envelope, as SNS
//! hands it to Lambda), and the harness invokes the notifier with it as Lambda's SNS event.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use serde_json::{Value, json};

use crate::runtime_api::{FunctionProcess, Invocation, InvocationOutcome};
use crate::scripted::{Scripted, ScriptedEndpoint};
use crate::stack::{self, Service};
use crate::{Error, Result};

/// The account id LocalStack derives from the access key `test`.
const LOCAL_ACCOUNT: &str = "000000000000";

/// The namespace the stacks (template.yaml, infra/terraform) give the functions' metrics.
pub const METRICS_NAMESPACE: &str = "tracekit/orders";

/// The three functions, their queue and their topic.
#[derive(Debug)]
pub struct Flow {
    /// The api function process.
    pub api: FunctionProcess,
    /// The worker function process.
    pub worker: FunctionProcess,
    /// The notifier function process.
    pub notifier: FunctionProcess,
    /// The flow's own queue.
    pub queue_url: String,
    /// The flow's own order events topic, and the queue that stands in for the notifier's
    /// subscription.
    pub topic: stack::TopicSink,
    /// The payment provider the api calls (`PAYMENTS_URL`): it authorizes every order.
    pub payments: ScriptedEndpoint,
    sqs: aws_sdk_sqs::Client,
}

/// What one [`Flow::deliver`] or [`Flow::notify`] did.
#[derive(Debug)]
pub struct Delivery {
    /// The event the function was invoked with (SQS for the worker, SNS for the notifier).
    pub event: Value,
    /// What the function answered.
    pub outcome: InvocationOutcome,
    /// Message ids that failed: those the worker reported (left in the queue for redelivery), or
    /// the notification's SNS message id when the notifier failed.
    pub failed: Vec<String>,
}

impl Flow {
    /// Creates the flow's queue (visibility timeout `visibility`, so failed messages come back soon)
    /// and topic, and spawns the three functions with the stack's endpoints, the resource names and `export_env`.
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
        let topic = stack::topic_to_queue("flow-order-events", false).await;
        let payments = ScriptedEndpoint::start(vec![
            Scripted::json(201, r#"{"status":"authorized"}"#)
                .header("content-type", "application/json"),
        ])?;
        let common = |service: &str| -> Vec<(String, String)> {
            let mut env = vec![
                ("AWS_ENDPOINT_URL_S3".into(), stack::endpoint(Service::S3)),
                ("AWS_ENDPOINT_URL_SQS".into(), stack::endpoint(Service::Sqs)),
                ("AWS_ENDPOINT_URL_SNS".into(), stack::endpoint(Service::Sns)),
                (
                    "AWS_ENDPOINT_URL_DYNAMODB".into(),
                    stack::endpoint(Service::DynamoDb),
                ),
                ("AWS_ACCESS_KEY_ID".into(), "test".into()),
                ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
                ("ORDERS_TABLE".into(), stack::resource("ORDERS_TABLE")),
                ("RECEIPTS_BUCKET".into(), stack::resource("RECEIPTS_BUCKET")),
                ("ORDERS_QUEUE_URL".into(), queue_url.clone()),
                ("ORDER_EVENTS_TOPIC_ARN".into(), topic.topic_arn.clone()),
                ("PAYMENTS_URL".into(), payments.url()),
                ("OTEL_SERVICE_NAME".into(), service.into()),
                // As the stacks set it: the functions' metrics are written (embedded metric format).
                (
                    "TRACEKIT_METRICS_NAMESPACE".into(),
                    METRICS_NAMESPACE.into(),
                ),
            ];
            env.extend(export_env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
            env
        };
        let api = FunctionProcess::spawn(&stack::function_binary("api"), &common("tracekit-api"))?;
        let worker = FunctionProcess::spawn(
            &stack::function_binary("worker"),
            &common("tracekit-worker"),
        )?;
        let notifier = FunctionProcess::spawn(
            &stack::function_binary("notifier"),
            &common("tracekit-notifier"),
        )?;
        Ok(Flow {
            api,
            worker,
            notifier,
            queue_url,
            topic,
            payments,
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
        self.deliver_up_to(trace_header, 10, wait).await
    }

    /// [`Flow::deliver`] with up to `max` messages in the batch, as the event source mapping builds
    /// one with a batching window (up to 10,000 from a standard queue): receives until `max` or the
    /// queue is empty. Ten or fewer take one receive only: a second could see a message of the
    /// first again once a short visibility timeout has passed.
    pub async fn deliver_up_to(
        &self,
        trace_header: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Option<Delivery>> {
        let mut messages = Vec::new();
        while messages.len() < max {
            let first = messages.is_empty();
            let wanted = i32::try_from((max - messages.len()).min(10)).unwrap_or(10);
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(wanted)
                .wait_time_seconds(if first {
                    i32::try_from(wait.as_secs()).unwrap_or(20).clamp(0, 20)
                } else {
                    1
                })
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(|e| Error::Invalid(format!("receiving from the flow's queue: {e:?}")))?;
            let batch = received.messages.unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            messages.extend(batch);
            if max <= 10 {
                break;
            }
        }
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

    /// Takes the next notification the worker published to the flow's topic (waiting up to `wait`
    /// for it), and invokes the notifier with it as Lambda's SNS trigger does: one record, the SNS
    /// envelope under `Sns`, under `trace_header`. `None` when nothing was published.
    pub async fn notify(&self, trace_header: &str, wait: Duration) -> Result<Option<Delivery>> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.topic.queue_url)
            .max_number_of_messages(1)
            .wait_time_seconds(i32::try_from(wait.as_secs()).unwrap_or(20).clamp(0, 20))
            .send()
            .await
            .map_err(|e| Error::Invalid(format!("receiving from the topic's queue: {e:?}")))?;
        let Some(message) = received.messages.unwrap_or_default().into_iter().next() else {
            return Ok(None);
        };
        let envelope: Value = serde_json::from_str(message.body.as_deref().unwrap_or_default())
            .map_err(|e| Error::Invalid(format!("the SNS envelope: {e}")))?;
        let sns_id = envelope["MessageId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let event = json!({
            "Records": [stack::sns_record(envelope, &self.topic.subscription_arn)]
        });
        let outcome = self
            .notifier
            .invoke(Invocation::json(event.clone()).trace_header(trace_header))
            .await?;
        let failed = match &outcome {
            InvocationOutcome::Response(_) => Vec::new(),
            _ => vec![sns_id],
        };
        if let Some(handle) = &message.receipt_handle {
            self.sqs
                .delete_message()
                .queue_url(&self.topic.queue_url)
                .receipt_handle(handle)
                .send()
                .await
                .map_err(|e| Error::Invalid(format!("deleting a notification: {e:?}")))?;
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

    /// Stops the functions and deletes the flow's queues and topic.
    pub async fn shutdown(&self) -> Result<()> {
        self.api.shutdown().await?;
        self.worker.shutdown().await?;
        self.notifier.shutdown().await?;
        for url in [&self.queue_url, &self.topic.queue_url] {
            self.sqs
                .delete_queue()
                .queue_url(url)
                .send()
                .await
                .map_err(|e| Error::Invalid(format!("deleting the flow's queue {url}: {e:?}")))?;
        }
        stack::sns_client()
            .await
            .delete_topic()
            .topic_arn(&self.topic.topic_arn)
            .send()
            .await
            .map_err(|e| Error::Invalid(format!("deleting the flow's topic: {e:?}")))?;
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
