//! Outbound HTTP through `tracekit::http_client::layer` on hyper-util's client, and through
//! `tracekit::http_client::reqwest_client` and its middleware on reqwest, against a real
//! local HTTP server (the scripted endpoint): the CLIENT span's attributes, the headers the request
//! carried (W3C and X-Ray, a user's own kept), 4xx/5xx and failed connections as errors, and no
//! query value recorded.

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use integration_tests::scripted::{ReceivedRequest, Scripted, ScriptedEndpoint};
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_aws::xray_exporter::SegmentTranslator;
use opentelemetry_sdk::trace::SpanData;
use std::time::Duration;
use tower::{Service, ServiceBuilder, ServiceExt};
use tracekit::testing::TestTelemetry;
use tracing::Instrument;

type Traced = tracekit::http_client::Traced<
    Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
>;

fn client() -> Traced {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    ServiceBuilder::new()
        .layer(tracekit::http_client::layer())
        .service(client)
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

/// Sends `request` under a `handler` span; the spans once flushed, and the answer's status.
async fn send(
    test: &TestTelemetry,
    request: http::Request<Empty<Bytes>>,
) -> (Vec<SpanData>, Result<u16, String>) {
    let mut client = client();
    let outcome = async {
        let ready = client.ready().await.map_err(|e| e.to_string())?;
        ready
            .call(request)
            .await
            .map(|response| response.status().as_u16())
            .map_err(|e| e.to_string())
    }
    .instrument(tracing::info_span!("handler"))
    .await;
    test.telemetry().force_flush(Duration::from_secs(5)).await;
    (test.spans(), outcome)
}

fn client_span(spans: &[SpanData]) -> &SpanData {
    spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .unwrap_or_else(|| panic!("no client span: {spans:#?}"))
}

#[tokio::test]
async fn a_request_is_a_client_span_and_carries_its_context_beside_the_users_headers() {
    let test = TestTelemetry::new();
    let endpoint = ScriptedEndpoint::start(vec![Scripted::json(200, "{}")]).expect("endpoint");
    let url = format!("{}/charges/42?card=4242424242424242&flag", endpoint.url());
    let request = http::Request::get(&url)
        .header("tracestate", "user=kept")
        .header("x-request-id", "r-1")
        .body(Empty::new())
        .expect("request");
    let (spans, outcome) = send(&test, request).await;
    assert_eq!(outcome, Ok(200));

    let span = client_span(&spans);
    let handler = spans.iter().find(|s| s.name == "handler").expect("handler");
    assert_eq!(span.name, "GET");
    assert_eq!(span.parent_span_id, handler.span_context.span_id());
    assert_eq!(attr(span, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(attr(span, "server.address").as_deref(), Some("127.0.0.1"));
    let port = endpoint
        .url()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(attr(span, "server.port"), Some(port));
    assert_eq!(attr(span, "url.scheme").as_deref(), Some("http"));
    assert_eq!(
        attr(span, "url.full"),
        Some(format!("{}/charges/42?card=REDACTED&flag", endpoint.url()))
    );
    assert_eq!(
        attr(span, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(span.status, Status::Unset);
    assert!(
        !format!("{span:?}").contains("4242424242424242"),
        "no query value anywhere on the span"
    );

    let received = endpoint.received();
    assert_eq!(received.len(), 1);
    assert_carries_the_context_beside_the_users_headers(span, &received[0]);
}

/// `sent` carries `span`'s context (W3C and X-Ray) and the user's own `tracestate` and
/// `x-request-id` as the user set them.
fn assert_carries_the_context_beside_the_users_headers(span: &SpanData, sent: &ReceivedRequest) {
    let trace = span.span_context.trace_id().to_string();
    let id = span.span_context.span_id().to_string();
    assert_eq!(
        sent.header("traceparent"),
        Some(format!("00-{trace}-{id}-01").as_str()),
        "W3C context naming the client span"
    );
    let xray = sent.header("x-amzn-trace-id").expect("the X-Ray header");
    assert!(
        xray.contains(&format!("Parent={id}")) && xray.contains(&trace[8..]),
        "X-Ray header naming the client span: {xray}"
    );
    assert_eq!(
        sent.header("tracestate"),
        Some("user=kept"),
        "the user's header wins"
    );
    assert_eq!(sent.header("x-request-id"), Some("r-1"));
}

/// `span` as the X-Ray exporters translate it: one segment document.
fn as_xray(span: &SpanData) -> serde_json::Value {
    let translator = SegmentTranslator::new();
    let documents = translator.translate_spans(std::slice::from_ref(span));
    assert_eq!(documents.len(), 1, "the span translates to one document");
    serde_json::from_str(&documents[0].to_string()).expect("a segment document")
}

#[tokio::test]
async fn a_4xx_or_5xx_answer_is_an_error_with_its_status_as_the_type() {
    // (status, the X-Ray flags the span translates to, as for SDK calls: throttle, error, fault)
    let cases = [
        (404u16, [false, true, false]),
        (429, [true, true, false]),
        (503, [false, false, true]),
    ];
    for (status, flags) in cases {
        let test = TestTelemetry::new();
        let endpoint =
            ScriptedEndpoint::start(vec![Scripted::json(status, "{}")]).expect("endpoint");
        let request = http::Request::post(format!("{}/hooks", endpoint.url()))
            .body(Empty::new())
            .expect("request");
        let (spans, outcome) = send(&test, request).await;
        assert_eq!(
            outcome,
            Ok(status),
            "the answer reaches the caller unchanged"
        );
        let span = client_span(&spans);
        assert_eq!(span.name, "POST");
        assert!(matches!(span.status, Status::Error { .. }), "{status}");
        assert_eq!(attr(span, "error.type"), Some(status.to_string()));
        assert_eq!(
            attr(span, "http.response.status_code"),
            Some(status.to_string())
        );
        let document = as_xray(span);
        for (flag, expected) in ["throttle", "error", "fault"].into_iter().zip(flags) {
            assert_eq!(
                document[flag].as_bool().unwrap_or(false),
                expected,
                "{flag} for {status}: {document}"
            );
        }
        assert_eq!(document["http"]["response"]["status"], status, "{document}");
    }
}

#[tokio::test]
async fn a_request_that_cannot_connect_is_an_error_named_by_its_type() {
    let test = TestTelemetry::new();
    // Bind and drop: a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let request = http::Request::get(format!("http://127.0.0.1:{port}/"))
        .body(Empty::new())
        .expect("request");
    let (spans, outcome) = send(&test, request).await;
    assert!(outcome.is_err(), "{outcome:?}");
    let span = client_span(&spans);
    assert!(matches!(span.status, Status::Error { .. }));
    assert_eq!(
        attr(span, "error.type").as_deref(),
        Some("hyper_util::client::legacy::client::Error")
    );
    assert_eq!(attr(span, "http.response.status_code"), None);
}

// reqwest, through tracekit's reqwest-middleware middleware: the same span and headers, a span per
// attempt behind a retry middleware, and a failure's message without the URL's secrets.

/// Sends a reqwest request under a `handler` span; the spans once flushed, and the answer's status.
async fn send_reqwest(
    test: &TestTelemetry,
    request: reqwest_middleware::RequestBuilder,
) -> (Vec<SpanData>, Result<u16, String>) {
    let outcome = request
        .send()
        .instrument(tracing::info_span!("handler"))
        .await
        .map(|response| response.status().as_u16())
        .map_err(|e| e.to_string());
    test.telemetry().force_flush(Duration::from_secs(5)).await;
    (test.spans(), outcome)
}

fn client_spans(spans: &[SpanData]) -> Vec<&SpanData> {
    let mut client: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Client)
        .collect();
    client.sort_by_key(|s| s.start_time);
    client
}

#[tokio::test]
async fn a_reqwest_request_is_the_same_client_span_with_the_same_headers() {
    let test = TestTelemetry::new();
    let endpoint = ScriptedEndpoint::start(vec![Scripted::json(201, "{}")]).expect("endpoint");
    let client = tracekit::http_client::reqwest_client(reqwest::Client::new());
    let url = format!("{}/charges?card=4242424242424242&flag", endpoint.url());
    let request = client
        .post(&url)
        .header("tracestate", "user=kept")
        .header("x-request-id", "r-1")
        .body(r#"{"amount_cents":1650,"card":"4242424242424242"}"#);
    let (spans, outcome) = send_reqwest(&test, request).await;
    assert_eq!(outcome, Ok(201));

    let span = client_span(&spans);
    let handler = spans.iter().find(|s| s.name == "handler").expect("handler");
    assert_eq!(span.name, "POST");
    assert_eq!(span.parent_span_id, handler.span_context.span_id());
    assert_eq!(attr(span, "http.request.method").as_deref(), Some("POST"));
    assert_eq!(attr(span, "server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(attr(span, "url.scheme").as_deref(), Some("http"));
    assert_eq!(
        attr(span, "url.full"),
        Some(format!("{}/charges?card=REDACTED&flag", endpoint.url()))
    );
    assert_eq!(
        attr(span, "http.response.status_code").as_deref(),
        Some("201")
    );
    assert_eq!(attr(span, "http.request.resend_count"), None);
    assert_eq!(span.status, Status::Unset);
    assert!(
        !format!("{span:?}").contains("4242424242424242"),
        "no query value or body anywhere on the span"
    );

    let received = endpoint.received();
    assert_eq!(received.len(), 1);
    let sent = &received[0];
    assert_carries_the_context_beside_the_users_headers(span, sent);
    assert_eq!(
        sent.body.as_ref(),
        br#"{"amount_cents":1650,"card":"4242424242424242"}"#,
        "the body goes out as the user wrote it"
    );
}

#[tokio::test]
async fn behind_a_retry_middleware_each_attempt_is_a_span_with_its_resend_count() {
    use reqwest_retry::RetryTransientMiddleware;
    use reqwest_retry::policies::ExponentialBackoff;

    let test = TestTelemetry::new();
    let endpoint = ScriptedEndpoint::start(vec![
        Scripted::json(503, "{}"),
        Scripted::json(500, "{}"),
        Scripted::json(200, "{}"),
    ])
    .expect("endpoint");
    let retry = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(1), Duration::from_millis(5))
        .build_with_max_retries(3);
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(RetryTransientMiddleware::new_with_policy(retry))
        .with(tracekit::http_client::TraceMiddleware::default())
        .build();
    let request = client.get(format!("{}/status", endpoint.url()));
    let (spans, outcome) = send_reqwest(&test, request).await;
    assert_eq!(outcome, Ok(200), "the retry middleware got its answer");

    let attempts = client_spans(&spans);
    assert_eq!(attempts.len(), 3, "one span per attempt: {spans:#?}");
    let handler = spans.iter().find(|s| s.name == "handler").expect("handler");
    let received = endpoint.received();
    assert_eq!(received.len(), 3);
    for (index, (span, sent)) in attempts.iter().zip(&received).enumerate() {
        assert_eq!(span.parent_span_id, handler.span_context.span_id());
        let resends = (index > 0).then(|| index.to_string());
        assert_eq!(attr(span, "http.request.resend_count"), resends);
        let id = span.span_context.span_id().to_string();
        assert!(
            sent.header("traceparent")
                .is_some_and(|header| header.contains(&id)),
            "attempt {index} carries its own span's context: {:?}",
            sent.header("traceparent")
        );
    }
    assert_eq!(attr(attempts[0], "error.type").as_deref(), Some("503"));
    assert_eq!(attr(attempts[1], "error.type").as_deref(), Some("500"));
    assert!(matches!(attempts[1].status, Status::Error { .. }));
    assert_eq!(attempts[2].status, Status::Unset);
}

#[tokio::test]
async fn a_reqwest_failure_is_an_error_whose_message_keeps_no_secret_of_the_url() {
    let test = TestTelemetry::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let client = tracekit::http_client::reqwest_client(reqwest::Client::new());
    let request = client.get(format!(
        "http://admin:hunter2@127.0.0.1:{port}/refunds?token=s3cr3t"
    ));
    let (spans, outcome) = send_reqwest(&test, request).await;
    let error = outcome.expect_err("nothing listens there");
    assert!(
        error.contains("s3cr3t"),
        "the caller's own error is reqwest's, unchanged: {error}"
    );

    let span = client_span(&spans);
    assert_eq!(
        attr(span, "error.type").as_deref(),
        Some("reqwest::error::Error")
    );
    let Status::Error { description } = &span.status else {
        panic!("an error: {span:#?}");
    };
    assert!(
        description.contains(&format!("127.0.0.1:{port}/refunds?token=REDACTED")),
        "the message names the redacted URL: {description}"
    );
    let recorded = format!("{span:?}");
    assert!(
        !recorded.contains("s3cr3t") && !recorded.contains("hunter2"),
        "no query value or password on the span: {recorded}"
    );
    assert_eq!(attr(span, "http.response.status_code"), None);
}
