//! Every way out of a function process loses no buffered span without a word: the runtime failing on
//! an invocation header it cannot read, the Runtime API answering `/next` with a 500, SIGTERM with
//! invocations in flight (under every entry point), SIGINT, and an agent that is not there.
//!
//! Each case uses the `amortized` flush with thresholds no test reaches, so every span is still
//! buffered when the process is asked to stop: what reaches the receiver came from the last flush.

use http::StatusCode;
use integration_tests::otlp::{SpanKind, SpanStatusCode};
use integration_tests::{FunctionProcess, Invocation, OtlpReceiver, ReceivedSpan, stack, xray};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);
/// Spans of one `{"children": 1}` invocation: the SERVER span and its child.
const SPANS: usize = 2;
/// Invocations answered before the process is asked to stop.
const ANSWERED: usize = 3;

/// Amortized thresholds no test reaches: nothing leaves the buffer before the last flush.
const HELD: [(&str, &str); 3] = [
    ("TRACEKIT_FLUSH", "amortized"),
    ("TRACEKIT_FLUSH_MAX_SPANS", "1000"),
    ("TRACEKIT_FLUSH_MAX_AGE_MS", "600000"),
];

fn spawn(receiver: &OtlpReceiver, env: &[(&str, &str)]) -> FunctionProcess {
    let mut env: Vec<(&str, String)> = HELD
        .iter()
        .chain(env)
        .map(|(key, value)| (*key, (*value).to_owned()))
        .collect();
    env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()));
    FunctionProcess::spawn(&stack::function_binary("traced-function"), &env).expect("spawn")
}

/// `ANSWERED` invocations of one child span each, all answered, none flushed.
async fn answer_some(function: &FunctionProcess, receiver: &OtlpReceiver) {
    for _ in 0..ANSWERED {
        let outcome = function
            .invoke(
                Invocation::json(json!({"children": 1, "quiet": true}))
                    .trace_header(xray::new_trace_header()),
            )
            .await
            .expect("invocation");
        assert!(outcome.json().is_ok(), "answered: {outcome:?}");
    }
    assert_eq!(receiver.request_count(), 0, "the spans are still buffered");
}

/// The tracekit lines, parsed, whose message contains `text`.
fn lines(function: &FunctionProcess, text: &str) -> Vec<Value> {
    function
        .stdout()
        .iter()
        .filter(|line| line.contains(text))
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn field(line: &Value, name: &str) -> u64 {
    line["fields"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} in {line}"))
}

/// The one line that says how the runtime ended, checked for this flush's count.
fn ending_line(function: &FunctionProcess, says: &str, exported: usize) -> Value {
    let ending = lines(function, "buffered spans flushed, exiting");
    assert_eq!(ending.len(), 1, "one line: {:?}", function.stdout());
    let line = ending[0].clone();
    let message = line["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "{says:?} in {message:?}");
    assert_eq!(field(&line, "exported"), exported as u64, "{line}");
    assert_eq!(field(&line, "dropped"), 0, "{line}");
    line
}

/// The runtime ended by itself: the process exits 1 (the runtime's error, or its panic made one, is
/// `main`'s; never a panic's 101), every span of the answered invocations arrived, and one line
/// says `says`.
async fn ended_by_itself(
    function: &FunctionProcess,
    receiver: &OtlpReceiver,
    says: &str,
    what: &str,
) {
    let status = function
        .wait_for_exit(WAIT)
        .await
        .expect("the runtime ends");
    assert_eq!(
        status.code(),
        Some(1),
        "{what}: the runtime's error is main's: {status:?}"
    );
    let spans = receiver
        .wait_for_spans(ANSWERED * SPANS, WAIT)
        .await
        .unwrap_or_else(|error| panic!("{what}: the answered invocations' spans: {error}"));
    assert_eq!(spans.len(), ANSWERED * SPANS, "{what}");
    ending_line(function, says, ANSWERED * SPANS);
}

#[tokio::test]
async fn an_invocation_header_the_runtime_cannot_read_loses_no_buffered_span() {
    // (header, value): the shapes lambda_runtime 1.5 fails on, as real callers have sent them.
    let headers = [
        ("client context", r#"{"custom":{"traceparent":5}}"#),
        ("cognito identity", "[1,2,3]"),
    ];
    // (entry point, AWS_LAMBDA_MAX_CONCURRENCY): each unreadable invocation ends the sequential
    // runtime, or one worker of the concurrent one for good.
    let entries = [("run", "1"), ("concurrent", "2")];
    for (what, value) in headers {
        for (entry, workers) in entries {
            let receiver = OtlpReceiver::start().expect("receiver");
            let function = spawn(
                &receiver,
                &[
                    ("TRACED_FUNCTION_ENTRY", entry),
                    ("AWS_LAMBDA_MAX_CONCURRENCY", workers),
                ],
            );
            answer_some(&function, &receiver).await;
            for _ in 0..workers.parse::<usize>().expect("a number") {
                let invocation =
                    Invocation::json(json!({"children": 1})).trace_header(xray::new_trace_header());
                let invocation = match what {
                    "client context" => invocation.client_context(value),
                    _ => invocation.cognito_identity(value),
                };
                function.deliver(invocation).await.expect("delivered");
            }
            let what = format!("{what}, {entry}");
            ended_by_itself(&function, &receiver, "the Lambda runtime failed", &what).await;
        }
    }
}

#[tokio::test]
async fn a_next_answered_500_loses_no_buffered_span() {
    // (entry point, AWS_LAMBDA_MAX_CONCURRENCY, what the line says): lambda_runtime 1.5 panics on a
    // `/next` answer without a request id; a concurrent worker's panic ends that worker.
    let entries = [
        ("run", "1", "the Lambda runtime panicked"),
        ("concurrent", "2", "the Lambda runtime failed"),
    ];
    for (entry, workers, says) in entries {
        let receiver = OtlpReceiver::start().expect("receiver");
        let function = spawn(
            &receiver,
            &[
                ("TRACED_FUNCTION_ENTRY", entry),
                ("AWS_LAMBDA_MAX_CONCURRENCY", workers),
            ],
        );
        answer_some(&function, &receiver).await;
        for _ in 0..workers.parse::<usize>().expect("a number") {
            function
                .fail_next(StatusCode::INTERNAL_SERVER_ERROR)
                .await
                .expect("served");
        }
        ended_by_itself(&function, &receiver, says, entry).await;
    }
}

/// The SERVER spans among `spans`, each checked as cut short by the shutdown, with its child under
/// it.
fn check_cut(spans: &[ReceivedSpan], cut: usize, entry: &str) {
    let servers: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|span| span.kind == SpanKind::Server)
        .collect();
    assert_eq!(servers.len(), cut, "{entry}: every cut invocation's span");
    for server in &servers {
        assert_eq!(
            server.status_code,
            SpanStatusCode::Error,
            "{entry}: {server:?}"
        );
        assert_eq!(server.attr_str("error.type"), Some("shutdown"), "{entry}");
        assert!(
            server.status_message.contains("SIGTERM"),
            "{entry}: the shutdown is named: {}",
            server.status_message
        );
    }
    let ids: HashSet<&str> = servers.iter().map(|span| span.span_id.as_str()).collect();
    let children: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|span| span.kind != SpanKind::Server)
        .collect();
    assert_eq!(children.len(), cut, "{entry}: one child each");
    for child in children {
        let parent = child.parent_span_id.as_deref().unwrap_or_default();
        assert!(
            ids.contains(parent),
            "{entry}: {} is not headless",
            child.name
        );
    }
}

#[tokio::test]
async fn sigterm_ends_every_invocation_in_flight_before_the_last_flush() {
    // (entry point, AWS_LAMBDA_MAX_CONCURRENCY): invocations in flight at SIGTERM, as many as the
    // entry point serves at once.
    let entries = [
        ("run", 1),
        ("runtime", 1),
        ("concurrent", 32),
        ("runtime_concurrent", 8),
    ];
    for (entry, in_flight) in entries {
        let receiver = OtlpReceiver::start().expect("receiver");
        let workers = in_flight.to_string();
        let function = spawn(
            &receiver,
            &[
                ("TRACED_FUNCTION_ENTRY", entry),
                ("AWS_LAMBDA_MAX_CONCURRENCY", workers.as_str()),
            ],
        );
        for _ in 0..in_flight {
            let payload = json!({"children": 1, "sleep_ms": 20_000});
            let invocation = Invocation::json(payload).trace_header(xray::new_trace_header());
            function.deliver(invocation).await.expect("delivered");
        }
        // Each child span logs, and ends, before its invocation starts sleeping.
        function
            .wait_for_stdout(|_| lines(&function, "working").len() == in_flight, WAIT)
            .await
            .unwrap_or_else(|error| panic!("{entry}: every invocation under way: {error}"));
        let status = function
            .shutdown()
            .await
            .expect("exits within the harness's bound");
        assert!(status.success(), "{entry}: {status:?}");
        let spans = receiver
            .wait_for_spans(in_flight * SPANS, WAIT)
            .await
            .unwrap_or_else(|error| panic!("{entry}: the cut invocations' spans: {error}"));
        check_cut(&spans, in_flight, entry);
        let line = ending_line(&function, "SIGTERM", in_flight * SPANS);
        assert_eq!(field(&line, "cut"), in_flight as u64, "{entry}: {line}");
    }
}

#[tokio::test]
async fn sigint_flushes_as_sigterm_does() {
    let receiver = OtlpReceiver::start().expect("receiver");
    let function = spawn(&receiver, &[]);
    answer_some(&function, &receiver).await;
    function.signal("INT").await.expect("SIGINT");
    let status = function.wait_for_exit(WAIT).await.expect("exits");
    assert!(status.success(), "{status:?}");
    let spans = receiver
        .wait_for_spans(ANSWERED * SPANS, WAIT)
        .await
        .expect("the buffered spans");
    assert_eq!(spans.len(), ANSWERED * SPANS);
    ending_line(&function, "SIGINT", ANSWERED * SPANS);
}

/// Spawns a function sending to the agent at `address`, flushing after every invocation, invokes it
/// `invocations` times and stops it; returns it with its shutdown line.
async fn through_the_agent(
    address: String,
    invocations: usize,
    children: u64,
) -> (FunctionProcess, Value) {
    let env = [
        ("AWS_XRAY_DAEMON_ADDRESS", address),
        ("TRACEKIT_FLUSH", "end-of-invocation".to_owned()),
    ];
    let function =
        FunctionProcess::spawn(&stack::function_binary("traced-function"), &env).expect("spawn");
    for _ in 0..invocations {
        let payload = json!({"children": children, "quiet": true, "padding": 2_000});
        let outcome = function
            .invoke(Invocation::json(payload).trace_header(xray::new_trace_header()))
            .await
            .expect("invocation");
        assert!(outcome.json().is_ok(), "answered: {outcome:?}");
    }
    assert!(function.shutdown().await.expect("exit").success());
    let line = lines(&function, "SIGTERM: buffered spans flushed")
        .first()
        .cloned()
        .unwrap_or_else(|| panic!("the shutdown line: {:?}", function.stdout()));
    (function, line)
}

#[tokio::test]
async fn an_agent_not_listening_is_said_once_and_what_the_kernel_refused_is_counted() {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let closed = udp.local_addr().expect("address").to_string();
    drop(udp);
    const INVOCATIONS: usize = 10;
    let (function, line) = through_the_agent(closed.clone(), INVOCATIONS, 1).await;
    let said = lines(&function, "nothing is listening");
    assert_eq!(said.len(), 1, "said once: {:?}", function.stdout());
    assert!(
        said[0].to_string().contains(&closed),
        "the address is named: {}",
        said[0]
    );
    // One datagram per flush; the kernel refuses the send after each ICMP, not every datagram.
    let (exported, dropped) = (
        field(&line, "total_exported"),
        field(&line, "total_dropped"),
    );
    assert_eq!(
        exported + dropped,
        (INVOCATIONS * SPANS) as u64,
        "every span is accounted for: {line}"
    );
    assert!(
        dropped > 0,
        "the refusals the kernel reported are counted: {line}"
    );
    assert!(exported > 0, "UDP cannot tell the rest were lost: {line}");
}

#[tokio::test]
async fn an_agent_that_never_reads_loses_what_udp_cannot_report() {
    // Bound and never read: its receive buffer fills and the kernel drops what follows, on the
    // receiving side, where the sender never hears of it.
    let never_read = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let address = never_read.local_addr().expect("address").to_string();
    const INVOCATIONS: usize = 20;
    const CHILDREN: u64 = 10;
    let (function, line) = through_the_agent(address, INVOCATIONS, CHILDREN).await;
    let spans = INVOCATIONS as u64 * (CHILDREN + 1);
    assert_eq!(
        field(&line, "total_exported"),
        spans,
        "the kernel took every datagram, and that is all the sender learns: {line}"
    );
    assert_eq!(field(&line, "total_dropped"), 0, "{line}");
    assert!(
        lines(&function, "span export failed").is_empty(),
        "no loss is claimed that UDP did not report: {:?}",
        function.stdout()
    );
    let mut datagram = vec![0u8; 65_536];
    never_read.set_nonblocking(true).expect("non-blocking");
    let mut received = 0;
    while never_read.recv(&mut datagram).is_ok() {
        received += 1;
    }
    assert!(
        received < INVOCATIONS,
        "the receive buffer overflowed: {received} of {INVOCATIONS} datagrams kept"
    );
}
