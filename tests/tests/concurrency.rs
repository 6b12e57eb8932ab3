//! Lambda Managed Instances: one process serving several invocations at once through
//! `tracekit::run_concurrent` (`AWS_LAMBDA_MAX_CONCURRENCY` > 1). Each invocation keeps its own trace,
//! parent, error and spans; cold start is true once per process; the flush defaults to `amortized`,
//! with a background flush for a quiet environment and the SIGTERM flush at shutdown.

use futures_util::future::join_all;
use integration_tests::otlp::{ReceivedSpan, SpanKind, SpanStatusCode};
use integration_tests::xray::{self, XrayDaemon};
use integration_tests::{FunctionProcess, Invocation, InvocationOutcome, stack};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);
const CONCURRENCY: &str = "8";
const INVOCATIONS: usize = 48;
const CHILDREN: usize = 3;

fn spawn(agent: &XrayDaemon, env: &[(&str, &str)]) -> FunctionProcess {
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.extend([
        ("AWS_XRAY_DAEMON_ADDRESS", agent.address()),
        ("TRACED_FUNCTION_ENTRY", "concurrent"),
    ]);
    FunctionProcess::spawn(&stack::function_binary("traced-function"), &env).expect("spawn")
}

/// The most invocations in flight at once, from when each was served to when it was answered.
fn most_in_flight(intervals: &[(Instant, Instant)]) -> usize {
    let mut events: Vec<(Instant, i32)> = intervals
        .iter()
        .flat_map(|(served, answered)| [(*served, 1), (*answered, -1)])
        .collect();
    events.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, change) in events {
        now += change;
        most = most.max(now);
    }
    most as usize
}

#[tokio::test]
async fn concurrent_invocations_keep_their_own_trace_error_and_spans() {
    let agent = XrayDaemon::recording().expect("agent stand-in");
    let function = spawn(&agent, &[("AWS_LAMBDA_MAX_CONCURRENCY", CONCURRENCY)]);

    // Every fifth invocation fails, with a message naming it; the others open their child spans and
    // sleep, so that invocations overlap.
    let plan: Vec<(String, bool)> = (0..INVOCATIONS)
        .map(|n| (xray::new_trace_id(), n % 5 == 0))
        .collect();
    let calls = plan.iter().enumerate().map(|(n, (trace, fails))| {
        let payload = if *fails {
            json!({"fail": format!("order {n} refused")})
        } else {
            json!({"children": CHILDREN, "sleep_ms": 40})
        };
        let header = format!("Root={trace};Parent={};Sampled=1", xray::new_segment_id());
        function.invoke_timed(Invocation::json(payload).trace_header(header))
    });
    let outcomes = join_all(calls).await;
    let mut intervals = Vec::new();
    for ((n, (_, fails)), outcome) in plan.iter().enumerate().zip(outcomes) {
        let timed = outcome.expect("invocation");
        match (&timed.outcome, fails) {
            (InvocationOutcome::Error { error_message, .. }, true) => {
                assert_eq!(error_message, &format!("order {n} refused"));
            }
            (InvocationOutcome::Response(_), false) => {}
            (other, _) => panic!("invocation {n} answered {other:?}"),
        }
        intervals.push((timed.served_at, timed.answered_at));
    }
    let in_flight = most_in_flight(&intervals);
    assert!(
        in_flight > 1,
        "the harness served invocations concurrently (at most {in_flight} at once)"
    );

    // Amortized under managed concurrency: what is still buffered goes at SIGTERM.
    let status = function.shutdown().await.expect("exit");
    assert!(status.success(), "{status:?}");
    let failures = plan.iter().filter(|(_, fails)| *fails).count();
    let expected = (INVOCATIONS - failures) * (CHILDREN + 1) + failures;
    let spans = agent
        .wait_for_spans(expected, WAIT)
        .await
        .expect("every span");
    assert_eq!(spans.len(), expected, "each span once");

    let by_trace: HashMap<String, Vec<&ReceivedSpan>> =
        spans.iter().fold(HashMap::new(), |mut map, span| {
            map.entry(span.trace_id.clone()).or_default().push(span);
            map
        });
    assert_eq!(
        by_trace.len(),
        INVOCATIONS,
        "one trace per invocation, no other"
    );
    let mut cold = 0;
    for (n, (trace, fails)) in plan.iter().enumerate() {
        let spans = &by_trace[&xray::otel_trace_id(trace)];
        let servers: Vec<_> = spans
            .iter()
            .filter(|s| s.kind == SpanKind::Server)
            .collect();
        assert_eq!(servers.len(), 1, "invocation {n}: one invocation span");
        let server = servers[0];
        let steps: HashSet<&str> = spans
            .iter()
            .filter(|s| s.name == "step")
            .map(|s| s.parent_span_id.as_deref().unwrap_or_default())
            .collect();
        if *fails {
            assert_eq!(server.status_code, SpanStatusCode::Error, "invocation {n}");
            assert_eq!(
                server.status_message,
                format!("order {n} refused"),
                "invocation {n}: its own error, no other's"
            );
            assert!(steps.is_empty(), "invocation {n}: {steps:?}");
        } else {
            assert_ne!(server.status_code, SpanStatusCode::Error, "invocation {n}");
            assert_eq!(spans.len(), CHILDREN + 1, "invocation {n}");
            assert_eq!(
                steps,
                HashSet::from([server.span_id.as_str()]),
                "invocation {n}: every child under its own invocation span"
            );
        }
        if server.attr_bool("faas.coldstart") == Some(true) {
            cold += 1;
        }
    }
    assert_eq!(cold, 1, "cold start once per process");
}

#[tokio::test]
async fn a_quiet_managed_environment_flushes_in_the_background() {
    let agent = XrayDaemon::recording().expect("agent stand-in");
    let function = spawn(
        &agent,
        &[
            ("AWS_LAMBDA_MAX_CONCURRENCY", "4"),
            ("TRACEKIT_FLUSH_MAX_AGE_MS", "200"),
        ],
    );
    let header = xray::new_trace_header();
    let outcome = function
        .invoke(Invocation::json(json!({"children": 2})).trace_header(header))
        .await
        .expect("invocation");
    assert!(
        matches!(outcome, InvocationOutcome::Response(_)),
        "{outcome:?}"
    );
    // One invocation's spans, far below the size threshold and too young to be due when it ended;
    // no invocation follows, and the process is not shutting down: only the background flush can
    // send them.
    let spans = agent
        .wait_for_spans(3, WAIT)
        .await
        .expect("spans flushed without another invocation");
    assert_eq!(spans.len(), 3);
    assert!(function.exit_status().is_none(), "the process still runs");
    function.shutdown().await.expect("exit");
}

/// Spans a handler opens under `tokio::join!` and on tasks it spawns (`.instrument(...)`) keep their
/// own invocation's span as parent, while other invocations run beside them on the same threads.
#[tokio::test]
async fn joined_and_spawned_children_keep_their_parents() {
    let agent = XrayDaemon::recording().expect("agent stand-in");
    let function = spawn(
        &agent,
        &[
            ("AWS_LAMBDA_MAX_CONCURRENCY", CONCURRENCY),
            ("TRACEKIT_FLUSH", "end-of-invocation"),
        ],
    );
    let traces: Vec<String> = (0..16).map(|_| xray::new_trace_id()).collect();
    let calls = traces.iter().map(|trace| {
        let header = format!("Root={trace};Parent={};Sampled=1", xray::new_segment_id());
        function
            .invoke(Invocation::json(json!({"children": 0, "fan_out": true})).trace_header(header))
    });
    for outcome in join_all(calls).await {
        let outcome = outcome.expect("invocation");
        assert!(
            matches!(outcome, InvocationOutcome::Response(_)),
            "{outcome:?}"
        );
    }
    // Per invocation: its span, two joined, one spawned.
    let spans = agent
        .wait_for_spans(traces.len() * 4, WAIT)
        .await
        .expect("every span");
    assert_eq!(spans.len(), traces.len() * 4);
    for trace in &traces {
        let trace = xray::otel_trace_id(trace);
        let own: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.trace_id == trace).collect();
        let server = own
            .iter()
            .find(|s| s.kind == SpanKind::Server)
            .expect("the invocation span");
        let mut names: Vec<&str> = own
            .iter()
            .filter(|s| s.parent_span_id.as_deref() == Some(server.span_id.as_str()))
            .map(|s| s.name.as_str())
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["joined", "joined", "spawned"], "trace {trace}");
    }
    function.shutdown().await.expect("exit");
}
