//! No payload leaves a function through tracing: the whole orders flow runs with recognisable secrets
//! in the request (body, headers, query), in the item written to DynamoDB, in the receipt object in
//! S3, and in an SQS message's body and user attributes; none of them appears in any exported span
//! (name, attributes, events, links, resource) on any export path (OTLP/HTTP, the agent's UDP datagrams
//! with Application Signals' attributes, X-Ray segment documents), or log line of either function.
//! tracekit has no switch that records payloads: a user who wants a value on a span records it.

use integration_tests::flow::Flow;
use integration_tests::{FunctionProcess, Invocation, OtlpReceiver, XrayDaemon, stack, xray};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

struct Secrets {
    customer: String,
    sku: String,
    token: String,
    query: String,
    body: String,
    attribute: String,
}

impl Secrets {
    fn new() -> Secrets {
        let tag = stack::unique_name("s");
        let secret = |what: &str| format!("PRIVACY{what}{}", tag.replace('-', ""));
        Secrets {
            customer: secret("CUSTOMER"),
            sku: secret("SKU"),
            token: secret("TOKEN"),
            query: secret("QUERY"),
            body: secret("BODY"),
            attribute: secret("ATTRIBUTE"),
        }
    }

    fn all(&self) -> [&str; 6] {
        [
            &self.customer,
            &self.sku,
            &self.token,
            &self.query,
            &self.body,
            &self.attribute,
        ]
    }

    /// Each secret found in `text`, with where it was found.
    fn found_in(&self, what: &str, text: &str) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|secret| text.contains(secret))
            .map(|secret| format!("{secret} in {what}: {text}"))
            .collect()
    }
}

/// Runs the flow with the secrets everywhere a user's data goes, and returns the secrets and the
/// flow (still running, so its logs can be read).
async fn run_with_secrets(export_env: &[(&str, String)]) -> (Secrets, Flow) {
    let secrets = Secrets::new();
    let flow = Flow::start(export_env, Duration::from_secs(1))
        .await
        .expect("flow");

    // A message of the user's own: a body the worker cannot read, and a user attribute.
    stack::sqs_client()
        .await
        .send_message()
        .queue_url(&flow.queue_url)
        .message_body(format!("{} is not an order", secrets.body))
        .message_attributes(
            "note",
            aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value(&secrets.attribute)
                .build()
                .expect("attribute"),
        )
        .send()
        .await
        .expect("send the user's message");

    let order = json!({"customer": secrets.customer, "items": [{"sku": secrets.sku, "quantity": 2, "unit_price_cents": 999}]});
    let mut event = Flow::order_event(&order).expect("event");
    event["headers"]["authorization"] = Value::from(format!("Bearer {}", secrets.token));
    event["cookies"] = json!([format!("session={}", secrets.token)]);
    event["rawQueryString"] = Value::from(format!("coupon={}", secrets.query));
    event["queryStringParameters"] = json!({"coupon": secrets.query});
    let header = xray::new_trace_header();
    flow.post_event(event, &header).await.expect("post");

    // Both messages reach the worker: the order (processed) and the user's (reported failed).
    let mut delivered = 0;
    let mut failed = 0;
    while delivered < 2 {
        let delivery = flow
            .deliver(&header, WAIT)
            .await
            .expect("deliver")
            .expect("both messages arrive");
        delivered += delivery.event["Records"].as_array().map_or(0, Vec::len);
        failed += delivery.failed.len();
    }
    assert!(failed >= 1, "the unreadable message is reported failed");
    // The processed order's notification reaches the notifier.
    let notified = flow
        .notify(&header, WAIT)
        .await
        .expect("notify")
        .expect("the order.processed notification");
    assert!(notified.failed.is_empty(), "{:?}", notified.outcome);

    // The secrets did reach the stack: the item and the receipt hold them.
    let item = stack::dynamodb_client()
        .await
        .scan()
        .table_name(stack::resource("ORDERS_TABLE"))
        .send()
        .await
        .expect("scan");
    assert!(
        format!("{item:?}").contains(&secrets.customer),
        "the item holds the customer"
    );
    (secrets, flow)
}

/// The fewest spans one run exports (the worker may take both messages in one invocation).
const SPANS: usize = 15;

fn leaks_in_logs(secrets: &Secrets, flow: &Flow) -> Vec<String> {
    let mut leaks = Vec::new();
    for (name, process) in [
        ("api", &flow.api),
        ("worker", &flow.worker),
        ("notifier", &flow.notifier),
    ] {
        for line in process.stdout().iter().chain(process.stderr().iter()) {
            leaks.extend(secrets.found_in(&format!("a log line of {name}"), line));
        }
    }
    leaks
}

#[tokio::test]
async fn no_payload_reaches_an_otlp_span_or_a_log_line() {
    let otlp = OtlpReceiver::start().expect("receiver");
    let (secrets, flow) =
        run_with_secrets(&[("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint())]).await;
    // api: 5 spans; worker: 2 invocations (or 1), 2 process spans, GetObject, UpdateItem,
    // Publish; notifier: invocation, process, PutObject.
    let spans = otlp.wait_for_spans(SPANS, WAIT).await.expect("spans");
    let mut leaks = leaks_in_logs(&secrets, &flow);
    for span in &spans {
        // Debug output holds every field of the span, its events, links and resource.
        leaks.extend(secrets.found_in(&format!("span {}", span.name), &format!("{span:?}")));
    }
    flow.shutdown().await.expect("shutdown");
    assert!(leaks.is_empty(), "{leaks:#?}");
    assert!(
        spans.iter().any(|s| s.name == "S3.PutObject")
            && spans.iter().any(|s| s.attr_str("error.type").is_some()),
        "the spans that handled the secrets were exported (one with an error)"
    );
}

#[tokio::test]
async fn no_payload_reaches_an_xray_segment() {
    let daemon = XrayDaemon::recording().expect("daemon");
    let (secrets, flow) = run_with_secrets(&[
        ("OTEL_TRACES_EXPORTER", "xray".to_owned()),
        ("AWS_XRAY_DAEMON_ADDRESS", daemon.address().to_owned()),
    ])
    .await;
    let documents = daemon
        .wait_for_documents(SPANS, WAIT)
        .await
        .expect("segments");
    let mut leaks = leaks_in_logs(&secrets, &flow);
    for document in &documents {
        leaks.extend(secrets.found_in("a segment document", &document.to_string()));
    }
    flow.shutdown().await.expect("shutdown");
    assert!(leaks.is_empty(), "{leaks:#?}");
}

#[tokio::test]
async fn no_payload_reaches_an_agent_datagram_even_with_application_signals() {
    // The default path, with the most attributes tracekit writes: Application Signals derives its
    // resource identifiers from the span's own attributes, never from a payload.
    let agent = XrayDaemon::recording().expect("agent stand-in");
    let (secrets, flow) = run_with_secrets(&[
        ("AWS_XRAY_DAEMON_ADDRESS", agent.address().to_owned()),
        ("OTEL_AWS_APPLICATION_SIGNALS_ENABLED", "true".to_owned()),
    ])
    .await;
    let spans = agent.wait_for_spans(SPANS, WAIT).await.expect("spans");
    let mut leaks = leaks_in_logs(&secrets, &flow);
    for span in spans.iter().chain(&agent.unsampled_spans()) {
        leaks.extend(secrets.found_in(&format!("span {}", span.name), &format!("{span:?}")));
    }
    flow.shutdown().await.expect("shutdown");
    assert!(leaks.is_empty(), "{leaks:#?}");
    assert!(
        spans
            .iter()
            .any(|s| s.attr_str("aws.remote.service") == Some("AWS::S3")),
        "the spans carry Application Signals' attributes"
    );
}

/// SNS message attributes that are not their documented shape cost the message its producer's
/// context, never the message: it is processed, one warning names its id, and nothing of the
/// attributes reaches a span or a log line. (No stack: the SNS event is the invocation's payload.)
#[tokio::test]
async fn malformed_sns_attributes_lose_the_context_and_leave_no_trace_of_their_text() {
    let secret = format!("PRIVACYSNS{}", stack::unique_name("a").replace('-', ""));
    let text =
        std::fs::read_to_string(stack::workspace_root().join("events/sns-order-processed.json"))
            .expect("the sample event");
    let sample: Value = serde_json::from_str(&text).expect("JSON");
    let traceparent = "00-6740a1b55759e988bd862e3fe1be46a9-83995c3f42cd8ad8-01";
    // (MessageAttributes, reason)
    let cases = [
        (
            json!({"traceparent": {"Type": "String", "Value": traceparent}, "note": {"Type": "String", "Value": [&secret]}}),
            "a Value that is a list: the traceparent beside it is not trusted",
        ),
        (
            json!({"traceparent": {"Type": "String", "Value": 5}, "note": &secret}),
            "a traceparent whose Value is a number, an attribute that is a bare string",
        ),
        (
            json!([&secret, {"custom": {"traceparent": 5}}]),
            "a list, not a map",
        ),
        (json!(&secret), "a string, not a map"),
    ];
    let otlp = OtlpReceiver::start().expect("receiver");
    let function = FunctionProcess::spawn(
        &stack::function_binary("traced-function"),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint())],
    )
    .expect("spawn");
    for (n, (attributes, reason)) in cases.into_iter().enumerate() {
        let id = format!("malformed-{n}");
        let mut event = sample.clone();
        event["Records"][0]["Sns"]["MessageId"] = json!(id);
        event["Records"][0]["Sns"]["MessageAttributes"] = attributes;
        let header = xray::new_trace_header();
        let outcome = function
            .invoke(Invocation::json(event).trace_header(header))
            .await
            .expect("invocation");
        assert_eq!(
            outcome.json().ok(),
            Some(json!({"ok": true})),
            "{reason}: the message is processed: {outcome:?}"
        );
        // The invocation and its message's process span.
        let spans = otlp.wait_for_spans(2, WAIT).await.expect("spans");
        otlp.clear();
        let process = spans
            .iter()
            .find(|span| span.name == "process tracekit-order-events")
            .unwrap_or_else(|| panic!("{reason}: no process span: {spans:#?}"));
        assert_eq!(process.attr_str("messaging.message.id"), Some(id.as_str()));
        assert!(process.links.is_empty(), "{reason}: no context is read");
        assert_ne!(
            process.trace_id, "6740a1b55759e988bd862e3fe1be46a9",
            "{reason}"
        );
        for span in &spans {
            assert!(
                !format!("{span:?}").contains(&secret),
                "{reason}: span {}: {span:?}",
                span.name
            );
        }
        let line = function
            .wait_for_stdout(|line| line.contains("WARN") && line.contains(&id), WAIT)
            .await
            .expect("one warning naming the message");
        assert!(line.contains("attributes"), "{reason}: {line}");
    }
    let stdout = function.stdout();
    let warnings: Vec<&String> = stdout
        .iter()
        .filter(|line| line.contains("WARN") && line.contains("malformed-"))
        .collect();
    assert_eq!(warnings.len(), 4, "one warning per message: {warnings:#?}");
    assert_eq!(
        stdout
            .iter()
            .filter(|line| line.contains("notified"))
            .count(),
        4,
        "every message reached the handler"
    );
    let stderr = function.stderr();
    let leaks: Vec<&String> = stdout
        .iter()
        .chain(stderr.iter())
        .filter(|line| line.contains(&secret))
        .collect();
    function.shutdown().await.expect("shutdown");
    assert!(leaks.is_empty(), "{leaks:#?}");
}
