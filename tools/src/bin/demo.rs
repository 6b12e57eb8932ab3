//! `make demo`: the orders flow end to end on this machine, and the trace it produced.
//!
//! The real `api`, `worker` and `notifier` binaries run as Lambda processes under the harness's
//! Runtime API, against LocalStack (S3, SQS, SNS) and moto (DynamoDB). The api is invoked with
//! `POST /orders` under a fresh X-Ray trace header, as Lambda sets it with active tracing; the
//! harness then does what the SQS event source mapping does and invokes the worker with the
//! message, and what SNS's Lambda trigger does with the `order.processed` notification the worker
//! publishes, invoking the notifier with it. Spans leave the three processes
//! the way tracekit sends them in Lambda by default: OTLP over UDP to the X-Ray agent at
//! `AWS_XRAY_DAEMON_ADDRESS`, here a stand-in that checks every datagram. The demo prints the
//! trace as a tree (durations, kinds, key attributes), the consumers' links, and the service map edges,
//! then writes the trace page (`demo-output/trace-<id>.html`, waterfall and service map in one file),
//! checks in headless Chromium that it renders every span, and keeps the screenshot beside it.

use integration_tests::flow::Flow;
use integration_tests::otlp::{ReceivedSpan, SpanKind, SpanStatusCode};
use integration_tests::page::{self, KEY_ATTRIBUTES, PageSpan, service, service_map};
use integration_tests::{InvocationOutcome, XrayDaemon, emf, stack, xray};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // No OTLP endpoint: the functions send to the agent, as they do in Lambda.
    let agent = XrayDaemon::recording()?;
    let flow = Flow::start(
        &[("AWS_XRAY_DAEMON_ADDRESS", agent.address().to_owned())],
        Duration::from_secs(5),
    )
    .await?;

    let trace_id = xray::new_trace_id();
    let lambda_segment = xray::new_segment_id();
    let header = format!("Root={trace_id};Parent={lambda_segment};Sampled=1");
    let order = json!({"customer": "ada", "items": [{"sku": "tea-assam", "quantity": 3, "unit_price_cents": 250}]});
    let posted = flow.post_order(&order, &header).await?;
    let worker_header = format!(
        "Root={};Parent={};Sampled=1",
        xray::new_trace_id(),
        xray::new_segment_id()
    );
    let delivery = flow
        .deliver(&worker_header, WAIT)
        .await?
        .ok_or("the api sent no message to the queue")?;
    let notifier_header = format!(
        "Root={};Parent={};Sampled=1",
        xray::new_trace_id(),
        xray::new_segment_id()
    );
    let notified = flow
        .notify(&notifier_header, WAIT)
        .await?
        .ok_or("the worker published no order.processed notification")?;
    // api 6 (invocation, validate, the payment provider's POST, PutItem, PutObject, SendMessage),
    // worker 5 (invocation, process, GetObject, UpdateItem, Publish), notifier 3.
    let spans = agent.wait_for_spans(14, WAIT).await?;
    flow.shutdown().await?;

    let mut out = String::new();
    out.push_str(&format!(
        "POST /orders        → {}\nworker batch        → {}\nnotifier (SNS)      → {}\n\n",
        describe(&posted),
        describe(&delivery.outcome),
        describe(&notified.outcome)
    ));
    out.push_str(&format!(
        "trace {trace_id}\nLambda segment {lambda_segment} (the api's parent, written by Lambda with active tracing)\n"
    ));
    print_children(&spans, Some(&lambda_segment), 1, &mut out);
    // The worker's and the notifier's invocations have traces of their own (Lambda's); their
    // process spans continue ours.
    for root in spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server && s.trace_id != xray::otel_trace_id(&trace_id))
    {
        out.push_str(&format!(
            "\n{} invocation (trace {}), whose process span joined the trace above:\n",
            service(root),
            root.trace_id
        ));
        print_span(root, 1, &mut out);
    }

    out.push_str("\nlinks\n");
    for span in spans.iter().filter(|s| !s.links.is_empty()) {
        for link in &span.links {
            let target = spans
                .iter()
                .find(|s| s.span_id == link.span_id)
                .map_or("?", |s| s.name.as_str());
            out.push_str(&format!(
                "   {} ──link──▶ {target} ({})\n",
                span.name, link.span_id
            ));
        }
    }

    out.push_str("\nservice map\n");
    let edges = service_map(&spans);
    for (from, to) in &edges {
        out.push_str(&format!("   {from} → {to}\n"));
    }
    let outside = spans
        .iter()
        .filter(|s| s.trace_id != xray::otel_trace_id(&trace_id) && s.kind != SpanKind::Server)
        .count();
    out.push_str(&format!(
        "\n{} spans received by the X-Ray agent stand-in in {} datagrams (OTLP over UDP, T1S); {outside} outside the request's trace (besides the consumers' invocations)\n",
        spans.len(),
        agent.datagram_count()
    ));
    // The metrics each function wrote beside its log lines (CloudWatch embedded metric format).
    out.push_str(
        "\nmetrics (EMF lines on each function's stdout, namespace as the stacks set it)\n",
    );
    let mut metric_lines = 0;
    for (function, process) in [
        ("api", &flow.api),
        ("worker", &flow.worker),
        ("notifier", &flow.notifier),
    ] {
        for line in emf::checked(&process.stdout())? {
            metric_lines += 1;
            let names: Vec<String> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|metric| metric["Name"].as_str())
                .map(|name| format!("{name}={}", line[name]))
                .collect();
            out.push_str(&format!(
                "   {function:<8} {} [{}] {}  traceId {}\n",
                line["_aws"]["CloudWatchMetrics"][0]["Namespace"]
                    .as_str()
                    .unwrap_or_default(),
                emf::dimension_names(&line)
                    .iter()
                    .map(|name| format!("{name}={}", line[name].as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(", "),
                names.join(" "),
                line["traceId"].as_str().unwrap_or("-"),
            ));
        }
    }
    std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes())?;
    if outside > 0 {
        return Err("spans escaped the request's trace".into());
    }
    // The api created an order, the worker processed it, the notifier wrote its notification.
    if metric_lines < 3 {
        return Err(
            format!("{metric_lines} metric lines: each function writes one for the order").into(),
        );
    }

    let dir = stack::workspace_root().join("demo-output");
    std::fs::create_dir_all(&dir)?;
    let html = dir.join(format!("trace-{trace_id}.html"));
    let screenshot = dir.join(format!("trace-{trace_id}.png"));
    let page_spans: Vec<PageSpan> = spans.iter().map(PageSpan::from).collect();
    let title = format!("tracekit demo: POST /orders, trace {trace_id}");
    std::fs::write(&html, page::render(&title, &page_spans, &edges))?;
    let rendered = page::check_in_browser(&html, &screenshot, &page_spans, &edges).await?;
    let summary = format!(
        "\ntrace page: {}\n   headless Chromium drew {} of {} spans and {} service-map edges; screenshot {}\n",
        html.display(),
        rendered.spans,
        spans.len(),
        rendered.edges,
        rendered.screenshot.display()
    );
    std::io::Write::write_all(&mut std::io::stdout(), summary.as_bytes())?;
    Ok(())
}

fn describe(outcome: &InvocationOutcome) -> String {
    match outcome {
        // A handler with nothing to answer (the notifier: SNS reads no response).
        InvocationOutcome::Response(body) if body.as_ref() == b"null" => "ok".to_owned(),
        InvocationOutcome::Response(body) => String::from_utf8_lossy(body).into_owned(),
        InvocationOutcome::Error {
            error_type,
            error_message,
            ..
        } => format!("error {error_type}: {error_message}"),
    }
}

fn print_children(spans: &[ReceivedSpan], parent: Option<&str>, depth: usize, out: &mut String) {
    let mut children: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.parent_span_id.as_deref() == parent)
        .collect();
    children.sort_by_key(|s| s.start_unix_nanos);
    for span in children {
        print_span(span, depth, out);
        print_children(spans, Some(&span.span_id), depth + 1, out);
    }
}

fn print_span(span: &ReceivedSpan, depth: usize, out: &mut String) {
    let status = match span.status_code {
        SpanStatusCode::Error => format!("  ERROR {}", span.status_message),
        _ => String::new(),
    };
    let attributes: Vec<String> = KEY_ATTRIBUTES
        .iter()
        .filter_map(|key| span.attr(key).map(|value| format!("{key}={value}")))
        .collect();
    out.push_str(&format!(
        "{:indent$}└─ {} [{:?}, {}] {:.3} ms {}{status}\n",
        "",
        span.name,
        span.kind,
        service(span),
        span.duration().as_secs_f64() * 1000.0,
        attributes.join(" "),
        indent = depth * 3
    ));
}
