//! Faults on the export path never fail or stall an invocation: an OTLP collector that refuses, fails,
//! hangs or answers late; an X-Ray agent or daemon that cannot be resolved, reached or kept up with;
//! an invocation whose deadline is nearly spent; a burst of spans larger than the buffer. In each case
//! the function answers with its handler's result, the time it spends after answering stays within
//! the flush bound, and what was lost is counted and logged once per invocation.
//!
//! SIGTERM, which Lambda sends at shutdown when an extension (such as the ADOT collector layer) runs,
//! flushes what is buffered before the process exits.
//!
//! AWS services answering 500, 503 or 429 to SDK calls are in `aws_wire.rs`.

use integration_tests::otlp::Mode;
use integration_tests::{
    FunctionProcess, Invocation, InvocationOutcome, OtlpReceiver, stack, xray,
};
use serde_json::json;
use std::time::{Duration, SystemTime};

const FLUSH_TIMEOUT: Duration = Duration::from_millis(200);
/// What this shared two-core machine may add to a measured turnaround (scheduling, the harness).
const SLACK: Duration = Duration::from_millis(150);
const INVOCATIONS: usize = 3;
const WAIT: Duration = Duration::from_secs(15);

fn spawn(env: &[(&str, String)]) -> FunctionProcess {
    let mut env = env.to_vec();
    env.push((
        "TRACEKIT_FLUSH_TIMEOUT_MS",
        FLUSH_TIMEOUT.as_millis().to_string(),
    ));
    FunctionProcess::spawn(&stack::function_binary("traced-function"), &env).expect("spawn")
}

fn closed_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("address").port()
}

fn count_lines(function: &FunctionProcess, text: &str) -> usize {
    function
        .stdout()
        .iter()
        .chain(function.stderr().iter())
        .filter(|l| l.contains(text))
        .count()
}

/// Invokes `INVOCATIONS` times (10 child spans each) and checks each answer and turnaround; returns
/// the turnarounds.
async fn invoke_through(function: &FunctionProcess, what: &str) -> Vec<Duration> {
    let mut turnarounds = Vec::new();
    for _ in 0..INVOCATIONS {
        let timed = function
            .invoke_timed(
                Invocation::json(json!({"children": 10})).trace_header(xray::new_trace_header()),
            )
            .await
            .expect("invocation");
        let InvocationOutcome::Response(body) = &timed.outcome else {
            panic!(
                "{what}: the handler's response is lost: {:?}",
                timed.outcome
            );
        };
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(body).expect("JSON")["ok"],
            true,
            "{what}"
        );
        let turnaround = timed.turnaround().await.expect("next poll");
        assert!(
            turnaround < FLUSH_TIMEOUT + SLACK,
            "{what}: {turnaround:?} after answering, bound {FLUSH_TIMEOUT:?}"
        );
        turnarounds.push(turnaround);
    }
    assert_eq!(
        count_lines(function, "panicked"),
        0,
        "{what}: {:?}",
        function.stderr()
    );
    turnarounds
}

#[tokio::test]
async fn a_failing_otlp_collector_costs_at_most_the_flush_timeout_and_one_warning() {
    // (what, collector mode or a refused connection, how the loss is counted): a request the
    // collector refused is dropped; one sent and not answered in time may have arrived, and is
    // unconfirmed.
    let cases: [(&str, Option<Mode>, &str); 4] = [
        ("connection refused", None, "\"dropped\":11"),
        (
            "answers 500",
            Some(Mode::Fail(http::StatusCode::INTERNAL_SERVER_ERROR)),
            "\"dropped\":11",
        ),
        (
            "accepts, never answers",
            Some(Mode::Hang),
            "\"unconfirmed\":11",
        ),
        (
            "answers after 1 s",
            Some(Mode::Delay(Duration::from_secs(1))),
            "\"unconfirmed\":11",
        ),
    ];
    for (what, mode, counted) in cases {
        let receiver = OtlpReceiver::start().expect("receiver");
        let endpoint = match mode {
            Some(mode) => {
                receiver.set_mode(mode);
                receiver.endpoint()
            }
            None => format!("http://127.0.0.1:{}", closed_port()),
        };
        let function = spawn(&[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)]);
        let turnarounds = invoke_through(&function, what).await;
        function
            .wait_for_stdout(
                |_| count_lines(&function, "span export failed") >= INVOCATIONS,
                WAIT,
            )
            .await
            .expect("a warning per invocation");
        assert_eq!(
            count_lines(&function, "span export failed"),
            INVOCATIONS,
            "{what}: one warning per invocation"
        );
        let warning = function
            .stdout()
            .into_iter()
            .find(|l| l.contains("span export failed"))
            .unwrap_or_default();
        assert!(
            warning.contains(counted),
            "{what}: the loss is counted ({counted}): {warning}"
        );
        eprintln!("{what}: turnarounds {turnarounds:?}");
    }
}

#[tokio::test]
async fn a_collector_answering_within_the_timeout_gets_every_span() {
    let receiver = OtlpReceiver::start().expect("receiver");
    receiver.set_mode(Mode::Delay(Duration::from_millis(50)));
    let function = spawn(&[("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())]);
    invoke_through(&function, "answers after 50 ms").await;
    let spans = receiver
        .wait_for_spans(11 * INVOCATIONS, WAIT)
        .await
        .expect("spans");
    assert_eq!(spans.len(), 11 * INVOCATIONS);
    assert_eq!(count_lines(&function, "span export failed"), 0);
}

#[tokio::test]
async fn an_xray_daemon_that_cannot_be_resolved_or_reached_costs_nothing_more() {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let unreachable = udp.local_addr().expect("address").to_string();
    drop(udp);
    // (what, AWS_XRAY_DAEMON_ADDRESS)
    let cases = [
        ("unresolvable", "xray-daemon.invalid:2000".to_owned()),
        ("nothing listening", unreachable),
    ];
    for (what, address) in cases {
        let function = spawn(&[
            ("OTEL_TRACES_EXPORTER", "xray".to_owned()),
            ("AWS_XRAY_DAEMON_ADDRESS", address),
        ]);
        invoke_through(&function, what).await;
        let warnings = count_lines(&function, "span export failed");
        assert!(
            warnings <= INVOCATIONS,
            "{what}: at most one warning per invocation, saw {warnings}"
        );
    }
}

#[tokio::test]
async fn an_agent_that_cannot_be_resolved_reached_or_kept_up_with_costs_nothing_more() {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let closed = udp.local_addr().expect("address").to_string();
    drop(udp);
    // Bound and never read: its receive buffer fills and the kernel drops what follows.
    let never_read = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    // (what, AWS_XRAY_DAEMON_ADDRESS, fewest and most warnings over INVOCATIONS flushes)
    let cases = [
        (
            "unresolvable",
            "xray-agent.invalid:2000".to_owned(),
            INVOCATIONS,
            INVOCATIONS,
        ),
        // The socket is connected: the kernel reports the refused port on a later send.
        ("nothing listening", closed, 1, INVOCATIONS),
        (
            "slow to read",
            never_read.local_addr().expect("address").to_string(),
            0,
            INVOCATIONS,
        ),
    ];
    for (what, address, fewest, most) in cases {
        // No OTLP endpoint: the agent path, as in Lambda.
        let function = spawn(&[("AWS_XRAY_DAEMON_ADDRESS", address)]);
        invoke_through(&function, what).await;
        // A burst of 2,000 spans, some thirty full datagrams at once, to the same agent.
        let timed = function
            .invoke_timed(
                Invocation::json(json!({"children": 2000})).trace_header(xray::new_trace_header()),
            )
            .await
            .expect("invocation");
        assert!(
            matches!(timed.outcome, InvocationOutcome::Response(_)),
            "{what}: {:?}",
            timed.outcome
        );
        let turnaround = timed.turnaround().await.expect("next poll");
        assert!(
            turnaround < FLUSH_TIMEOUT + SLACK,
            "{what}: a burst cost {turnaround:?} after answering"
        );
        let warnings = count_lines(&function, "span export failed");
        assert!(
            (fewest..=most + 1).contains(&warnings),
            "{what}: {fewest} to {most} warnings (and one for the burst) expected, saw {warnings}"
        );
        eprintln!("{what}: {warnings} warnings, burst turnaround {turnaround:?}");
    }
}

#[tokio::test]
async fn a_nearly_spent_deadline_cuts_the_flush_short() {
    let receiver = OtlpReceiver::start().expect("receiver");
    receiver.set_mode(Mode::Hang);
    let function = FunctionProcess::spawn(
        &stack::function_binary("traced-function"),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
            // A flush timeout far beyond what the deadline leaves.
            ("TRACEKIT_FLUSH_TIMEOUT_MS", "5000".to_owned()),
        ],
    )
    .expect("spawn");
    let left = Duration::from_millis(80);
    let timed = function
        .invoke_timed(
            Invocation::json(json!({"children": 10}))
                .trace_header(xray::new_trace_header())
                .deadline(SystemTime::now() + left),
        )
        .await
        .expect("invocation");
    assert!(
        matches!(timed.outcome, InvocationOutcome::Response(_)),
        "{:?}",
        timed.outcome
    );
    let turnaround = timed.turnaround().await.expect("next poll");
    // The flush ends 10 ms before the deadline; the answer came some ms after the invocation began.
    assert!(
        turnaround < left + SLACK,
        "{turnaround:?} after answering with {left:?} left"
    );
    assert!(
        turnaround < Duration::from_secs(1),
        "the 5 s flush timeout did not apply"
    );
    // The collector recovers; the next invocation, with time to spare, exports as usual.
    receiver.set_mode(Mode::Accept);
    invoke_through(&function, "after a cut-short flush").await;
    receiver
        .wait_for_spans(11 * INVOCATIONS, WAIT)
        .await
        .expect("spans after recovery");
}

#[tokio::test]
async fn ten_thousand_spans_overflow_a_bounded_buffer_without_blocking_the_handler() {
    let receiver = OtlpReceiver::start().expect("receiver");
    let function = spawn(&[("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())]);
    // Warm up with an invocation that fits, and note the memory it took.
    invoke_through(&function, "warm-up").await;
    let (_, warm_peak) = function.memory_kib().expect("memory");
    receiver.clear();

    let timed = function
        .invoke_timed(
            Invocation::json(json!({"children": 10_000})).trace_header(xray::new_trace_header()),
        )
        .await
        .expect("invocation");
    let InvocationOutcome::Response(body) = &timed.outcome else {
        panic!("{:?}", timed.outcome);
    };
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(body).expect("JSON")["children"],
        10_000
    );
    let turnaround = timed.turnaround().await.expect("next poll");
    assert!(turnaround < FLUSH_TIMEOUT + SLACK, "{turnaround:?}");
    function
        .wait_for_stdout(|l| l.contains("span buffer full"), WAIT)
        .await
        .expect("the overflow is logged");
    assert_eq!(count_lines(&function, "span buffer full"), 1, "logged once");
    let (_, peak) = function.memory_kib().expect("memory");
    let delivered = receiver.spans();
    eprintln!(
        "10,000 spans: {} delivered, peak RSS {warm_peak} KiB before, {peak} KiB after, turnaround {turnaround:?}",
        delivered.len()
    );
    assert!(
        delivered.len() <= 2048,
        "the buffer holds at most 2048 spans"
    );
    assert!(
        peak.saturating_sub(warm_peak) < 16 * 1024,
        "memory stays bounded: {warm_peak} KiB → {peak} KiB"
    );
}

#[tokio::test]
async fn sigterm_during_a_burst_flushes_buffered_spans_before_exit() {
    let receiver = OtlpReceiver::start().expect("receiver");
    let function = spawn(&[("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())]);
    invoke_through(&function, "burst").await;
    receiver
        .wait_for_spans(11 * INVOCATIONS, WAIT)
        .await
        .expect("the burst's spans");

    // One more invocation is in its handler, its 10 child spans ended and buffered, when SIGTERM
    // arrives.
    let working = |function: &FunctionProcess| count_lines(function, "\"working\"");
    let in_flight = function.invoke(
        Invocation::json(json!({"children": 10, "sleep_ms": 10_000}))
            .trace_header(xray::new_trace_header()),
    );
    let terminate = async {
        function
            .wait_for_stdout(|_| working(&function) >= 10 * (INVOCATIONS + 1), WAIT)
            .await
            .expect("the last invocation's child spans");
        function.shutdown().await.expect("exit status")
    };
    let (answer, status) = tokio::join!(in_flight, terminate);
    assert!(
        answer.is_err(),
        "the invocation cut short has no answer: {answer:?}"
    );
    assert!(status.success(), "exits cleanly on SIGTERM: {status:?}");
    assert_eq!(count_lines(&function, "SIGTERM: buffered spans flushed"), 1);
    let spans = receiver.spans();
    let steps = spans.iter().filter(|s| s.name == "step").count();
    assert_eq!(
        steps,
        10 * (INVOCATIONS + 1),
        "every child span of the cut invocation was flushed"
    );
    assert_eq!(
        spans.len(),
        11 * (INVOCATIONS + 1),
        "and its invocation span, ended by the cut"
    );
}
