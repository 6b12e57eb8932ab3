//! The agent path, tracekit's default in Lambda: OTLP over UDP to the X-Ray agent at
//! `AWS_XRAY_DAEMON_ADDRESS`, with no OTLP endpoint set. A real function process sends to the
//! agent stand-in (`integration_tests::xray`), which checks every datagram as the agent would.
//!
//! Also here: the framing compared byte for byte with the datagrams AWS's own distribution writes
//! (aws-opentelemetry-distro's `OTLPUdpSpanExporter`, installed pinned by `scripts/devstack install`),
//! and Application Signals' unsampled spans (`T1U`).

use integration_tests::otlp::ReceivedSpan;
use integration_tests::xray::{self, XrayDaemon};
use integration_tests::{FunctionProcess, Invocation, InvocationOutcome, stack};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);
/// Long enough for a datagram sent on loopback to have arrived.
const SETTLE: Duration = Duration::from_millis(300);

fn spawn(agent: &str, env: &[(&str, &str)]) -> FunctionProcess {
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.push(("AWS_XRAY_DAEMON_ADDRESS", agent));
    FunctionProcess::spawn(&stack::function_binary("traced-function"), &env).expect("spawn")
}

/// A Lambda trace header with the given decision; returns it and its trace id in OTel form.
fn header(sampled: bool) -> (String, String) {
    let trace = xray::new_trace_id();
    let header = format!(
        "Root={trace};Parent={};Sampled={}",
        xray::new_segment_id(),
        u8::from(sampled)
    );
    (header, xray::otel_trace_id(&trace))
}

async fn invoke(function: &FunctionProcess, header: &str) {
    let outcome = function
        .invoke(Invocation::json(json!({"children": 2})).trace_header(header))
        .await
        .expect("invocation");
    assert!(
        matches!(outcome, InvocationOutcome::Response(_)),
        "{outcome:?}"
    );
}

fn server(spans: &[ReceivedSpan]) -> &ReceivedSpan {
    spans
        .iter()
        .find(|s| s.kind == integration_tests::otlp::SpanKind::Server)
        .unwrap_or_else(|| panic!("an invocation span among {spans:#?}"))
}

#[tokio::test]
async fn init_sends_nothing_and_the_first_flush_sends_the_trace() {
    let agent = XrayDaemon::recording().expect("agent stand-in");
    let function = spawn(agent.address(), &[]);
    function.init_duration().await.expect("init ends");
    tokio::time::sleep(SETTLE).await;
    assert_eq!(agent.datagram_count(), 0, "init sent a datagram");

    let (header, trace_id) = header(true);
    invoke(&function, &header).await;
    let spans = agent.wait_for_spans(3, WAIT).await.expect("the trace");
    assert!(spans.iter().all(|s| s.trace_id == trace_id), "{spans:#?}");
    assert_eq!(agent.datagram_count(), 1, "three spans, one datagram");
    let invocation = server(&spans);
    assert_eq!(
        invocation.flags & 0xff,
        1,
        "the W3C sampled flag travels in Span.flags"
    );
    assert_eq!(
        invocation.flags & 0x300,
        0x300,
        "and the parent (Lambda's segment) is remote"
    );
    function.shutdown().await.expect("exit");
}

#[tokio::test]
async fn unsampled_invocations_reach_the_agent_only_with_application_signals() {
    // Off (the default): Sampled=0 is honoured on the agent path and nothing is recorded.
    let agent = XrayDaemon::recording().expect("agent stand-in");
    let function = spawn(agent.address(), &[]);
    let (unsampled, _) = header(false);
    let (sampled, sampled_trace) = header(true);
    invoke(&function, &unsampled).await;
    invoke(&function, &sampled).await;
    agent
        .wait_for_spans(3, WAIT)
        .await
        .expect("the sampled trace");
    tokio::time::sleep(SETTLE).await;
    assert!(
        agent.spans().iter().all(|s| s.trace_id == sampled_trace),
        "only the sampled invocation: {:#?}",
        agent.spans()
    );
    assert!(
        agent.unsampled_spans().is_empty(),
        "no T1U without Application Signals"
    );
    assert_eq!(agent.datagram_count(), 1);
    function.shutdown().await.expect("exit");

    // On: the unsampled invocation's spans go as T1U, with the attributes Application Signals reads.
    let agent = XrayDaemon::recording().expect("agent stand-in");
    let function = spawn(
        agent.address(),
        &[
            ("OTEL_AWS_APPLICATION_SIGNALS_ENABLED", "true"),
            ("OTEL_SERVICE_NAME", "orders"),
        ],
    );
    let (unsampled, unsampled_trace) = header(false);
    invoke(&function, &unsampled).await;
    let spans = agent
        .wait_for_unsampled_spans(3, WAIT)
        .await
        .expect("T1U spans");
    assert!(spans.iter().all(|s| s.trace_id == unsampled_trace));
    assert!(
        agent.spans().is_empty(),
        "an unsampled invocation is never T1S"
    );
    let invocation = server(&spans);
    assert_eq!(invocation.flags & 0xff, 0, "not sampled");
    assert_eq!(invocation.attr_str("aws.local.service"), Some("orders"));
    assert_eq!(
        invocation.attr_str("aws.local.operation"),
        Some("traced-function/FunctionHandler")
    );
    assert_eq!(
        invocation.attr_str("aws.local.environment"),
        Some("lambda:default")
    );
    assert_eq!(invocation.attr_str("aws.span.kind"), Some("LOCAL_ROOT"));
    assert_eq!(invocation.attr_bool("aws.trace.flag.sampled"), Some(false));
    for step in spans.iter().filter(|s| s.name == "step") {
        assert_eq!(
            step.attr_str("aws.local.operation"),
            Some("traced-function/FunctionHandler")
        );
    }

    // A sampled invocation goes as T1S, with the same attributes.
    let (sampled, sampled_trace) = header(true);
    invoke(&function, &sampled).await;
    let spans = agent.wait_for_spans(3, WAIT).await.expect("T1S spans");
    assert!(spans.iter().all(|s| s.trace_id == sampled_trace));
    let invocation = server(&spans);
    assert_eq!(invocation.attr_str("aws.local.service"), Some("orders"));
    assert_eq!(invocation.attr_bool("aws.trace.flag.sampled"), Some(true));
    assert_eq!(agent.unsampled_spans().len(), 3, "nothing more as T1U");
    function.shutdown().await.expect("exit");
}

/// The framing of a datagram: the header line and the three-letter prefix.
fn framing(datagram: &[u8]) -> &[u8] {
    let newline = datagram
        .iter()
        .position(|&b| b == b'\n')
        .expect("a header line");
    &datagram[..newline + 4]
}

fn receive(socket: &std::net::UdpSocket) -> Vec<u8> {
    let mut buffer = vec![0; 70_000];
    let length = socket.recv(&mut buffer).expect("a datagram");
    buffer.truncate(length);
    buffer
}

#[tokio::test]
async fn datagrams_are_framed_as_aws_distribution_frames_them() {
    let python = std::env::var("TRACEKIT_ADOT_PYTHON").unwrap_or_else(|_| {
        panic!(
            "TRACEKIT_ADOT_PYTHON is not set: run the integration tests through scripts/with-devstack, \
             which installs AWS's distro (scripts/devstack install)"
        )
    });
    let script = stack::workspace_root().join("tests/python/aws_distro_udp.py");

    // AWS's exporter, to a bare socket and then to the stand-in.
    let bare = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    bare.set_read_timeout(Some(WAIT)).expect("timeout");
    let agent = XrayDaemon::recording().expect("agent stand-in");
    for address in [
        bare.local_addr().expect("address").to_string(),
        agent.address().to_owned(),
    ] {
        let status = tokio::process::Command::new(&python)
            .arg(&script)
            .arg(&address)
            .status()
            .await
            .unwrap_or_else(|e| panic!("running {python}: {e}"));
        assert!(status.success(), "{} failed: {status}", script.display());
    }
    let aws_sampled = receive(&bare);
    let aws_unsampled = receive(&bare);

    // The stand-in reads AWS's datagrams as it reads tracekit's.
    let spans = agent
        .wait_for_spans(2, WAIT)
        .await
        .expect("AWS's T1S spans");
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["DynamoDB.PutItem", "invocation"]);
    assert_eq!(
        agent
            .wait_for_unsampled_spans(2, WAIT)
            .await
            .expect("AWS's T1U spans")
            .len(),
        2
    );

    // tracekit's datagram, from a real function process, to a bare socket.
    let function = spawn(&bare.local_addr().expect("address").to_string(), &[]);
    invoke(&function, &header(true).0).await;
    let ours = receive(&bare);
    assert_eq!(
        String::from_utf8_lossy(framing(&ours)),
        String::from_utf8_lossy(framing(&aws_sampled)),
        "the same header line and T1S prefix, byte for byte"
    );
    assert_eq!(
        &framing(&aws_unsampled)[framing(&aws_unsampled).len() - 3..],
        b"T1U"
    );
    let base64 = |datagram: &[u8]| -> bool {
        datagram[framing(datagram).len()..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(b))
    };
    assert!(
        base64(&aws_sampled) && base64(&ours),
        "standard base64 after the prefix"
    );
    function.shutdown().await.expect("exit");
}
