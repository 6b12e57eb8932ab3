//! `make demo`: a tracekit function under a local Lambda Runtime API, and the trace it produced.
//!
//! The function is a real process speaking the Runtime API; its spans leave it over OTLP/HTTP to a
//! local receiver standing in for the ADOT collector layer. The demo invokes it twice under one fresh
//! X-Ray trace header (as Lambda sets it with active tracing) — once successfully, once failing — and
//! prints the trace as a tree with durations, kinds and key attributes.

use integration_tests::otlp::{ReceivedSpan, SpanStatusCode};
use integration_tests::{
    FunctionProcess, Invocation, InvocationOutcome, OtlpReceiver, stack, xray,
};
use serde_json::json;
use std::time::Duration;

const FUNCTION: &str = "traced-function";
const KEY_ATTRIBUTES: &[&str] = &[
    "faas.trigger",
    "faas.invocation_id",
    "faas.coldstart",
    "cloud.resource_id",
    "error.type",
    "step",
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let otlp = OtlpReceiver::start()?;
    let binary = stack::function_binary(FUNCTION);
    let function = FunctionProcess::spawn(
        &binary,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint()),
            ("OTEL_SERVICE_NAME", "tracekit-demo".to_owned()),
        ],
    )?;

    let trace_id = xray::new_trace_id();
    let lambda_segment = xray::new_segment_id();
    let header = format!("Root={trace_id};Parent={lambda_segment};Sampled=1");
    let ok = function
        .invoke_timed(Invocation::json(json!({"children": 3})).trace_header(header.clone()))
        .await?;
    let failed = function
        .invoke_timed(
            Invocation::json(json!({"fail": "order 42 is out of stock"})).trace_header(header),
        )
        .await?;
    let spans = otlp.wait_for_spans(5, Duration::from_secs(10)).await?;
    function.shutdown().await?;

    let mut out = String::new();
    out.push_str(&format!(
        "trace {trace_id}  (Lambda-Runtime-Trace-Id parent {lambda_segment})\n"
    ));
    for (label, outcome) in [("invocation 1", &ok), ("invocation 2", &failed)] {
        let answer = match &outcome.outcome {
            InvocationOutcome::Response(body) => {
                format!("response {}", String::from_utf8_lossy(body))
            }
            InvocationOutcome::Error {
                error_type,
                error_message,
                ..
            } => {
                format!("error {error_type}: {error_message}")
            }
        };
        out.push_str(&format!(
            "{label}: {answer}  (caller waited {} µs)\n",
            outcome.latency().as_micros()
        ));
    }
    out.push_str(&format!(
        "\nLambda segment {lambda_segment} (written by Lambda with active tracing)\n"
    ));
    print_children(&spans, Some(&lambda_segment), 1, &mut out);
    let outside = spans
        .iter()
        .filter(|s| s.trace_id != xray::otel_trace_id(&trace_id))
        .count();
    out.push_str(&format!(
        "\n{} spans received over OTLP by the local receiver; {outside} outside the trace\n",
        spans.len()
    ));
    std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes())?;
    if outside > 0 {
        return Err("spans escaped the invocation's trace".into());
    }
    Ok(())
}

fn print_children(spans: &[ReceivedSpan], parent: Option<&str>, depth: usize, out: &mut String) {
    let mut children: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.parent_span_id.as_deref() == parent)
        .collect();
    children.sort_by_key(|s| s.start_unix_nanos);
    for span in children {
        let status = match span.status_code {
            SpanStatusCode::Error => format!("  ERROR {}", span.status_message),
            _ => String::new(),
        };
        let attributes: Vec<String> = KEY_ATTRIBUTES
            .iter()
            .filter_map(|key| span.attr(key).map(|value| format!("{key}={value}")))
            .collect();
        out.push_str(&format!(
            "{:indent$}└─ {} [{:?}] {:.3} ms {}{status}\n",
            "",
            span.name,
            span.kind,
            span.duration().as_secs_f64() * 1000.0,
            attributes.join(" "),
            indent = depth * 3
        ));
        print_children(spans, Some(&span.span_id), depth + 1, out);
    }
}
