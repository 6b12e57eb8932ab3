//! What a Powertools user expects, through real function processes: X-Ray metadata under
//! namespaces on every export path (the OTLP receiver's `aws.xray.metadata.<namespace>`, the agent's
//! datagrams, the segment's `metadata` read back from moto's X-Ray API); the handler's response and
//! error captured only when asked, cut to the bound, an HTTP response's credential headers
//! redacted; the cold start's `init` span; routes never traced, and the rules they are matched by;
//! and log lines kept per invocation, written only for the one that fails.

use integration_tests::xray::{self, XrayDaemon};
use integration_tests::{
    FunctionProcess, Invocation, InvocationOutcome, OtlpReceiver, ReceivedSpan, stack,
};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn spawn(binary: &str, env: &[(&str, String)]) -> FunctionProcess {
    FunctionProcess::spawn(&stack::function_binary(binary), env).expect("spawn")
}

fn header(trace_id: &str, parent: &str) -> String {
    format!("Root={trace_id};Parent={parent};Sampled=1")
}

async fn invoke(function: &FunctionProcess, payload: Value) -> InvocationOutcome {
    let trace_id = xray::new_trace_id();
    function
        .invoke(Invocation::json(payload).trace_header(header(&trace_id, &xray::new_segment_id())))
        .await
        .expect("invocation")
}

fn invocation_span(spans: &[ReceivedSpan]) -> &ReceivedSpan {
    spans
        .iter()
        .find(|span| span.attr_str("faas.invocation_id").is_some())
        .unwrap_or_else(|| panic!("no invocation span: {spans:#?}"))
}

/// A namespace's JSON object as the OTLP paths carry it.
fn namespace(span: &ReceivedSpan, name: &str) -> Value {
    let text = span
        .attr_str(&format!("aws.xray.metadata.{name}"))
        .unwrap_or_else(|| {
            panic!(
                "no namespace {name} on {}: {:?}",
                span.name, span.attributes
            )
        });
    serde_json::from_str(text).expect("a JSON object")
}

fn metadata_payload() -> Value {
    json!({
        "children": 0,
        "metadata": {
            "orders": {"basket": {"items": 3, "skus": ["a", "b"]}, "coupon": "SPRING"},
            "com.example": {"flag": true}
        }
    })
}

fn check_otlp_metadata(spans: &[ReceivedSpan], what: &str) {
    let invocation = invocation_span(spans);
    assert_eq!(
        namespace(invocation, "orders"),
        json!({"basket": {"items": 3, "skus": ["a", "b"]}, "coupon": "SPRING"}),
        "{what}"
    );
    assert_eq!(
        namespace(invocation, "com_example"),
        json!({"flag": true}),
        "{what}: a dot in a namespace becomes _"
    );
    assert!(
        !invocation
            .attributes
            .keys()
            .any(|key| key.starts_with("metadata_json.") || key.starts_with("metadata.")),
        "{what}: rewritten, not doubled: {:?}",
        invocation.attributes
    );
    let described = spans
        .iter()
        .find(|span| span.name == "described")
        .unwrap_or_else(|| panic!("{what}: no described span"));
    assert_eq!(
        namespace(described, "payment"),
        json!({"provider": "stripe"}),
        "{what}: a tracing field named metadata.payment.provider"
    );
}

#[tokio::test]
async fn metadata_reaches_the_otlp_receiver_one_object_per_namespace() {
    let otlp = OtlpReceiver::start().expect("receiver");
    let function = spawn(
        "traced-function",
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint())],
    );
    invoke(&function, metadata_payload()).await;
    let spans = otlp.wait_for_spans(2, WAIT).await.expect("spans");
    check_otlp_metadata(&spans, "OTLP/HTTP");
    assert_eq!(
        function
            .stdout()
            .iter()
            .filter(|line| line.contains("metadata namespace changed"))
            .count(),
        1,
        "one warning per call with a dotted namespace"
    );
}

#[tokio::test]
async fn metadata_reaches_the_agent_in_its_datagrams() {
    let daemon = XrayDaemon::recording().expect("agent stand-in");
    let function = spawn(
        "traced-function",
        &[("AWS_XRAY_DAEMON_ADDRESS", daemon.address().to_owned())],
    );
    invoke(&function, metadata_payload()).await;
    let spans = daemon.wait_for_spans(2, WAIT).await.expect("spans");
    check_otlp_metadata(&spans, "agent");
}

/// On the segment path the namespaces are nested in the document itself; read back from the X-Ray
/// API.
#[tokio::test]
async fn metadata_reaches_the_x_ray_api_nested_by_namespace() {
    stack::require_moto().await;
    let client = stack::xray_client().await;
    let daemon = XrayDaemon::start(client.clone()).expect("daemon stand-in");
    let function = spawn(
        "traced-function",
        &[
            ("OTEL_TRACES_EXPORTER", "xray".to_owned()),
            ("AWS_XRAY_DAEMON_ADDRESS", daemon.address().to_owned()),
        ],
    );
    let trace_id = xray::new_trace_id();
    let outcome = function
        .invoke(
            Invocation::json(metadata_payload())
                .trace_header(header(&trace_id, &xray::new_segment_id())),
        )
        .await
        .expect("invocation");
    assert!(
        matches!(outcome, InvocationOutcome::Response(_)),
        "{outcome:?}"
    );
    daemon.wait_for_forwarded(2, WAIT).await.expect("forwarded");
    let documents = xray::batch_get_traces(&client, &[trace_id.as_str()], WAIT)
        .await
        .expect("trace in the X-Ray API");
    let segment = documents
        .iter()
        .find(|d| d.get("origin").is_some())
        .unwrap_or_else(|| panic!("a segment: {documents:#?}"));
    assert_eq!(
        segment["metadata"]["orders"],
        json!({"basket": {"items": 3, "skus": ["a", "b"]}, "coupon": "SPRING"}),
        "{segment:#}"
    );
    assert_eq!(segment["metadata"]["com_example"], json!({"flag": true}));
    let described = documents
        .iter()
        .find(|d| d["name"] == "described")
        .unwrap_or_else(|| panic!("the described span: {documents:#?}"));
    assert_eq!(
        described["metadata"]["payment"],
        json!({"provider": "stripe"})
    );
}

#[tokio::test]
async fn the_response_and_error_are_captured_only_when_asked_and_cut_to_the_bound() {
    let otlp = OtlpReceiver::start().expect("receiver");
    let quiet = spawn(
        "traced-function",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint()),
            ("OTEL_SERVICE_NAME", "orders".to_owned()),
        ],
    );
    invoke(&quiet, json!({"children": 0})).await;
    invoke(&quiet, json!({"fail": "card PRIVACYCARD declined"})).await;
    let spans = otlp.wait_for_spans(2, WAIT).await.expect("spans");
    for span in &spans {
        assert!(
            span.attr("aws.xray.metadata.orders").is_none(),
            "off by default: {:?}",
            span.attributes
        );
    }
    otlp.clear();

    let capturing = spawn(
        "traced-function",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint()),
            ("OTEL_SERVICE_NAME", "orders".to_owned()),
            ("TRACEKIT_CAPTURE_RESPONSE", "true".to_owned()),
            ("TRACEKIT_CAPTURE_ERROR", "true".to_owned()),
            ("TRACEKIT_CAPTURE_MAX_BYTES", "64".to_owned()),
        ],
    );
    invoke(&capturing, json!({"children": 3})).await;
    let spans = otlp.wait_for_spans(4, WAIT).await.expect("spans");
    let captured = namespace(invocation_span(&spans), "orders");
    assert_eq!(captured["response"], json!({"ok": true, "children": 3}));
    otlp.clear();

    let long = "x".repeat(200);
    let outcome = invoke(&capturing, json!({"fail": long})).await;
    assert!(
        matches!(outcome, InvocationOutcome::Error { .. }),
        "{outcome:?}"
    );
    let spans = otlp.wait_for_spans(1, WAIT).await.expect("spans");
    let error = &namespace(invocation_span(&spans), "orders")["error"];
    assert_eq!(error["truncated"], true, "{error}");
    assert!(error["bytes"].as_u64().unwrap_or(0) > 200, "{error}");
    let kept = error["json"].as_str().expect("the cut JSON");
    assert_eq!(kept.len(), 64);
    assert!(
        kept.starts_with(r#"{"errorMessage":"xxx"#) || kept.starts_with(r#"{"errorType""#),
        "{kept}"
    );
}

#[tokio::test]
async fn the_cold_start_has_an_init_span_beside_the_first_invocation() {
    let otlp = OtlpReceiver::start().expect("receiver");
    let function = spawn(
        "traced-function",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint()),
            ("TRACEKIT_INIT_SPAN", "true".to_owned()),
        ],
    );
    let trace_id = xray::new_trace_id();
    let lambda_segment = xray::new_segment_id();
    function
        .invoke(
            Invocation::json(json!({"children": 1}))
                .trace_header(header(&trace_id, &lambda_segment)),
        )
        .await
        .expect("invocation");
    let spans = otlp.wait_for_spans(4, WAIT).await.expect("spans");
    let invocation = invocation_span(&spans);
    let init = spans
        .iter()
        .find(|span| span.name == "init")
        .unwrap_or_else(|| panic!("no init span: {spans:#?}"));
    assert_eq!(
        init.trace_id, invocation.trace_id,
        "the first invocation's trace"
    );
    assert_eq!(
        init.parent_span_id.as_deref(),
        Some(lambda_segment.as_str()),
        "beside the invocation, under Lambda's segment"
    );
    assert!(init.start_unix_nanos <= init.end_unix_nanos);
    assert!(
        init.end_unix_nanos <= invocation.start_unix_nanos,
        "init ends before the invocation starts"
    );
    let own = spans
        .iter()
        .find(|span| span.name == "tracekit init")
        .expect("tracekit's own init");
    assert_eq!(own.parent_span_id.as_deref(), Some(init.span_id.as_str()));
    assert!(own.start_unix_nanos >= init.start_unix_nanos);
    assert!(own.end_unix_nanos <= init.end_unix_nanos);
    // The process started before tracekit's init; the harness saw it start.
    let init_took = Duration::from_nanos(init.end_unix_nanos - init.start_unix_nanos);
    assert!(init_took < Duration::from_secs(30), "{init_took:?}");

    otlp.clear();
    invoke(&function, json!({"children": 0})).await;
    let warm = otlp.wait_for_spans(1, WAIT).await.expect("spans");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !otlp
            .spans()
            .iter()
            .chain(&warm)
            .any(|span| span.name == "init"),
        "one init span per process"
    );
}

#[tokio::test]
async fn init_span_is_off_unless_asked() {
    let otlp = OtlpReceiver::start().expect("receiver");
    let function = spawn(
        "traced-function",
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint())],
    );
    invoke(&function, json!({"children": 1})).await;
    let spans = otlp.wait_for_spans(2, WAIT).await.expect("spans");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !otlp
            .spans()
            .iter()
            .chain(&spans)
            .any(|span| span.name == "init"),
        "{spans:#?}"
    );
}

fn api_event(method: &str, path: &str) -> Value {
    let text =
        std::fs::read_to_string(stack::workspace_root().join("events/apigw-v2-get-order.json"))
            .expect("the sample event");
    let mut event: Value = serde_json::from_str(&text).expect("JSON");
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["path"] = json!(path);
    event["requestContext"]["http"]["method"] = json!(method);
    event["routeKey"] = json!(format!("{method} {path}"));
    event["requestContext"]["routeKey"] = json!(format!("{method} {path}"));
    event
}

#[tokio::test]
async fn an_excluded_route_sends_nothing_and_answers() {
    let daemon = XrayDaemon::recording().expect("agent stand-in");
    let function = spawn(
        "http-function",
        &[
            ("AWS_XRAY_DAEMON_ADDRESS", daemon.address().to_owned()),
            ("TRACEKIT_EXCLUDED_ROUTES", "GET /status/200".to_owned()),
            ("OTEL_AWS_APPLICATION_SIGNALS_ENABLED", "true".to_owned()),
            ("TRACEKIT_INIT_SPAN", "true".to_owned()),
        ],
    );
    let outcome = invoke(&function, api_event("GET", "/status/200")).await;
    assert_eq!(outcome.json().expect("JSON")["statusCode"], 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        daemon.spans().is_empty(),
        "not even unsampled spans for Application Signals: {:#?}",
        daemon.spans()
    );
    invoke(&function, api_event("GET", "/status/201")).await;
    let spans = daemon.wait_for_spans(1, WAIT).await.expect("spans");
    assert!(
        spans
            .iter()
            .all(|span| span.attr_str("url.path") != Some("/status/200")),
        "{spans:#?}"
    );
}

/// `TRACEKIT_EXCLUDED_ROUTES`' rules through a real process: a trailing or repeated slash is the
/// same path, the path's case is not ignored, `/internal/*` holds `/internal`.
#[tokio::test]
async fn excluded_routes_match_the_same_path_however_its_slashes_are_written() {
    let otlp = OtlpReceiver::start().expect("receiver");
    let function = spawn(
        "http-function",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint()),
            (
                "TRACEKIT_EXCLUDED_ROUTES",
                "GET /status/200,/internal/*".to_owned(),
            ),
        ],
    );
    for path in [
        "/status/200/",
        "//status/200",
        "/status//200",
        "/internal",
        "/internal/",
    ] {
        let outcome = invoke(&function, api_event("GET", path)).await;
        assert_eq!(outcome.json().expect("JSON")["statusCode"], 200, "{path}");
    }
    // Traced: another case, and a path the prefix does not hold. Each invocation is flushed before
    // the next is served, so once these arrive an excluded one's spans would have too.
    invoke(&function, api_event("GET", "/Status/200")).await;
    invoke(&function, api_event("GET", "/internals")).await;
    let spans = otlp.wait_for_spans(4, WAIT).await.expect("spans");
    let mut paths: Vec<&str> = spans
        .iter()
        .filter_map(|span| span.attr_str("url.path"))
        .collect();
    paths.sort_unstable();
    assert_eq!(paths, vec!["/Status/200", "/internals"], "{spans:#?}");
}

/// An entry that cannot match as written fails the init, naming the variable and the entry; one that
/// excludes every route is accepted with one warning.
#[tokio::test]
async fn excluded_routes_that_cannot_match_fail_the_init_and_everything_is_warned_about() {
    let refused = spawn(
        "http-function",
        &[
            ("OTEL_TRACES_EXPORTER", "none".to_owned()),
            (
                "TRACEKIT_EXCLUDED_ROUTES",
                "GET /health,/status/*/detail".to_owned(),
            ),
        ],
    );
    let mut waited = Duration::ZERO;
    while refused.exit_status().is_none() && waited < WAIT {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    let status = refused
        .exit_status()
        .expect("the init fails and the process exits");
    assert!(!status.success(), "{status:?}");
    let output = refused.stdout().join("\n") + &refused.stderr().join("\n");
    assert!(
        output.contains("TRACEKIT_EXCLUDED_ROUTES") && output.contains("/status/*/detail"),
        "{output}"
    );
    assert!(
        !output.contains("GET /health"),
        "the entry, not the list: {output}"
    );

    let everything = spawn(
        "http-function",
        &[
            ("OTEL_TRACES_EXPORTER", "none".to_owned()),
            ("TRACEKIT_EXCLUDED_ROUTES", "/*,/health".to_owned()),
        ],
    );
    let line = everything
        .wait_for_stdout(|line| line.contains("TRACEKIT_EXCLUDED_ROUTES"), WAIT)
        .await
        .expect("a warning at init");
    assert!(
        line.contains("WARN") && line.contains("every route"),
        "{line}"
    );
    let outcome = invoke(&everything, api_event("GET", "/status/200")).await;
    assert_eq!(outcome.json().expect("JSON")["statusCode"], 200);
    let warnings = everything
        .stdout()
        .iter()
        .filter(|line| line.contains("TRACEKIT_EXCLUDED_ROUTES"))
        .count();
    assert_eq!(warnings, 1, "once, not per invocation");
}

/// A captured response keeps its credential headers' names, never their values: a response built
/// by hand by a lambda_runtime handler, and lambda_http's for HTTP API and REST API requests.
#[tokio::test]
async fn a_captured_response_keeps_no_credential_header_value() {
    const TOKEN: &str = "Bearer CAPTUREDTOKEN7f3a";
    const COOKIE: &str = "session=CAPTUREDCOOKIE91c2";
    const SESSION: &str = "IQoCAPTUREDSESSION55d0";
    let otlp = OtlpReceiver::start().expect("receiver");
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint()),
        ("OTEL_SERVICE_NAME", "orders".to_owned()),
        ("TRACEKIT_CAPTURE_RESPONSE", "true".to_owned()),
    ];
    let leaks = |captured: &Value| {
        let text = captured.to_string();
        [TOKEN, COOKIE, SESSION, "session=1"]
            .into_iter()
            .filter(|secret| text.contains(secret))
            .collect::<Vec<_>>()
    };

    let by_hand = spawn("traced-function", &env);
    let response = json!({
        "statusCode": 200,
        "headers": {"Authorization": TOKEN, "Content-Type": "text/plain"},
        "multiValueHeaders": {"Set-Cookie": [COOKIE, "theme=dark"], "x-amz-security-token": [SESSION]},
        "body": "ok"
    });
    let outcome = invoke(&by_hand, json!({"children": 0, "respond": response})).await;
    assert_eq!(
        outcome.json().expect("JSON"),
        response,
        "the caller gets the response as the handler returned it"
    );
    let spans = otlp.wait_for_spans(1, WAIT).await.expect("spans");
    otlp.clear();
    let captured = namespace(invocation_span(&spans), "orders")["response"].clone();
    assert_eq!(
        captured["headers"]["Authorization"], "REDACTED",
        "{captured}"
    );
    assert_eq!(
        captured["headers"]["Content-Type"], "text/plain",
        "{captured}"
    );
    assert_eq!(
        captured["multiValueHeaders"]["Set-Cookie"],
        json!(["REDACTED", "REDACTED"]),
        "{captured}"
    );
    assert_eq!(
        captured["multiValueHeaders"]["x-amz-security-token"],
        json!(["REDACTED"]),
        "{captured}"
    );
    assert_eq!(captured["body"], "ok");
    assert!(leaks(&captured).is_empty(), "{captured}");

    // lambda_http answers the request's Authorization back, and sets the cookie `session=1`.
    let http = spawn("http-function", &env);
    let mut v2 = api_event("GET", "/status/200");
    v2["headers"]["authorization"] = json!(TOKEN);
    let rest_text =
        std::fs::read_to_string(stack::workspace_root().join("events/apigw-v1-get-order.json"))
            .expect("the sample event");
    let mut rest: Value = serde_json::from_str(&rest_text).expect("JSON");
    rest["headers"]["Authorization"] = json!(TOKEN);
    rest["multiValueHeaders"]["Authorization"] = json!([TOKEN]);
    // (event, where the credentials are, reason)
    for (event, reason) in [
        (v2, "HTTP API: headers and cookies"),
        (rest, "REST API: multiValueHeaders"),
    ] {
        let outcome = invoke(&http, event).await;
        let answer = outcome.json().expect("JSON");
        assert!(
            answer.to_string().contains(TOKEN),
            "{reason}: the caller gets it: {answer}"
        );
        let spans = otlp.wait_for_spans(2, WAIT).await.expect("spans");
        otlp.clear();
        let captured = namespace(invocation_span(&spans), "orders")["response"].clone();
        assert!(leaks(&captured).is_empty(), "{reason}: {captured}");
        let text = captured.to_string();
        assert!(
            text.contains("\"authorization\"") && text.contains("REDACTED"),
            "{reason}: the header's name is kept: {captured}"
        );
        assert_eq!(captured["statusCode"], 200, "{reason}: {captured}");
    }
}

fn debug_lines(function: &FunctionProcess) -> Vec<Value> {
    function
        .stdout()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["level"] == "DEBUG")
        .collect()
}

#[tokio::test]
async fn kept_log_lines_are_written_only_for_the_invocation_that_fails() {
    for entry in ["run", "concurrent"] {
        let function = spawn(
            "traced-function",
            &[
                ("OTEL_TRACES_EXPORTER", "none".to_owned()),
                ("TRACEKIT_LOG_BUFFER", "debug".to_owned()),
                ("TRACED_FUNCTION_ENTRY", entry.to_owned()),
                ("AWS_LAMBDA_MAX_CONCURRENCY", "4".to_owned()),
            ],
        );
        let calls = [
            json!({"debug": "detail of ok-1", "children": 0}),
            json!({"debug": "detail of bad", "fail": "no such order"}),
            json!({"debug": "detail of ok-2", "children": 0}),
        ];
        let outcomes =
            futures_util::future::join_all(calls.into_iter().map(|call| invoke(&function, call)))
                .await;
        assert!(
            matches!(outcomes[1], InvocationOutcome::Error { .. }),
            "{entry}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let kept = debug_lines(&function);
        assert_eq!(kept.len(), 1, "{entry}: {kept:#?}");
        assert_eq!(kept[0]["message"], "detail of bad", "{entry}");
        assert!(kept[0]["requestId"].is_string(), "{entry}: {:#?}", kept[0]);
    }
}
