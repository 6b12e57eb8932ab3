//! X-Ray annotations mean the same on every export path: `tracekit::annotate` and `annotation.*`
//! `tracing` fields reach the OTLP receiver and the agent's datagrams as attributes listed in
//! `aws.xray.annotations`, and X-Ray's API (moto, through BatchGetTraces) as the segment's
//! `annotations`. Every invocation span carries Powertools' `ColdStart` and `Service`; keys X-Ray
//! would refuse are made valid; the 51st annotation stays metadata.

use integration_tests::otlp::AttrValue;
use integration_tests::xray::{self, XrayDaemon};
use integration_tests::{
    FunctionProcess, Invocation, InvocationOutcome, OtlpReceiver, ReceivedSpan, stack,
};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn spawn(env: &[(&str, String)]) -> FunctionProcess {
    FunctionProcess::spawn(&stack::function_binary("traced-function"), env).expect("spawn")
}

fn header(trace_id: &str) -> String {
    format!(
        "Root={trace_id};Parent={};Sampled=1",
        xray::new_segment_id()
    )
}

async fn invoke(function: &FunctionProcess, payload: Value, trace_id: &str) {
    let outcome = function
        .invoke(Invocation::json(payload).trace_header(header(trace_id)))
        .await
        .expect("invocation");
    assert!(
        matches!(outcome, InvocationOutcome::Response(_)),
        "{outcome:?}"
    );
}

fn payload() -> Value {
    json!({"children": 0, "annotate": {"order_id": "o-17", "items": 3, "total": 12.5, "express": true, "customer tier": "gold"}})
}

/// The span's annotations as the OTLP paths carry them: key → value, for the keys listed.
fn annotations(span: &ReceivedSpan) -> Vec<(String, AttrValue)> {
    let listed = span
        .attr("aws.xray.annotations")
        .and_then(AttrValue::as_str_array)
        .unwrap_or_else(|| {
            panic!(
                "no aws.xray.annotations on {}: {:?}",
                span.name, span.attributes
            )
        });
    listed
        .into_iter()
        .map(|key| {
            let value = span
                .attr(key)
                .unwrap_or_else(|| panic!("{key} is listed but absent"))
                .clone();
            (key.to_owned(), value)
        })
        .collect()
}

fn check_otlp(spans: &[ReceivedSpan], coldstart: bool, what: &str) {
    let invocation = spans
        .iter()
        .find(|span| span.attr_str("faas.invocation_id").is_some())
        .unwrap_or_else(|| panic!("{what}: no invocation span"));
    let mut found = annotations(invocation);
    found.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        found,
        [
            ("ColdStart".to_owned(), AttrValue::Bool(coldstart)),
            ("Service".to_owned(), AttrValue::String("orders".into())),
            ("customer_tier".to_owned(), AttrValue::String("gold".into())),
            ("express".to_owned(), AttrValue::Bool(true)),
            ("items".to_owned(), AttrValue::Int(3)),
            ("order_id".to_owned(), AttrValue::String("o-17".into())),
            ("total".to_owned(), AttrValue::Double(12.5)),
        ],
        "{what}"
    );
    let tagged = spans
        .iter()
        .find(|span| span.name == "tagged")
        .unwrap_or_else(|| panic!("{what}: no tagged span"));
    assert_eq!(
        annotations(tagged),
        [("tier".to_owned(), AttrValue::String("gold".into()))],
        "{what}: a tracing field named annotation.tier"
    );
}

#[tokio::test]
async fn annotations_reach_the_otlp_receiver_listed_in_aws_xray_annotations() {
    let otlp = OtlpReceiver::start().expect("receiver");
    let function = spawn(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint()),
        ("OTEL_SERVICE_NAME", "orders".to_owned()),
    ]);
    invoke(&function, payload(), &xray::new_trace_id()).await;
    let first = otlp.wait_for_spans(2, WAIT).await.expect("spans");
    check_otlp(&first, true, "cold");
    otlp.clear();
    invoke(&function, payload(), &xray::new_trace_id()).await;
    let warm = otlp.wait_for_spans(2, WAIT).await.expect("spans");
    check_otlp(&warm, false, "warm");
    let changed: Vec<String> = function
        .stdout()
        .into_iter()
        .filter(|line| line.contains("annotation key changed"))
        .collect();
    assert_eq!(
        changed.len(),
        2,
        "one warning per call with a bad key: {changed:?}"
    );
}

#[tokio::test]
async fn annotations_reach_the_agent_in_its_datagrams() {
    let daemon = XrayDaemon::recording().expect("agent stand-in");
    let function = spawn(&[
        ("AWS_XRAY_DAEMON_ADDRESS", daemon.address().to_owned()),
        ("OTEL_SERVICE_NAME", "orders".to_owned()),
    ]);
    invoke(&function, payload(), &xray::new_trace_id()).await;
    let spans = daemon.wait_for_spans(2, WAIT).await.expect("spans");
    check_otlp(&spans, true, "agent");
}

#[tokio::test]
async fn fifty_annotations_at_most_and_the_invocation_ones_can_be_turned_off() {
    let otlp = OtlpReceiver::start().expect("receiver");
    let function = spawn(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint()),
        ("TRACEKIT_INVOCATION_ANNOTATIONS", "false".to_owned()),
    ]);
    let many: serde_json::Map<String, Value> =
        (0..60).map(|n| (format!("k{n:02}"), json!(n))).collect();
    invoke(
        &function,
        json!({"children": 0, "annotate": many}),
        &xray::new_trace_id(),
    )
    .await;
    let spans = otlp.wait_for_spans(2, WAIT).await.expect("spans");
    let invocation = spans
        .iter()
        .find(|span| span.attr_str("faas.invocation_id").is_some())
        .expect("invocation span");
    let listed = annotations(invocation);
    assert_eq!(listed.len(), 50, "X-Ray indexes 50");
    assert!(
        listed
            .iter()
            .all(|(key, _)| key != "ColdStart" && key != "Service"),
        "{listed:?}"
    );
    let kept = invocation
        .attributes
        .keys()
        .filter(|key| key.starts_with("annotation.k"))
        .count();
    assert_eq!(kept, 10, "the other ten stay, as metadata");
}

/// On the segment path opentelemetry-aws's translator writes the annotations; read back from the
/// X-Ray API.
#[tokio::test]
async fn annotations_reach_the_x_ray_api_as_segment_annotations() {
    stack::require_moto().await;
    let client = stack::xray_client().await;
    let daemon = XrayDaemon::start(client.clone()).expect("daemon stand-in");
    let function = spawn(&[
        ("OTEL_TRACES_EXPORTER", "xray".to_owned()),
        ("AWS_XRAY_DAEMON_ADDRESS", daemon.address().to_owned()),
        ("OTEL_SERVICE_NAME", "orders".to_owned()),
    ]);
    let trace_id = xray::new_trace_id();
    invoke(&function, payload(), &trace_id).await;
    daemon.wait_for_forwarded(2, WAIT).await.expect("forwarded");
    let documents = xray::batch_get_traces(&client, &[trace_id.as_str()], WAIT)
        .await
        .expect("trace in the X-Ray API");
    let segment = documents
        .iter()
        .find(|d| d.get("origin").is_some())
        .unwrap_or_else(|| panic!("a segment: {documents:#?}"));
    let annotations = &segment["annotations"];
    assert_eq!(annotations["ColdStart"], true, "{segment:#}");
    assert_eq!(annotations["Service"], "orders");
    assert_eq!(annotations["order_id"], "o-17");
    assert_eq!(annotations["items"], 3);
    assert_eq!(annotations["total"], 12.5);
    assert_eq!(annotations["express"], true);
    assert_eq!(annotations["customer_tier"], "gold");
    let tagged = documents
        .iter()
        .find(|d| d["name"] == "tagged")
        .unwrap_or_else(|| panic!("the tagged span: {documents:#?}"));
    assert_eq!(tagged["annotations"]["tier"], "gold");
}
