//! The send side of the carriers beyond SQS, through tracekit's interceptor on real SDK clients.
//!
//! - SNS (LocalStack): `Publish` and `PublishBatch` to a topic an SQS queue subscribes to with raw
//!   delivery; what the queue receives: the user's attributes intact, W3C context only where the ten
//!   attributes leave room, naming the PRODUCER span.
//! - EventBridge (LocalStack, and the scripted endpoint): `PutEvents` accepted and the event
//!   delivered to a rule's SQS target with its detail intact (LocalStack); each entry's
//!   `TraceHeader` as sent, a user's kept (the scripted endpoint records the request, which LocalStack
//!   does not hand on to its targets).
//! - Step Functions (LocalStack): the execution's `traceHeader` read back with `DescribeExecution`.
//! - Lambda `Invoke` (the scripted endpoint: no emulator here serves Lambda in host mode): the
//!   `X-Amz-Client-Context` the request carried, W3C context beside the user's keys.
//!
//! And the receiving side of the carriers tracekit reads at the invocation (real function
//! processes on the harness's Runtime API): an `Invoke`'s `ClientContext.custom` (`invoked`), an
//! HTTP event's own trace headers under `xray-lambda` (`http_request`).

use integration_tests::scripted::{Scripted, ScriptedEndpoint};
use integration_tests::stack;
use opentelemetry::{Value, trace::SpanKind};
use opentelemetry_sdk::trace::SpanData;
use std::time::Duration;
use tracekit::testing::TestTelemetry;
use tracing::Instrument;

const WAIT: Duration = Duration::from_secs(10);

fn attr_str(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

async fn spans(test: &TestTelemetry) -> Vec<SpanData> {
    test.telemetry().force_flush(Duration::from_secs(5)).await;
    test.spans()
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans
        .iter()
        .find(|span| span.name == name)
        .unwrap_or_else(|| panic!("no {name} span: {spans:#?}"))
}

/// The next message on `url` (deleted), waiting up to [`WAIT`].
async fn receive(sqs: &aws_sdk_sqs::Client, url: &str) -> aws_sdk_sqs::types::Message {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let received = sqs
            .receive_message()
            .queue_url(url)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        if let Some(message) = received.messages.unwrap_or_default().into_iter().next() {
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(message.receipt_handle.clone().unwrap_or_default())
                .send()
                .await
                .expect("delete");
            return message;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing arrived on {url}"
        );
    }
}

fn sns_attribute(value: &str) -> aws_sdk_sns::types::MessageAttributeValue {
    aws_sdk_sns::types::MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("attribute")
}

#[tokio::test]
async fn sns_messages_carry_the_producer_context_without_losing_user_attributes() {
    stack::require_localstack().await;
    let test = TestTelemetry::new();
    let sdk = stack::sdk_config().await;
    let sns = tracekit::aws::sns_client(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let stack::TopicSink {
        topic_name,
        topic_arn: topic,
        queue_url,
        ..
    } = stack::topic_to_queue("orders-processed", true).await;

    for user_count in [0usize, 9, 10] {
        test.reset();
        let mut publish = sns.publish().topic_arn(&topic).message("secret body");
        for n in 0..user_count {
            publish = publish
                .message_attributes(format!("user{n}"), sns_attribute(&format!("value-{n}")));
        }
        let sent = publish
            .send()
            .instrument(tracing::info_span!("handler"))
            .await
            .expect("publish");
        let message = receive(&sqs, &queue_url).await;
        let attributes = message.message_attributes.unwrap_or_default();
        for n in 0..user_count {
            assert_eq!(
                attributes
                    .get(&format!("user{n}"))
                    .and_then(|value| value.string_value.as_deref()),
                Some(format!("value-{n}").as_str()),
                "{user_count}: user{n} arrives intact"
            );
        }
        assert!(attributes.len() <= 10, "{user_count}: {attributes:?}");
        let traceparent = attributes
            .get("traceparent")
            .and_then(|value| value.string_value.clone());
        assert_eq!(
            traceparent.is_some(),
            user_count < 10,
            "{user_count}: traceparent only where it fits"
        );

        let spans = spans(&test).await;
        let producer = named(&spans, "SNS.Publish");
        assert_eq!(producer.span_kind, SpanKind::Producer);
        assert_eq!(
            attr_str(producer, "messaging.system").as_deref(),
            Some("aws.sns")
        );
        assert_eq!(
            attr_str(producer, "messaging.destination.name").as_deref(),
            Some(topic_name.as_str())
        );
        assert_eq!(
            attr_str(producer, "aws.sns.topic.arn").as_deref(),
            Some(topic.as_str())
        );
        assert_eq!(attr_str(producer, "messaging.message.id"), sent.message_id);
        assert!(
            !format!("{producer:?}").contains("secret body"),
            "no body recorded"
        );
        if let Some(traceparent) = traceparent {
            assert_eq!(
                traceparent,
                format!(
                    "00-{}-{}-01",
                    producer.span_context.trace_id(),
                    producer.span_context.span_id()
                ),
                "names the PRODUCER span"
            );
        }
    }

    // A batch: every entry carries the context, each user attribute kept.
    test.reset();
    let entries = (0..3).map(|n| {
        aws_sdk_sns::types::PublishBatchRequestEntry::builder()
            .id(format!("e{n}"))
            .message(format!("entry {n}"))
            .message_attributes("tenant", sns_attribute(&format!("t{n}")))
            .build()
            .expect("entry")
    });
    sns.publish_batch()
        .topic_arn(&topic)
        .set_publish_batch_request_entries(Some(entries.collect()))
        .send()
        .await
        .expect("publish batch");
    let spans = spans(&test).await;
    let producer = named(&spans, "SNS.PublishBatch");
    assert_eq!(producer.span_kind, SpanKind::Producer);
    assert_eq!(
        producer
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "messaging.batch.message_count")
            .map(|kv| kv.value.clone()),
        Some(Value::I64(3))
    );
    let mut tenants = Vec::new();
    for _ in 0..3 {
        let message = receive(&sqs, &queue_url).await;
        let attributes = message.message_attributes.unwrap_or_default();
        tenants.push(
            attributes
                .get("tenant")
                .and_then(|value| value.string_value.clone())
                .expect("the user's attribute"),
        );
        let traceparent = attributes
            .get("traceparent")
            .and_then(|value| value.string_value.clone())
            .expect("each entry carries traceparent");
        assert!(
            traceparent.contains(&producer.span_context.span_id().to_string()),
            "{traceparent}"
        );
    }
    tenants.sort();
    assert_eq!(tenants, ["t0", "t1", "t2"]);
}

fn entry(
    bus: Option<&str>,
    detail: &str,
    trace_header: Option<&str>,
) -> aws_sdk_eventbridge::types::PutEventsRequestEntry {
    aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .set_event_bus_name(bus.map(str::to_owned))
        .source("orders.worker")
        .detail_type("order.processed")
        .detail(detail)
        .set_trace_header(trace_header.map(str::to_owned))
        .build()
}

/// LocalStack: the entries, with tracekit's `TraceHeader`, are accepted and delivered.
#[tokio::test]
async fn eventbridge_events_with_a_trace_header_reach_their_target_intact() {
    stack::require_localstack().await;
    let test = TestTelemetry::new();
    let sdk = stack::sdk_config().await;
    let events = tracekit::aws::eventbridge_client(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let bus = stack::unique_name("orders-bus");
    events
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .expect("bus");
    let queue_url = stack::create_queue("orders-events").await;
    let queue_arn = stack::queue_arn(&queue_url).await;
    let rule = stack::unique_name("processed");
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(&bus)
        .event_pattern(r#"{"source":["orders.worker"]}"#)
        .send()
        .await
        .expect("rule");
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("sink")
                .arn(&queue_arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("target");
    let put = events
        .put_events()
        .entries(entry(Some(&bus), r#"{"order_id":"o-17"}"#, None))
        .send()
        .await
        .expect("put events");
    assert_eq!(put.failed_entry_count, 0, "{put:?}");
    let message = receive(&sqs, &queue_url).await;
    let event: serde_json::Value =
        serde_json::from_str(message.body.as_deref().unwrap_or_default()).expect("the event");
    assert_eq!(event["detail"], serde_json::json!({"order_id": "o-17"}));
    let spans = spans(&test).await;
    let producer = named(&spans, "EventBridge.PutEvents");
    assert_eq!(producer.span_kind, SpanKind::Producer);
    assert_eq!(
        attr_str(producer, "messaging.destination.name").as_deref(),
        Some(bus.as_str())
    );
}

/// The scripted endpoint: what each entry's `TraceHeader` was on the wire.
#[tokio::test]
async fn eventbridge_entries_carry_the_producer_trace_header_and_keep_a_users() {
    let endpoint = ScriptedEndpoint::start(vec![Scripted::json(
        200,
        r#"{"FailedEntryCount":0,"Entries":[{"EventId":"1"},{"EventId":"2"}]}"#,
    )])
    .expect("endpoint");
    let test = TestTelemetry::new();
    let sdk = stack::sdk_config().await;
    let events = aws_sdk_eventbridge::Client::from_conf(
        tracekit::aws::traced(
            aws_sdk_eventbridge::config::Builder::from(&sdk).endpoint_url(endpoint.url()),
        )
        .build(),
    );
    let users = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    events
        .put_events()
        .entries(entry(None, "{}", None))
        .entries(entry(None, "{}", Some(users)))
        .send()
        .await
        .expect("put events");
    let request = endpoint.received().into_iter().next().expect("a request");
    let body: serde_json::Value = serde_json::from_slice(&request.body).expect("JSON body");
    let spans = spans(&test).await;
    let producer = named(&spans, "EventBridge.PutEvents");
    let expected = format!(
        "Root={};Parent={};Sampled=1",
        xray_trace_id(producer),
        producer.span_context.span_id()
    );
    assert_eq!(body["Entries"][0]["TraceHeader"], expected.as_str());
    assert_eq!(
        body["Entries"][1]["TraceHeader"], users,
        "the user's is kept"
    );
    assert_eq!(
        attr_str(producer, "messaging.destination.name").as_deref(),
        Some("default")
    );
}

/// The X-Ray form of a span's trace id: `1-{8 hex}-{24 hex}`.
fn xray_trace_id(span: &SpanData) -> String {
    let hex = span.span_context.trace_id().to_string();
    format!("1-{}-{}", &hex[..8], &hex[8..])
}

#[tokio::test]
async fn step_functions_executions_carry_the_client_spans_trace_header() {
    stack::require_localstack().await;
    let test = TestTelemetry::new();
    let sdk = stack::sdk_config().await;
    let sfn = tracekit::aws::sfn_client(&sdk);
    let machine = sfn
        .create_state_machine()
        .name(stack::unique_name("fulfil"))
        .definition(r#"{"StartAt":"Done","States":{"Done":{"Type":"Pass","End":true}}}"#)
        .role_arn("arn:aws:iam::000000000000:role/fulfil")
        .send()
        .await
        .expect("state machine")
        .state_machine_arn;
    let users = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    for user_header in [None, Some(users)] {
        test.reset();
        let started = sfn
            .start_execution()
            .state_machine_arn(&machine)
            .input("{}")
            .set_trace_header(user_header.map(str::to_owned))
            .send()
            .await
            .expect("start");
        let described = sfn
            .describe_execution()
            .execution_arn(&started.execution_arn)
            .send()
            .await
            .expect("describe");
        let spans = spans(&test).await;
        let client = named(&spans, "SFN.StartExecution");
        assert_eq!(client.span_kind, SpanKind::Client);
        assert_eq!(
            attr_str(client, "aws.step_functions.state_machine.arn").as_deref(),
            Some(machine.as_str())
        );
        let expected = match user_header {
            Some(users) => users.to_owned(),
            None => format!(
                "Root={};Parent={};Sampled=1",
                xray_trace_id(client),
                client.span_context.span_id()
            ),
        };
        assert_eq!(described.trace_header.as_deref(), Some(expected.as_str()));
    }
}

/// The scripted endpoint: the client context `Invoke` sent.
#[tokio::test]
async fn lambda_invoke_carries_w3c_context_in_the_client_context_beside_the_users_keys() {
    let endpoint = ScriptedEndpoint::start(vec![
        Scripted::json(200, r#"{"ok":true}"#).header("X-Amz-Executed-Version", "$LATEST"),
    ])
    .expect("endpoint");
    let test = TestTelemetry::new();
    let sdk = stack::sdk_config().await;
    let lambda = aws_sdk_lambda::Client::from_conf(
        tracekit::aws::traced(
            aws_sdk_lambda::config::Builder::from(&sdk).endpoint_url(endpoint.url()),
        )
        .build(),
    );
    let users =
        aws_smithy_types::base64::encode(r#"{"custom":{"tenant":"a"},"env":{"locale":"fr"}}"#);
    for client_context in [None, Some(users.as_str())] {
        test.reset();
        lambda
            .invoke()
            .function_name("arn:aws:lambda:eu-west-1:123456789012:function:fulfil:live")
            .payload(aws_smithy_types::Blob::new(r#"{"order_id":"o-17"}"#))
            .set_client_context(client_context.map(str::to_owned))
            .send()
            .await
            .expect("invoke");
        let request = endpoint.received().pop().expect("a request");
        let spans = spans(&test).await;
        let client = named(&spans, "Lambda.Invoke");
        assert_eq!(client.span_kind, SpanKind::Client);
        assert_eq!(
            attr_str(client, "faas.invoked_name").as_deref(),
            Some("fulfil")
        );
        assert_eq!(
            attr_str(client, "faas.invoked_provider").as_deref(),
            Some("aws")
        );
        assert_eq!(
            attr_str(client, "faas.invoked_region").as_deref(),
            Some("eu-west-1")
        );
        let header = request.header("x-amzn-trace-id").expect("X-Ray header");
        assert!(
            header.contains(&format!("Parent={}", client.span_context.span_id())),
            "{header}"
        );
        let encoded = request
            .header("x-amz-client-context")
            .expect("client context");
        let context: serde_json::Value =
            serde_json::from_slice(&aws_smithy_types::base64::decode(encoded).expect("base64"))
                .expect("JSON");
        assert_eq!(
            context["custom"]["traceparent"],
            format!(
                "00-{}-{}-01",
                client.span_context.trace_id(),
                client.span_context.span_id()
            )
            .as_str()
        );
        if client_context.is_some() {
            assert_eq!(context["custom"]["tenant"], "a", "the user's key is kept");
            assert_eq!(context["env"]["locale"], "fr");
        }
        assert!(
            !format!("{client:?}").contains("o-17"),
            "no payload recorded"
        );
    }
}

/// On the segment path, the invocation's two documents (its segment and its child's) are in Lambda's
/// trace `trace`, the invocation's under Lambda's segment `segment`, and nothing was warned about.
async fn in_lambdas_trace(
    daemon: &integration_tests::XrayDaemon,
    function: &integration_tests::FunctionProcess,
    trace: &str,
    segment: &str,
) {
    let documents = daemon
        .wait_for_documents(2, WAIT)
        .await
        .expect("the invocation's segment and its child's");
    let invocation = documents
        .iter()
        .find(|document| document["parent_id"] == segment)
        .unwrap_or_else(|| panic!("a segment under Lambda's: {documents:#?}"));
    assert_eq!(invocation["trace_id"], trace, "{invocation:#}");
    assert!(
        documents
            .iter()
            .all(|document| document["trace_id"] == trace),
        "{documents:#?}"
    );
    let warned: Vec<String> = function
        .stdout()
        .into_iter()
        .filter(|line| line.contains("WARN"))
        .collect();
    assert!(warned.is_empty(), "{warned:#?}");
}

mod invoked {
    //! The consumer side of `Invoke`: a function invoked directly continues its caller's context
    //! from `ClientContext.custom` (a W3C `traceparent`, or an `x-amzn-trace-id` alone), a real
    //! function process, the harness's Runtime API passing the client context as Lambda does.
    use integration_tests::xray;
    use integration_tests::{FunctionProcess, Invocation, OtlpReceiver, stack};
    use std::time::Duration;

    const CALLER_TRACE: &str = "5759e988bd862e3fe1be46a994272793";
    const CALLER_SPAN: &str = "53995c3f42cd8ad8";

    fn client_context(traceparent: &str) -> String {
        serde_json::json!({"custom": {"traceparent": traceparent, "tenant": "a"}}).to_string()
    }

    async fn invoked(
        propagators: &str,
        traceparent: &str,
    ) -> (integration_tests::ReceivedSpan, Vec<String>) {
        invoked_with(propagators, client_context(traceparent)).await
    }

    async fn invoked_with(
        propagators: &str,
        client_context: String,
    ) -> (integration_tests::ReceivedSpan, Vec<String>) {
        let otlp = OtlpReceiver::start().expect("receiver");
        let function = FunctionProcess::spawn(
            &stack::function_binary("traced-function"),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint()),
                ("OTEL_PROPAGATORS", propagators.to_owned()),
            ],
        )
        .expect("spawn");
        let header = xray::new_trace_header();
        function
            .invoke(
                Invocation::json(serde_json::json!({"children": 0}))
                    .trace_header(header)
                    .client_context(client_context),
            )
            .await
            .expect("invocation");
        let spans = otlp
            .wait_for_spans(1, Duration::from_secs(10))
            .await
            .expect("spans");
        let invocation = spans
            .into_iter()
            .find(|span| span.attr_str("faas.invocation_id").is_some())
            .expect("the invocation span");
        (invocation, function.stdout())
    }

    #[tokio::test]
    async fn the_callers_context_is_a_link_beside_lambdas_segment_by_default() {
        let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
        let (invocation, _) = invoked("tracecontext,baggage,xray", &traceparent).await;
        assert_ne!(invocation.trace_id, CALLER_TRACE, "Lambda's trace");
        assert!(
            invocation
                .links
                .iter()
                .any(|link| link.trace_id == CALLER_TRACE && link.span_id == CALLER_SPAN),
            "{:?}",
            invocation.links
        );
    }

    #[tokio::test]
    async fn under_xray_lambda_the_caller_is_the_parent() {
        let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
        let (invocation, _) = invoked("tracecontext,baggage,xray-lambda", &traceparent).await;
        assert_eq!(invocation.trace_id, CALLER_TRACE);
        assert_eq!(invocation.parent_span_id.as_deref(), Some(CALLER_SPAN));
    }

    #[tokio::test]
    async fn a_malformed_callers_context_is_skipped_with_a_warning() {
        let (invocation, stdout) =
            invoked("tracecontext,baggage,xray", "00-not-a-context-01").await;
        assert!(invocation.links.is_empty(), "{:?}", invocation.links);
        assert_eq!(
            stdout
                .iter()
                .filter(|line| line.contains("client context's trace context is malformed"))
                .count(),
            1,
            "{stdout:#?}"
        );
    }
    /// What OpenTelemetry JS's aws-sdk instrumentation writes with the X-Ray propagator: an
    /// `x-amzn-trace-id` alone in `custom`, read as an SQS message's attribute is.
    #[tokio::test]
    async fn an_x_amzn_trace_id_alone_is_the_callers_context() {
        let caller = format!(
            "Root=1-{}-{};Parent={CALLER_SPAN};Sampled=1",
            &CALLER_TRACE[..8],
            &CALLER_TRACE[8..]
        );
        let context = serde_json::json!({"custom": {"x-amzn-trace-id": caller}}).to_string();
        let (linked, stdout) = invoked_with("tracecontext,baggage,xray", context.clone()).await;
        assert_ne!(linked.trace_id, CALLER_TRACE, "xray: Lambda's trace");
        assert!(
            linked
                .links
                .iter()
                .any(|link| link.trace_id == CALLER_TRACE && link.span_id == CALLER_SPAN),
            "xray: the caller is linked: {:?}",
            linked.links
        );
        assert!(
            !stdout.iter().any(|line| line.contains("WARN")),
            "{stdout:#?}"
        );
        let (continued, _) = invoked_with("tracecontext,baggage,xray-lambda", context).await;
        assert_eq!(
            continued.trace_id, CALLER_TRACE,
            "xray-lambda: the caller's trace"
        );
        assert_eq!(continued.parent_span_id.as_deref(), Some(CALLER_SPAN));
    }

    /// A `traceparent` given twice (keys differing in case) is no context: one warning, Lambda's
    /// segment the parent, no link.
    #[tokio::test]
    async fn a_repeated_traceparent_is_no_context() {
        let context = serde_json::json!({"custom": {
            "traceparent": format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"),
            "Traceparent": format!("00-{CALLER_TRACE}-1111111111111111-01"),
        }})
        .to_string();
        let (invocation, stdout) = invoked_with("tracecontext,baggage,xray-lambda", context).await;
        assert_ne!(invocation.trace_id, CALLER_TRACE, "Lambda's trace");
        assert!(invocation.links.is_empty(), "{:?}", invocation.links);
        assert_eq!(
            stdout
                .iter()
                .filter(|line| line.contains("client context carries more than one traceparent"))
                .count(),
            1,
            "{stdout:#?}"
        );
    }

    /// `xray-lambda` on the segment path: a W3C caller whose trace id X-Ray cannot hold (its first
    /// 8 digits are no recent time) is linked, and the invocation continues Lambda's trace, so its
    /// segments reach the daemon instead of all being refused.
    #[tokio::test]
    async fn on_the_segment_path_a_w3c_caller_x_ray_cannot_hold_falls_back_to_lambdas_trace() {
        let daemon = xray::XrayDaemon::recording().expect("daemon stand-in");
        let function = FunctionProcess::spawn(
            &stack::function_binary("traced-function"),
            &[
                ("OTEL_TRACES_EXPORTER", "xray"),
                ("AWS_XRAY_DAEMON_ADDRESS", daemon.address()),
                ("OTEL_PROPAGATORS", "tracecontext,baggage,xray-lambda"),
            ],
        )
        .expect("spawn");
        let (trace, segment) = (xray::new_trace_id(), xray::new_segment_id());
        function
            .invoke(
                Invocation::json(serde_json::json!({"children": 1}))
                    .trace_header(format!("Root={trace};Parent={segment};Sampled=1"))
                    .client_context(client_context(&format!(
                        "00-{CALLER_TRACE}-{CALLER_SPAN}-01"
                    ))),
            )
            .await
            .expect("invocation");
        super::in_lambdas_trace(&daemon, &function, &trace, &segment).await;
    }
}

mod http_request {
    //! The consumer side of an HTTP event's own trace headers under `xray-lambda`: a real
    //! `lambda_http` function process (`http-function`: the invocation span `GET /{proxy+}` and
    //! its child `render`), the event as API Gateway sends it.
    use integration_tests::xray;
    use integration_tests::{FunctionProcess, Invocation, OtlpReceiver, ReceivedSpan, stack};
    use serde_json::{Value, json};
    use std::time::Duration;

    const WAIT: Duration = Duration::from_secs(10);
    const CALLER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    const CALLER_SPAN: &str = "b7ad6b7169203331";
    const PROPAGATORS: &str = "tracecontext,baggage,xray-lambda";

    fn sample(file: &str) -> Value {
        let path = stack::workspace_root().join("events").join(file);
        let text = std::fs::read_to_string(&path).expect("the sample event");
        serde_json::from_str(&text).expect("JSON")
    }

    /// An HTTP API event for `GET /status/200` with these headers.
    fn http_api(headers: Value) -> Value {
        let mut event = sample("apigw-v2-get-order.json");
        event["rawPath"] = json!("/status/200");
        event["requestContext"]["http"]["path"] = json!("/status/200");
        event["routeKey"] = json!("GET /{proxy+}");
        event["headers"] = headers;
        event
    }

    /// A REST API event for `GET /status/200` with these (single- and multi-value) headers.
    fn rest_api(headers: Value, multi_value_headers: Value) -> Value {
        let mut event = sample("apigw-v1-get-order.json");
        event["path"] = json!("/status/200");
        event["resource"] = json!("/{proxy+}");
        event["requestContext"]["path"] = json!("/prod/status/200");
        event["headers"] = headers;
        event["multiValueHeaders"] = multi_value_headers;
        event
    }

    fn lambda_header() -> (String, String, String) {
        let (trace, segment) = (xray::new_trace_id(), xray::new_segment_id());
        let header = format!("Root={trace};Parent={segment};Sampled=1");
        (trace, segment, header)
    }

    /// `event` served once to `http-function` exporting to an OTLP receiver: the invocation span,
    /// Lambda's trace header, and the function's lines.
    async fn served(event: Value) -> (ReceivedSpan, String, String, Vec<String>) {
        let otlp = OtlpReceiver::start().expect("receiver");
        let function = FunctionProcess::spawn(
            &stack::function_binary("http-function"),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint()),
                ("OTEL_PROPAGATORS", PROPAGATORS.to_owned()),
            ],
        )
        .expect("spawn");
        let (trace, segment, header) = lambda_header();
        function
            .invoke(Invocation::json(event).trace_header(header))
            .await
            .expect("invocation");
        let spans = otlp.wait_for_spans(2, WAIT).await.expect("spans");
        let invocation = spans
            .into_iter()
            .find(|span| span.attr_str("faas.invocation_id").is_some())
            .expect("the invocation span");
        (
            invocation,
            xray::otel_trace_id(&trace),
            segment,
            function.stdout(),
        )
    }

    fn warnings(stdout: &[String], text: &str) -> usize {
        stdout.iter().filter(|line| line.contains(text)).count()
    }

    /// Two `traceparent` headers (keys differing in case, or two values in `multiValueHeaders`)
    /// are no context, by the W3C rules the README promises: Lambda's segment is the parent, and
    /// one warning says why. A traceparent given once in both of API Gateway REST's maps is one.
    #[tokio::test]
    async fn a_repeated_traceparent_is_no_context_with_one_warning() {
        let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
        let other = "00-11111111111111111111111111111111-2222222222222222-01";
        let repeated = "the request carries more than one traceparent";
        // (event, continues the caller, warnings, reason)
        let cases = [
            (
                http_api(json!({"traceparent": other, "Traceparent": traceparent})),
                false,
                1,
                "two keys differing in case",
            ),
            (
                rest_api(
                    json!({"traceparent": other}),
                    json!({"traceparent": [traceparent, other]}),
                ),
                false,
                1,
                "two values in multiValueHeaders",
            ),
            (
                rest_api(
                    json!({"traceparent": traceparent}),
                    json!({"traceparent": [traceparent]}),
                ),
                true,
                0,
                "one traceparent, in both maps",
            ),
        ];
        for (event, continues, warned, reason) in cases {
            let (invocation, lambda_trace, segment, stdout) = served(event).await;
            if continues {
                assert_eq!(invocation.trace_id, CALLER_TRACE, "{reason}");
                assert_eq!(
                    invocation.parent_span_id.as_deref(),
                    Some(CALLER_SPAN),
                    "{reason}"
                );
            } else {
                assert_eq!(invocation.trace_id, lambda_trace, "{reason}");
                assert_eq!(
                    invocation.parent_span_id.as_deref(),
                    Some(segment.as_str()),
                    "{reason}"
                );
                assert!(
                    invocation.links.is_empty(),
                    "{reason}: {:?}",
                    invocation.links
                );
            }
            assert_eq!(warnings(&stdout, repeated), warned, "{reason}: {stdout:#?}");
        }
    }

    /// `xray-lambda` on the segment path: a request whose `traceparent` names a trace X-Ray cannot
    /// hold (a random W3C id) is linked, the invocation continues Lambda's trace, and its segments
    /// reach the daemon instead of all being refused.
    #[tokio::test]
    async fn on_the_segment_path_a_w3c_caller_x_ray_cannot_hold_falls_back_to_lambdas_trace() {
        let daemon = xray::XrayDaemon::recording().expect("daemon stand-in");
        let function = FunctionProcess::spawn(
            &stack::function_binary("http-function"),
            &[
                ("OTEL_TRACES_EXPORTER", "xray"),
                ("AWS_XRAY_DAEMON_ADDRESS", daemon.address()),
                ("OTEL_PROPAGATORS", PROPAGATORS),
            ],
        )
        .expect("spawn");
        let (trace, segment, header) = lambda_header();
        let event = http_api(json!({"traceparent": format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01")}));
        function
            .invoke(Invocation::json(event).trace_header(header))
            .await
            .expect("invocation");
        super::in_lambdas_trace(&daemon, &function, &trace, &segment).await;
    }
}

/// SNS → a function: LocalStack delivers the notification (to an SQS queue, as it delivers to
/// Lambda: the same envelope, `MessageAttributes` included); the harness invokes a real function
/// process with it as Lambda's SNS event, and the function's `process` span continues the
/// publisher's trace.
#[tokio::test]
async fn an_sns_triggered_function_continues_the_publishers_trace() {
    use integration_tests::{FunctionProcess, Invocation, InvocationOutcome, OtlpReceiver, xray};
    stack::require_localstack().await;
    let test = TestTelemetry::new();
    let sdk = stack::sdk_config().await;
    let sns = tracekit::aws::sns_client(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let stack::TopicSink {
        topic_name,
        topic_arn: topic,
        queue_url,
        subscription_arn,
    } = stack::topic_to_queue("orders-notified", false).await;
    sns.publish()
        .topic_arn(&topic)
        .message("order o-17")
        .message_attributes("tenant", sns_attribute("a"))
        .send()
        .instrument(tracing::info_span!("handler"))
        .await
        .expect("publish");
    let producer = named(&spans(&test).await, "SNS.Publish").clone();
    let envelope: serde_json::Value = serde_json::from_str(
        receive(&sqs, &queue_url)
            .await
            .body
            .as_deref()
            .unwrap_or_default(),
    )
    .expect("the SNS envelope");
    assert_eq!(
        envelope["MessageAttributes"]["tenant"]["Value"], "a",
        "{envelope:#}"
    );
    let event = serde_json::json!({"Records": [stack::sns_record(envelope, &subscription_arn)]});

    let otlp = OtlpReceiver::start().expect("receiver");
    let function = FunctionProcess::spawn(
        &stack::function_binary("traced-function"),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint())],
    )
    .expect("spawn");
    let header = xray::new_trace_header();
    let outcome = function
        .invoke(Invocation::json(event).trace_header(header))
        .await
        .expect("invocation");
    assert!(
        matches!(outcome, InvocationOutcome::Response(_)),
        "{outcome:?}"
    );
    let received = otlp.wait_for_spans(2, WAIT).await.expect("spans");
    let process = received
        .iter()
        .find(|span| span.name == format!("process {topic_name}"))
        .unwrap_or_else(|| panic!("no process span: {received:#?}"));
    assert_eq!(process.attr_str("messaging.system"), Some("aws.sns"));
    assert_eq!(
        process.trace_id,
        producer.span_context.trace_id().to_string(),
        "a message of its own continues the publisher's trace"
    );
    assert_eq!(
        process.parent_span_id.as_deref(),
        Some(producer.span_context.span_id().to_string().as_str())
    );
    assert_eq!(process.links.len(), 1, "and links to it");
}
