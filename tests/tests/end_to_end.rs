//! One trace from the HTTP request through the worker to the notifier: the real `api`, `worker` and
//! `notifier` binaries under the Runtime API harness, against LocalStack and moto, on every export
//! path: OTLP/HTTP to a collector, OTLP over UDP to the agent (the default in Lambda), and X-Ray
//! segment documents.

use integration_tests::flow::Flow;
use integration_tests::otlp::{ReceivedSpan, SpanKind, SpanStatusCode};
use integration_tests::page::{self, PageSpan};
use integration_tests::xray::{self, XrayDaemon};
use integration_tests::{InvocationOutcome, OtlpReceiver, emf, stack};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

fn order() -> Value {
    json!({"customer": "ada", "items": [{"sku": "tea-assam", "quantity": 3, "unit_price_cents": 250}]})
}

/// A Lambda-style header: a fresh X-Ray trace, Lambda's segment as the parent.
fn lambda_header() -> (String, String, String) {
    let trace = xray::new_trace_id();
    let parent = xray::new_segment_id();
    let header = format!("Root={trace};Parent={parent};Sampled=1");
    (trace, parent, header)
}

fn status_code(outcome: &InvocationOutcome) -> i64 {
    let InvocationOutcome::Response(body) = outcome else {
        panic!("the api answered with an error: {outcome:?}");
    };
    let response: Value = serde_json::from_slice(body).expect("a JSON response");
    response["statusCode"].as_i64().expect("statusCode")
}

fn one<'a>(spans: &'a [ReceivedSpan], name: &str, service: &str) -> &'a ReceivedSpan {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| s.name == name && s.resource_str("service.name") == Some(service))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "exactly one {name} from {service}: {:#?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    found[0]
}

/// Posts one order under a fresh Lambda trace header, delivers its message to the worker, as the
/// SQS event source mapping would, and the worker's notification to the notifier, as SNS would;
/// returns the request's X-Ray trace id and Lambda's segment id.
async fn order_through_the_flow(flow: &Flow) -> (String, String) {
    let (trace, parent, header) = lambda_header();
    let posted = flow.post_order(&order(), &header).await.expect("post");
    assert_eq!(status_code(&posted), 201);
    let (_, _, worker_header) = lambda_header();
    let delivery = flow
        .deliver(&worker_header, WAIT)
        .await
        .expect("deliver")
        .expect("the order.created message");
    assert!(delivery.failed.is_empty(), "{:?}", delivery.outcome);
    let (_, _, notifier_header) = lambda_header();
    let notified = flow
        .notify(&notifier_header, WAIT)
        .await
        .expect("notify")
        .expect("the order.processed notification");
    assert!(notified.failed.is_empty(), "{:?}", notified.outcome);
    (trace, parent)
}

/// api: invocation, validate, the payment provider's POST, PutItem, PutObject, SendMessage; worker:
/// invocation, process, GetObject, UpdateItem, Publish; notifier: invocation, process, PutObject.
const ORDER_SPANS: usize = 14;

/// What both OTLP paths (the collector and the agent) must deliver of one order: the api's spans in
/// the request's trace under Lambda's segment, the worker's process span continuing it with a link
/// to the SendMessage span, the notifier's continuing it with a link to the worker's Publish span,
/// each span once.
fn check_the_orders_trace(spans: &[ReceivedSpan], flow: &Flow, trace: &str, parent: &str) {
    assert_eq!(
        spans.len(),
        ORDER_SPANS,
        "nothing exported twice, nothing extra"
    );
    let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    assert_eq!(ids.len(), ORDER_SPANS, "span ids are unique");

    let trace_id = xray::otel_trace_id(trace);
    let api = one(spans, "POST /orders", "tracekit-api");
    assert_eq!(api.kind, SpanKind::Server);
    assert_eq!(api.trace_id, trace_id);
    assert_eq!(api.parent_span_id.as_deref(), Some(parent));
    assert_eq!(api.attr_i64("http.response.status_code"), Some(201));
    for span in spans
        .iter()
        .filter(|s| s.resource_str("service.name") == Some("tracekit-api"))
    {
        assert_eq!(
            span.trace_id, trace_id,
            "{} is in the given trace",
            span.name
        );
    }
    let put = one(spans, "DynamoDB.PutItem", "tracekit-api");
    let receipt = one(spans, "S3.PutObject", "tracekit-api");
    let send = one(spans, "SQS.SendMessage", "tracekit-api");
    let payment = one(spans, "POST", "tracekit-api");
    for (span, kind) in [
        (payment, SpanKind::Client),
        (put, SpanKind::Client),
        (receipt, SpanKind::Client),
        (send, SpanKind::Producer),
    ] {
        assert_eq!(span.kind, kind, "{}", span.name);
        assert_eq!(span.parent_span_id.as_deref(), Some(api.span_id.as_str()));
    }
    assert_eq!(
        put.attr("aws.dynamodb.table_names")
            .and_then(|v| v.as_str_array())
            .map(|v| v.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        Some(vec![stack::resource("ORDERS_TABLE")])
    );
    assert_eq!(
        receipt.attr_str("aws.s3.bucket"),
        Some(stack::resource("RECEIPTS_BUCKET").as_str())
    );
    assert_eq!(
        send.attr_str("aws.sqs.queue.url"),
        Some(flow.queue_url.as_str())
    );
    assert!(send.attr_str("messaging.message.id").is_some());
    // The payment provider's call: an HTTP edge, its context in the request it received.
    assert_eq!(payment.attr_str("server.address"), Some("127.0.0.1"));
    assert_eq!(
        payment.attr_str("url.full"),
        Some(format!("{}/authorizations", flow.payments.url()).as_str())
    );
    assert_eq!(payment.attr_i64("http.response.status_code"), Some(201));
    let asked = flow.payments.received();
    assert_eq!(asked.len(), 1, "the order was authorized once");
    assert_eq!(
        asked[0].header("traceparent"),
        Some(format!("00-{}-{}-01", payment.trace_id, payment.span_id).as_str())
    );
    assert!(
        asked[0]
            .header("x-amzn-trace-id")
            .is_some_and(|h| h.contains(&format!("Parent={}", payment.span_id))),
        "X-Ray's header names the HTTP span: {:?}",
        asked[0].header("x-amzn-trace-id")
    );

    let worker = spans
        .iter()
        .find(|s| {
            s.resource_str("service.name") == Some("tracekit-worker") && s.kind == SpanKind::Server
        })
        .expect("the worker's invocation span");
    assert_eq!(worker.attr_str("faas.trigger"), Some("pubsub"));
    let queue_name = flow.queue_url.rsplit('/').next().unwrap_or_default();
    let process = one(spans, &format!("process {queue_name}"), "tracekit-worker");
    assert_eq!(process.kind, SpanKind::Consumer);
    assert_eq!(process.links.len(), 1);
    assert_eq!(
        process.links[0].span_id, send.span_id,
        "linked to the SendMessage span"
    );
    assert_eq!(
        process.links[0]
            .attributes
            .get("messaging.message.id")
            .map(ToString::to_string),
        send.attr_str("messaging.message.id").map(str::to_owned)
    );
    assert_eq!(
        process.parent_span_id.as_deref(),
        Some(send.span_id.as_str()),
        "parent-if-single: a batch of one continues the producer's trace"
    );
    assert_eq!(process.trace_id, trace_id);
    for name in ["S3.GetObject", "DynamoDB.UpdateItem", "SNS.Publish"] {
        let span = one(spans, name, "tracekit-worker");
        assert_eq!(
            span.parent_span_id.as_deref(),
            Some(process.span_id.as_str()),
            "{name}"
        );
        assert_eq!(span.trace_id, trace_id, "{name}");
    }

    // The hop beyond SQS: the worker's Publish, the notifier's process span under it.
    let publish = one(spans, "SNS.Publish", "tracekit-worker");
    assert_eq!(publish.kind, SpanKind::Producer);
    assert_eq!(publish.attr_str("messaging.system"), Some("aws.sns"));
    assert_eq!(
        publish.attr_str("messaging.destination.name"),
        Some(flow.topic.topic_name.as_str())
    );
    let notifier = spans
        .iter()
        .find(|s| {
            s.resource_str("service.name") == Some("tracekit-notifier")
                && s.kind == SpanKind::Server
        })
        .expect("the notifier's invocation span");
    assert_eq!(notifier.attr_str("faas.trigger"), Some("pubsub"));
    let notified = one(
        spans,
        &format!("process {}", flow.topic.topic_name),
        "tracekit-notifier",
    );
    assert_eq!(notified.kind, SpanKind::Consumer);
    assert_eq!(notified.attr_str("messaging.system"), Some("aws.sns"));
    assert_eq!(
        notified.trace_id, trace_id,
        "SNS delivers one message: it continues the trace"
    );
    assert_eq!(
        notified.parent_span_id.as_deref(),
        Some(publish.span_id.as_str())
    );
    assert_eq!(notified.links.len(), 1);
    assert_eq!(notified.links[0].span_id, publish.span_id);
    let notification = one(spans, "S3.PutObject", "tracekit-notifier");
    assert_eq!(
        notification.parent_span_id.as_deref(),
        Some(notified.span_id.as_str())
    );
    assert!(
        notification
            .attr_str("aws.s3.key")
            .is_some_and(|key| key.starts_with("notifications/")),
        "{notification:?}"
    );
}

#[tokio::test]
async fn otlp_one_trace_from_the_request_to_the_worker() {
    let otlp = OtlpReceiver::start().expect("receiver");
    let flow = Flow::start(
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint())],
        Duration::from_secs(1),
    )
    .await
    .expect("flow");
    let (trace, parent) = order_through_the_flow(&flow).await;

    otlp.wait_for_spans(ORDER_SPANS, WAIT).await.expect("spans");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let spans_after = otlp.spans();
    check_the_orders_trace(&spans_after, &flow, &trace, &parent);
    flow.shutdown().await.expect("shutdown");

    // The trace page of this run, in headless Chromium: every span drawn, every service-map edge.
    let edges = page::service_map(&spans_after);
    for edge in [
        ("tracekit-api", "127.0.0.1"),
        ("tracekit-worker", "SNS"),
        ("SNS", "tracekit-notifier"),
        ("tracekit-notifier", "S3"),
    ] {
        assert!(
            edges.contains(&(edge.0.to_owned(), edge.1.to_owned())),
            "{edge:?} in {edges:?}"
        );
    }
    assert_eq!(edges.len(), 11, "{edges:?}");
    let html = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("end-to-end-trace.html");
    let page_spans: Vec<PageSpan> = spans_after.iter().map(PageSpan::from).collect();
    std::fs::write(&html, page::render("end to end", &page_spans, &edges)).expect("write the page");
    let rendered = page::check_in_browser(&html, &html.with_extension("png"), &page_spans, &edges)
        .await
        .expect("the page renders every span");
    assert_eq!(rendered.spans, ORDER_SPANS);
}

#[tokio::test]
async fn agent_one_trace_from_the_request_to_the_worker() {
    // The default in Lambda: no endpoint, so OTLP over UDP to the agent at AWS_XRAY_DAEMON_ADDRESS.
    let agent = XrayDaemon::recording().expect("agent stand-in");
    let flow = Flow::start(
        &[("AWS_XRAY_DAEMON_ADDRESS", agent.address().to_owned())],
        Duration::from_secs(1),
    )
    .await
    .expect("flow");
    let (trace, parent) = order_through_the_flow(&flow).await;
    agent
        .wait_for_spans(ORDER_SPANS, WAIT)
        .await
        .expect("spans over UDP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    check_the_orders_trace(&agent.spans(), &flow, &trace, &parent);
    assert!(agent.rejected().is_empty(), "{:?}", agent.rejected());
    assert!(
        agent.unsampled_spans().is_empty(),
        "T1U only with Application Signals"
    );
    assert!(
        agent.documents().is_empty(),
        "no segment documents on the OTLP path"
    );
    flow.shutdown().await.expect("shutdown");
    // The metrics the stacks' alarms and dashboards read: one line per function for the order, in
    // the stacks' namespace, as the service, under the invocation's trace.
    let metrics = |process: &integration_tests::FunctionProcess| {
        emf::checked(&process.stdout()).unwrap_or_else(|error| panic!("{error}"))
    };
    let api = metrics(&flow.api);
    assert_eq!(api.len(), 1, "{api:#?}");
    assert_eq!(api[0]["OrdersCreated"], json!(1.0));
    assert_eq!(api[0]["OrderValue"], json!(7.5), "3 × 250 cents");
    assert_eq!(api[0]["service"], "tracekit-api");
    assert_eq!(api[0]["traceId"], trace.as_str());
    assert_eq!(
        api[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        integration_tests::flow::METRICS_NAMESPACE
    );
    assert_eq!(metrics(&flow.worker)[0]["MessagesProcessed"], json!(1.0));
    assert_eq!(
        metrics(&flow.notifier)[0]["NotificationsWritten"],
        json!(1.0)
    );
}

/// The flow on the X-Ray segment path: the X-Ray API client, the daemon stand-in forwarding to it,
/// and the two functions.
async fn xray_flow() -> (aws_sdk_xray::Client, XrayDaemon, Flow) {
    let client = stack::xray_client().await;
    let daemon = XrayDaemon::start(client.clone()).expect("daemon stand-in");
    let flow = Flow::start(
        &[
            ("OTEL_TRACES_EXPORTER", "xray".to_owned()),
            ("AWS_XRAY_DAEMON_ADDRESS", daemon.address().to_owned()),
        ],
        Duration::from_secs(1),
    )
    .await
    .expect("flow");
    (client, daemon, flow)
}

#[tokio::test]
async fn xray_one_trace_with_the_segments_xray_needs() {
    let (client, daemon, flow) = xray_flow().await;
    let (trace, parent, header) = lambda_header();
    assert_eq!(
        status_code(&flow.post_order(&order(), &header).await.expect("post")),
        201
    );
    let (_, _, worker_header) = lambda_header();
    let delivery = flow
        .deliver(&worker_header, WAIT)
        .await
        .expect("deliver")
        .expect("message");
    assert!(delivery.failed.is_empty(), "{:?}", delivery.outcome);
    // api: 6 (with the payment provider's POST); worker: invocation, process, GetObject,
    // UpdateItem, Publish.
    daemon
        .wait_for_forwarded(11, WAIT)
        .await
        .expect("documents forwarded");
    assert!(
        daemon.forward_errors().is_empty(),
        "{:?}",
        daemon.forward_errors()
    );

    let documents = xray::batch_get_traces(&client, &[trace.as_str()], WAIT)
        .await
        .expect("the trace");
    let segment = documents
        .iter()
        .find(|d| d["origin"] == "AWS::Lambda::Function" && d["parent_id"] == parent.as_str())
        .unwrap_or_else(|| panic!("the api's function segment: {documents:#?}"));
    assert_eq!(segment["trace_id"], trace.as_str());
    for (operation, key) in [
        ("PutItem", "table_name"),
        ("PutObject", "bucket_name"),
        ("SendMessage", "queue_url"),
    ] {
        let sub = documents
            .iter()
            .find(|d| d["aws"]["operation"] == operation)
            .unwrap_or_else(|| panic!("a subsegment for {operation}: {documents:#?}"));
        assert_eq!(sub["namespace"], "aws", "{operation}");
        assert_eq!(sub["trace_id"], trace.as_str(), "{operation}");
        assert_eq!(
            sub["parent_id"], segment["id"],
            "{operation} hangs under the function"
        );
        if operation != "PutObject" {
            assert!(
                !sub["aws"][key].is_null(),
                "{operation} carries aws.{key}: {sub}"
            );
        }
    }
    let send = documents
        .iter()
        .find(|d| d["aws"]["operation"] == "SendMessage")
        .expect("send");
    let process = documents
        .iter()
        .find(|d| d["parent_id"] == send["id"])
        .unwrap_or_else(|| panic!("the worker's process span in the same trace: {documents:#?}"));
    assert_eq!(
        process["trace_id"],
        trace.as_str(),
        "parent-if-single: the worker continues the api's trace"
    );
    let worker_calls: Vec<_> = documents
        .iter()
        .filter(|d| d["parent_id"] == process["id"])
        .filter_map(|d| d["aws"]["operation"].as_str())
        .collect();
    for operation in ["GetObject", "UpdateItem", "Publish"] {
        assert!(
            worker_calls.contains(&operation),
            "{operation} under process: {worker_calls:?}"
        );
    }
    flow.shutdown().await.expect("shutdown");
}

/// The X-Ray segment path with a producer whose trace id X-Ray cannot hold (a random W3C id, an
/// OpenTelemetry producer's default): the worker's spans are not refused in silence; under
/// `parent-if-single` the message is linked instead of continued (segment documents drop links),
/// so its process subsegment and calls arrive under the worker's own trace, and no span is lost.
#[tokio::test]
async fn xray_a_w3c_producer_falls_back_to_the_workers_trace_and_loses_nothing() {
    // The daemon stand-in lives as long as the test.
    let (client, daemon, flow) = xray_flow().await;
    // A real order first, so that the third party's message names an order and a receipt that
    // exist; its own message is processed and deleted here.
    let (_, _, header) = lambda_header();
    assert_eq!(
        status_code(&flow.post_order(&order(), &header).await.expect("post")),
        201
    );
    let (_, _, first_header) = lambda_header();
    let first = flow
        .deliver(&first_header, WAIT)
        .await
        .expect("deliver")
        .expect("the api's message");
    let body = first.event["Records"][0]["body"]
        .as_str()
        .expect("a body")
        .to_owned();

    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    flow.send_as_w3c_producer(&body, traceparent)
        .await
        .expect("send");
    let (worker_trace, worker_parent, worker_header) = lambda_header();
    let delivery = flow
        .deliver(&worker_header, WAIT)
        .await
        .expect("deliver")
        .expect("the producer's message");
    assert_eq!(
        delivery.event["Records"].as_array().map(Vec::len),
        Some(1),
        "a batch of one"
    );
    assert!(delivery.failed.is_empty(), "{:?}", delivery.outcome);
    // Forwarding is asynchronous: wait for every document before reading the worker's trace
    // (the order's 11, the second delivery's invocation, process, GetObject, UpdateItem, Publish).
    daemon
        .wait_for_forwarded(16, WAIT)
        .await
        .expect("documents forwarded");

    let documents = xray::batch_get_traces(&client, &[worker_trace.as_str()], WAIT)
        .await
        .expect("the worker's trace");
    let invocation = documents
        .iter()
        .find(|d| d["parent_id"] == worker_parent.as_str())
        .unwrap_or_else(|| panic!("the worker's segment: {documents:#?}"));
    let process = documents
        .iter()
        .find(|d| {
            d["parent_id"] == invocation["id"]
                && d["name"].as_str().is_some_and(|n| n.contains("process"))
        })
        .unwrap_or_else(|| panic!("the process subsegment under the worker: {documents:#?}"));
    let calls: Vec<&str> = documents
        .iter()
        .filter(|d| d["parent_id"] == process["id"])
        .filter_map(|d| d["aws"]["operation"].as_str())
        .collect();
    for operation in ["GetObject", "UpdateItem"] {
        assert!(
            calls.contains(&operation),
            "{operation} under process: {calls:?}"
        );
    }
    flow.shutdown().await.expect("shutdown");
    let refused: Vec<String> = flow
        .worker
        .stdout()
        .into_iter()
        .filter(|line| line.contains("span export failed"))
        .collect();
    assert!(refused.is_empty(), "nothing refused: {refused:?}");
}

#[tokio::test]
async fn a_bad_body_and_a_failing_message_are_errors_and_nothing_is_lost() {
    let otlp = OtlpReceiver::start().expect("receiver");
    let flow = Flow::start(
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint())],
        Duration::from_secs(1),
    )
    .await
    .expect("flow");
    let (_, _, header) = lambda_header();
    let rejected = flow
        .post_order(&json!({"customer": "ada", "items": []}), &header)
        .await
        .expect("post");
    assert_eq!(status_code(&rejected), 400);
    let spans = otlp.wait_for_spans(2, WAIT).await.expect("spans");
    let validate = one(&spans, "validate order", "tracekit-api");
    assert_eq!(validate.status_code, SpanStatusCode::Error);
    assert_eq!(validate.attr_str("error.type"), Some("InvalidOrder"));
    assert_eq!(
        one(&spans, "POST /orders", "tracekit-api").attr_i64("http.response.status_code"),
        Some(400)
    );

    // A valid order whose receipt disappears before the worker runs: that message fails.
    let posted = flow.post_order(&order(), &header).await.expect("post");
    assert_eq!(status_code(&posted), 201);
    let InvocationOutcome::Response(body) = &posted else {
        unreachable!()
    };
    let response: Value = serde_json::from_slice(body).expect("json");
    let created: Value =
        serde_json::from_str(response["body"].as_str().expect("body")).expect("json");
    let order_id = created["id"].as_str().expect("id").to_owned();
    stack::s3_client()
        .await
        .delete_object()
        .bucket(stack::resource("RECEIPTS_BUCKET"))
        .key(format!("receipts/{order_id}.json"))
        .send()
        .await
        .expect("delete the receipt");
    otlp.clear();
    let (_, _, worker_header) = lambda_header();
    let first = flow
        .deliver(&worker_header, WAIT)
        .await
        .expect("deliver")
        .expect("message");
    assert_eq!(first.failed.len(), 1, "{:?}", first.outcome);
    // invocation, process, the failed GetObject; no UpdateItem without a receipt.
    let spans = otlp.wait_for_spans(3, WAIT).await.expect("worker spans");
    let process = spans
        .iter()
        .find(|s| s.kind == SpanKind::Consumer)
        .expect("process span");
    assert_eq!(process.status_code, SpanStatusCode::Error);
    assert_eq!(process.attr_str("error.type"), Some("BadReceipt"));

    // Not deleted: after the visibility timeout the same message comes back.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let again = flow
        .deliver(&worker_header, WAIT)
        .await
        .expect("deliver")
        .expect("redelivered");
    assert_eq!(again.failed, first.failed, "the same message, redelivered");
    let receive_count = again.event["Records"][0]["attributes"]["ApproximateReceiveCount"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(receive_count, "2");
    flow.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_5xx_answer_is_an_error_on_the_invocation_span() {
    // A table that does not exist: PutItem fails and the api answers 502. tracekit reads the status
    // from the response; the api records nothing of it itself.
    let agent = XrayDaemon::recording().expect("agent stand-in");
    let flow = Flow::start(
        &[
            ("AWS_XRAY_DAEMON_ADDRESS", agent.address().to_owned()),
            ("ORDERS_TABLE", stack::unique_name("no-such-table")),
        ],
        Duration::from_secs(1),
    )
    .await
    .expect("flow");
    let (_, _, header) = lambda_header();
    let posted = flow.post_order(&order(), &header).await.expect("post");
    assert_eq!(status_code(&posted), 502);
    let spans = agent.wait_for_spans(3, WAIT).await.expect("spans");
    let invocation = one(&spans, "POST /orders", "tracekit-api");
    assert_eq!(invocation.attr_i64("http.response.status_code"), Some(502));
    assert_eq!(invocation.status_code, SpanStatusCode::Error);
    assert_eq!(invocation.attr_str("error.type"), Some("502"));
    let put = one(&spans, "DynamoDB.PutItem", "tracekit-api");
    assert_eq!(put.status_code, SpanStatusCode::Error);
    flow.shutdown().await.expect("shutdown");
}

/// `TRACEKIT_SQS_SPANS=batch` on the real worker, a batch of 25 messages from 25 W3C producers
/// (each a trace of its own) through the agent's wire format: one CONSUMER span for the batch with
/// X-Ray's 20 links and the other 5 counted, each message on an INTERNAL span under it.
#[tokio::test]
async fn a_batch_span_keeps_x_rays_link_limit_and_counts_the_rest() {
    let agent = XrayDaemon::recording().expect("agent stand-in");
    let flow = Flow::start(
        &[
            ("AWS_XRAY_DAEMON_ADDRESS", agent.address().to_owned()),
            ("TRACEKIT_SQS_SPANS", "batch".to_owned()),
        ],
        Duration::from_secs(30),
    )
    .await
    .expect("flow");
    const MESSAGES: usize = 25;
    for n in 1..=MESSAGES {
        let traceparent = format!("00-{:032x}-53995c3f42cd8ad8-01", 0x1000 + n);
        flow.send_as_w3c_producer(&format!("not an order {n}"), &traceparent)
            .await
            .expect("send");
    }
    let (_, _, header) = lambda_header();
    let delivery = flow
        .deliver_up_to(&header, MESSAGES, WAIT)
        .await
        .expect("deliver")
        .expect("the batch");
    assert_eq!(
        delivery.event["Records"].as_array().map(Vec::len),
        Some(MESSAGES),
        "one batch"
    );
    assert_eq!(
        delivery.failed.len(),
        MESSAGES,
        "no body is an order: every message is reported"
    );
    // The invocation, the batch span, a span per message.
    let spans = agent
        .wait_for_spans(MESSAGES + 2, WAIT)
        .await
        .expect("spans over UDP");
    flow.shutdown().await.expect("shutdown");
    let queue_name = flow.queue_url.rsplit('/').next().unwrap_or_default();
    let process: Vec<_> = spans
        .iter()
        .filter(|s| s.name == format!("process {queue_name}"))
        .collect();
    let batch: Vec<_> = process
        .iter()
        .filter(|s| s.kind == SpanKind::Consumer)
        .collect();
    assert_eq!(batch.len(), 1, "{process:#?}");
    let batch = batch[0];
    assert_eq!(batch.links.len(), 20, "X-Ray's linked traces per segment");
    assert_eq!(batch.attr_i64("tracekit.links.dropped"), Some(5));
    assert_eq!(batch.attr_i64("messaging.batch.message_count"), Some(25));
    let messages: Vec<_> = process
        .iter()
        .filter(|s| s.kind == SpanKind::Internal)
        .collect();
    assert_eq!(messages.len(), MESSAGES);
    for span in &messages {
        assert_eq!(span.parent_span_id.as_deref(), Some(batch.span_id.as_str()));
        assert!(span.links.is_empty());
        assert_eq!(span.attr_str("error.type"), Some("MalformedBody"));
    }
}
