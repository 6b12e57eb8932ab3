//! The trace page in headless Chromium: every span drawn where the screenshot shows it, hostile span
//! names kept as text, and a check that fails when a span is missing.

use integration_tests::page::{self, PageSpan};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

const T0: u64 = 1_763_700_000_000_000_000;
const REQUEST_TRACE: &str = "6920f6a01a06d4c81cff9d6687c0176c";
const WORKER_TRACE: &str = "6920f6a10ecbda8c3396ce8f50f6f5d5";

fn span(
    id: &str,
    parent: Option<&str>,
    trace: &str,
    name: &str,
    kind: &str,
    service: &str,
    millis: std::ops::Range<u64>,
) -> PageSpan {
    PageSpan {
        span_id: id.to_owned(),
        parent_span_id: parent.map(str::to_owned),
        trace_id: trace.to_owned(),
        name: name.to_owned(),
        kind: kind.to_owned(),
        service: service.to_owned(),
        start_unix_nanos: T0 + millis.start * 1_000_000,
        end_unix_nanos: T0 + millis.end * 1_000_000,
        error: None,
        attributes: BTreeMap::from([("rpc.system".to_owned(), "aws-api".to_owned())]),
        links: Vec::new(),
    }
}

/// Two traces, an error, a zero-length span, a span whose parent is not on the page, and names that
/// would break out of the page if they were written as HTML.
fn spans() -> Vec<PageSpan> {
    let mut failed = span(
        "00000000000000c3",
        Some("00000000000000a1"),
        REQUEST_TRACE,
        "S3.PutObject",
        "CLIENT",
        "tracekit-api",
        30..90,
    );
    failed.error = Some("NoSuchBucket".to_owned());
    let mut process = span(
        "00000000000000b2",
        Some("00000000000000c4"),
        REQUEST_TRACE,
        "process orders",
        "CONSUMER",
        "tracekit-worker",
        120..140,
    );
    process.links = vec!["00000000000000c4".to_owned()];
    vec![
        span(
            "00000000000000a1",
            Some("53995c3f42cd8ad8"),
            REQUEST_TRACE,
            "POST /orders",
            "SERVER",
            "tracekit-api",
            0..110,
        ),
        span(
            "00000000000000c1",
            Some("00000000000000a1"),
            REQUEST_TRACE,
            "validate order",
            "INTERNAL",
            "tracekit-api",
            1..1,
        ),
        span(
            "00000000000000c2",
            Some("00000000000000a1"),
            REQUEST_TRACE,
            "DynamoDB.PutItem",
            "CLIENT",
            "tracekit-api",
            2..28,
        ),
        failed,
        span(
            "00000000000000c4",
            Some("00000000000000a1"),
            REQUEST_TRACE,
            "SQS.SendMessage",
            "PRODUCER",
            "tracekit-api",
            92..105,
        ),
        process,
        span(
            "00000000000000b1",
            None,
            WORKER_TRACE,
            "worker",
            "SERVER",
            "tracekit-worker",
            118..150,
        ),
        span(
            "00000000000000b3",
            Some("00000000000000b2"),
            REQUEST_TRACE,
            "</script><script>document.body.dataset.rendered='no'</script>",
            "CLIENT",
            "tracekit-worker",
            121..130,
        ),
        span(
            "00000000000000b4",
            Some("00000000000000b2"),
            REQUEST_TRACE,
            "<img src=x onerror=alert(1)>",
            "CLIENT",
            "tracekit-worker",
            131..139,
        ),
    ]
}

fn edges() -> BTreeSet<(String, String)> {
    [
        ("client", "tracekit-api"),
        ("tracekit-api", "DynamoDB"),
        ("tracekit-api", "S3"),
        ("tracekit-api", "SQS"),
        ("SQS", "tracekit-worker"),
        ("tracekit-worker", "DynamoDB"),
        ("tracekit-worker", "S3"),
    ]
    .into_iter()
    .map(|(from, to)| (from.to_owned(), to.to_owned()))
    .collect()
}

fn out(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

#[tokio::test]
async fn every_span_is_drawn_where_the_screenshot_shows_its_bar() {
    let spans = spans();
    let html = out("trace-page.html");
    std::fs::write(&html, page::render("tracekit page test", &spans, &edges()))
        .expect("write page");
    let rendered = page::check_in_browser(&html, &out("trace-page.png"), &spans, &edges())
        .await
        .expect("the page renders every span");
    assert_eq!(rendered.spans, spans.len());
    assert_eq!(rendered.edges, 7);
    assert_eq!(rendered.nodes, 6, "client, api, worker, DynamoDB, S3, SQS");
    let png = std::fs::read(&rendered.screenshot).expect("screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "the screenshot is a PNG");
}

#[tokio::test]
async fn the_check_fails_when_a_span_is_not_on_the_page() {
    let spans = spans();
    let html = out("trace-page-missing.html");
    // The page lacks the last span; the check is still asked for it.
    std::fs::write(
        &html,
        page::render("tracekit page test", &spans[..spans.len() - 1], &edges()),
    )
    .expect("write page");
    let error = page::check_in_browser(&html, &out("trace-page-missing.png"), &spans, &edges())
        .await
        .expect_err("a span the page does not draw fails the check");
    let message = error.to_string();
    assert!(message.contains("00000000000000b4"), "{message}");
    assert!(
        message.contains("8 span rows drawn, 9 spans expected"),
        "{message}"
    );
}

#[tokio::test]
async fn the_check_fails_when_the_service_map_misses_an_edge() {
    let spans = spans();
    let mut drawn = edges();
    drawn.remove(&("SQS".to_owned(), "tracekit-worker".to_owned()));
    let html = out("trace-page-edge.html");
    std::fs::write(&html, page::render("tracekit page test", &spans, &drawn)).expect("write page");
    let error = page::check_in_browser(&html, &out("trace-page-edge.png"), &spans, &edges())
        .await
        .expect_err("an edge the page does not draw fails the check");
    assert!(
        error.to_string().contains("no edge SQS → tracekit-worker"),
        "{error}"
    );
}
