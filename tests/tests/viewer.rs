//! `tracekit-view`, the local trace viewer, run as a user runs it: the real binary (`tools/`, built by
//! `make test`), a real traced function under the Runtime API harness sending to it once on the agent
//! path (OTLP over UDP, tracekit's default in Lambda and under `cargo lambda watch`) and once over
//! OTLP/HTTP, and its page opened in headless Chromium.
//!
//! What the page draws is checked against what the test knows independently: the trace ids it chose,
//! Lambda's segment (the header's `Parent`) as the invocation span's parent, and the child spans' ids
//! from the function's own log lines. Malformed input (a datagram the agent would refuse, a request a
//! collector would refuse) is said on stderr, and the viewer carries on.

use integration_tests::page::{self, PageSpan};
use integration_tests::{FunctionProcess, Invocation, InvocationOutcome, Program, stack, xray};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// The viewer on free ports, and the addresses it printed.
struct Viewer {
    program: Program,
    page: String,
    agent: String,
    otlp_endpoint: String,
}

async fn start_viewer() -> Viewer {
    let args = [
        "--agent",
        "127.0.0.1:0",
        "--otlp",
        "127.0.0.1:0",
        "--page",
        "127.0.0.1:0",
    ];
    let program =
        Program::spawn(&stack::function_binary("tracekit-view"), &args).expect("tracekit-view");
    program
        .wait_for_stdout(|line| line.starts_with("tracekit-view: otlp"), WAIT)
        .await
        .expect("the viewer says where it listens");
    let stdout = program.stdout();
    let field = |prefix: &str| {
        stdout
            .iter()
            .find_map(|line| line.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {prefix:?} line: {stdout:#?}"))
            .to_owned()
    };
    let page = field("tracekit-view: page   ");
    let agent = field("tracekit-view: agent  udp ");
    let otlp_endpoint = field("tracekit-view: otlp   ")
        .trim_end_matches("/v1/traces")
        .to_owned();
    Viewer {
        program,
        page,
        agent,
        otlp_endpoint,
    }
}

/// A trace header under a fresh trace: the header, its trace id in OTel form, Lambda's segment id.
fn header() -> (String, String, String) {
    let trace = xray::new_trace_id();
    let segment = xray::new_segment_id();
    let header = format!("Root={trace};Parent={segment};Sampled=1");
    (header, xray::otel_trace_id(&trace), segment)
}

/// What the test expects of one trace: its Lambda segment, the invocation's children (span ids from
/// the function's log lines), whether the invocation failed.
struct Expected {
    segment: String,
    children: BTreeSet<String>,
    failed: bool,
}

/// Invokes `function` with `payload` under a fresh trace, and what the trace should hold.
async fn invoke(function: &FunctionProcess, payload: Value, failed: bool) -> (String, Expected) {
    let (header, trace_id, segment) = header();
    let outcome = function
        .invoke(Invocation::json(payload).trace_header(header))
        .await
        .expect("invocation");
    assert_eq!(
        matches!(outcome, InvocationOutcome::Error { .. }),
        failed,
        "{outcome:?}"
    );
    (
        trace_id,
        Expected {
            segment,
            children: BTreeSet::new(),
            failed,
        },
    )
}

/// The ids of the spans that logged `message` in `trace_id` (X-Ray form in the log line).
fn logged_span_ids(function: &FunctionProcess, trace_id: &str, message: &str) -> BTreeSet<String> {
    let xray_id = format!("1-{}-{}", &trace_id[..8], &trace_id[8..]);
    function
        .stdout()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["traceId"] == xray_id.as_str() && line["message"] == message)
        .filter_map(|line| line["spanId"].as_str().map(str::to_owned))
        .collect()
}

/// The viewer's summary line for `trace_id`, once it says `count`.
async fn summary_line(viewer: &Viewer, trace_id: &str, count: &str) -> String {
    let xray_id = format!("1-{}-{}", &trace_id[..8], &trace_id[8..]);
    viewer
        .program
        .wait_for_stdout(
            |line| line.starts_with(&xray_id) && line.contains(count),
            WAIT,
        )
        .await
        .unwrap_or_else(|e| panic!("the viewer's line for {xray_id}: {e}"))
}

fn out(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

#[tokio::test]
#[ignore = "needs the tracekit-view and traced-function binaries and headless Chromium (make test builds and installs them)"]
async fn the_viewer_draws_every_span_a_function_sent_over_udp_and_otlp_http() {
    let viewer = start_viewer().await;

    // A datagram the agent would refuse: refused loudly, and the viewer carries on.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    socket
        .send_to(
            b"{\"format\":\"json\",\"version\":1}\nT1Snot base64!",
            &viewer.agent,
        )
        .expect("send the malformed datagram");
    let refusal = viewer
        .program
        .wait_for_stderr(|line| line.contains("refused a datagram"), WAIT)
        .await
        .expect("the malformed datagram is refused on stderr");
    assert!(
        refusal.contains("the spans are not standard base64"),
        "the reason is said: {refusal}"
    );

    let mut expected: BTreeMap<String, Expected> = BTreeMap::new();

    // The agent path: the function is told no endpoint, only the agent's address, as in Lambda.
    let agent_function = FunctionProcess::spawn(
        &stack::function_binary("traced-function"),
        &[("AWS_XRAY_DAEMON_ADDRESS", viewer.agent.as_str())],
    )
    .expect("spawn");
    let (trace_id, mut trace) = invoke(&agent_function, json!({"children": 2}), false).await;
    let line = summary_line(&viewer, &trace_id, " 3 spans ").await;
    assert!(line.contains("no errors"), "{line}");
    agent_function.shutdown().await.expect("exit");
    trace.children = logged_span_ids(&agent_function, &trace_id, "working");
    assert_eq!(trace.children.len(), 2, "{:#?}", agent_function.stdout());
    expected.insert(trace_id, trace);

    // OTLP/HTTP, one trace that succeeds and one whose invocation fails.
    let otlp_function = FunctionProcess::spawn(
        &stack::function_binary("traced-function"),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", viewer.otlp_endpoint.as_str())],
    )
    .expect("spawn");
    let (ok_id, mut ok) = invoke(&otlp_function, json!({"children": 1}), false).await;
    let (failed_id, failed) = invoke(&otlp_function, json!({"fail": "out of tea"}), true).await;
    summary_line(&viewer, &ok_id, " 2 spans ").await;
    let line = summary_line(&viewer, &failed_id, " 1 span ").await;
    assert!(line.contains("1 error ("), "the failure is counted: {line}");
    assert!(line.contains("out of tea"), "and named: {line}");
    otlp_function.shutdown().await.expect("exit");
    ok.children = logged_span_ids(&otlp_function, &ok_id, "working");
    assert_eq!(ok.children.len(), 1, "{:#?}", otlp_function.stdout());
    expected.insert(ok_id, ok);
    expected.insert(failed_id, failed);

    // A request a collector would refuse: refused loudly too.
    let request = http::Request::post(format!("{}/v1/traces", viewer.otlp_endpoint))
        .header("content-type", "text/plain")
        .body(bytes::Bytes::from_static(b"spans"))
        .expect("request");
    let answer = stack::http_request(request).await.expect("POST");
    assert_eq!(answer.status(), 415);
    let refusal = viewer
        .program
        .wait_for_stderr(|line| line.contains("refused a request"), WAIT)
        .await
        .expect("the refused request is said on stderr");
    assert!(refusal.contains("text/plain"), "{refusal}");

    // The page carries exactly the spans the test caused, each where it belongs.
    let (spans, edges) = page::served_page(&viewer.page)
        .await
        .expect("the page's data");
    let traces: BTreeSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(
        traces,
        expected.keys().map(String::as_str).collect(),
        "the page's traces are the test's: {spans:#?}"
    );
    for (trace_id, trace) in &expected {
        let in_trace: Vec<&PageSpan> = spans.iter().filter(|s| s.trace_id == *trace_id).collect();
        let invocation = in_trace
            .iter()
            .find(|s| s.parent_span_id.as_deref() == Some(trace.segment.as_str()))
            .unwrap_or_else(|| panic!("an invocation span under Lambda's segment: {in_trace:#?}"));
        assert_eq!(invocation.kind, "SERVER");
        assert_eq!(invocation.error.is_some(), trace.failed, "{invocation:?}");
        let children: BTreeSet<String> = in_trace
            .iter()
            .filter(|s| s.span_id != invocation.span_id)
            .inspect(|s| assert_eq!(s.parent_span_id.as_deref(), Some(&*invocation.span_id)))
            .map(|s| s.span_id.clone())
            .collect();
        assert_eq!(children, trace.children, "the logged spans, and only them");
    }

    // And Chromium draws every one of them.
    let rendered = page::check_url_in_browser(&viewer.page, &out("viewer.png"), &spans, &edges)
        .await
        .expect("the page draws every span");
    assert_eq!(rendered.spans, 6, "3 + 2 + 1 spans");
    assert_eq!(
        viewer.program.exit_status(),
        None,
        "the viewer is still running"
    );
}
