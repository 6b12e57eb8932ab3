//! tracekit's own subscriber held equal to the library path: random span trees written through the
//! `tracing` API and tracekit's span extension, run once on each path, export the same spans.

use crate::{
    OpenTelemetrySpanExt,
    config::{Config, SpanPath},
    testing::TestTelemetry,
};
use opentelemetry::{
    Context, KeyValue, Value,
    trace::{SpanContext, SpanId, Status, TraceContextExt, TraceFlags, TraceId, TraceState},
};
use opentelemetry_proto::tonic::{
    common::v1::any_value::Value as AnyValue,
    trace::v1::{Span as ProtoSpan, Status as ProtoStatus, span::Link as ProtoLink},
};
use proptest::prelude::*;
use std::{collections::BTreeMap, time::Duration};
use tracing::{Instrument, instrument::WithSubscriber};

/// An error with a source, for `&dyn Error` fields.
#[derive(Debug, thiserror::Error)]
#[error("outer failure")]
struct Outer(#[source] std::io::Error);

/// One thing done inside a span.
#[derive(Debug, Clone)]
enum Op {
    /// A child span of one of the callsite shapes, with its own ops; `task` runs it as a spawned
    /// task (`.instrument`), joined before the parent goes on.
    Span {
        shape: u8,
        values: Values,
        task: bool,
        read_context: bool,
        /// Done before the span starts (an event starts it).
        early: Vec<Op>,
        ops: Vec<Op>,
    },
    /// An event of one of the event shapes.
    Event {
        shape: u8,
        values: Values,
    },
    /// `span.record(..)` of a field declared empty.
    Record(i64),
    SetAttribute(u8, Attribute),
    SetStatus(u8),
    AddLink(u128, u64, bool),
    AddEvent(String, Attribute),
}

#[derive(Debug, Clone)]
enum Attribute {
    I64(i64),
    F64(f64),
    Bool(bool),
    Str(String),
}

impl From<Attribute> for Value {
    fn from(attribute: Attribute) -> Value {
        match attribute {
            Attribute::I64(n) => n.into(),
            Attribute::F64(f) => f.into(),
            Attribute::Bool(b) => b.into(),
            Attribute::Str(s) => s.into(),
        }
    }
}

#[derive(Debug, Clone)]
struct Values {
    i: i64,
    u: u64,
    f: f64,
    b: bool,
    s: String,
}

/// How a root span gets its parent.
#[derive(Debug, Clone)]
enum Root {
    /// A new trace.
    New,
    /// A remote parent set through `set_parent`, sampled or not.
    Remote(u128, u64, bool),
}

fn values() -> impl Strategy<Value = Values> {
    (
        any::<i64>(),
        any::<u64>(),
        -1e6f64..1e6,
        any::<bool>(),
        "[a-z ]{0,12}",
    )
        .prop_map(|(i, u, f, b, s)| Values { i, u, f, b, s })
}

fn attribute() -> impl Strategy<Value = Attribute> {
    prop_oneof![
        any::<i64>().prop_map(Attribute::I64),
        (-1e6f64..1e6).prop_map(Attribute::F64),
        any::<bool>().prop_map(Attribute::Bool),
        "[a-z]{0,8}".prop_map(Attribute::Str),
    ]
}

fn leaf() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6, values()).prop_map(|(shape, values)| Op::Event { shape, values }),
        any::<i64>().prop_map(Op::Record),
        (0u8..4, attribute()).prop_map(|(key, value)| Op::SetAttribute(key, value)),
        (0u8..4).prop_map(Op::SetStatus),
        (1u128.., 1u64.., any::<bool>()).prop_map(|(t, s, sampled)| Op::AddLink(t, s, sampled)),
        ("[a-z]{1,6}", attribute()).prop_map(|(name, value)| Op::AddEvent(name, value)),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            leaf(),
            (
                0u8..5,
                values(),
                any::<bool>(),
                any::<bool>(),
                proptest::collection::vec(leaf(), 0..3),
                proptest::collection::vec(inner, 0..4)
            )
                .prop_map(|(shape, values, task, read_context, early, ops)| Op::Span {
                    shape,
                    values,
                    task,
                    read_context,
                    early,
                    ops,
                }),
        ]
    });
    proptest::collection::vec(op, 0..6)
}

fn root() -> impl Strategy<Value = Root> {
    prop_oneof![
        Just(Root::New),
        (1u128.., 1u64.., any::<bool>()).prop_map(|(t, s, sampled)| Root::Remote(t, s, sampled)),
    ]
}

fn remote(trace: u128, span: u64, sampled: bool) -> SpanContext {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span),
        flags,
        true,
        TraceState::default(),
    )
}

/// A span of one of five shapes; `label` tells the spans apart across the two runs.
fn span(shape: u8, label: u64, v: &Values) -> tracing::Span {
    match shape {
        0 => tracing::info_span!("plain", label),
        1 => tracing::info_span!(
            "typed",
            label,
            i = v.i,
            u = v.u,
            f = v.f,
            b = v.b,
            s = v.s.as_str(),
            d = ?v.s,
            later = tracing::field::Empty
        ),
        2 => tracing::info_span!(
            "renamed",
            label,
            otel.name = format!("op {}", v.s),
            otel.kind = if v.b { "client" } else { "producer" },
            later = tracing::field::Empty
        ),
        3 => tracing::info_span!(
            "failing",
            label,
            otel.status_code = if v.b { "error" } else { "ok" },
            error = &Outer(std::io::Error::other("inner cause")) as &dyn std::error::Error
        ),
        // Not traced (DEBUG): its children belong to the nearest traced span.
        _ => tracing::debug_span!("quiet", label),
    }
}

fn event(shape: u8, v: &Values) {
    match shape {
        0 => tracing::info!(i = v.i, u = v.u, f = v.f, b = v.b, "step {}", v.s),
        1 => tracing::warn!(s = v.s.as_str(), d = ?v.i),
        2 => tracing::error!(error = %v.s, "failed"),
        3 => tracing::error!(error = ?v.s),
        4 => tracing::info!(
            cause = &Outer(std::io::Error::other(v.s.clone())) as &dyn std::error::Error,
            "with a cause"
        ),
        // Below the span filter: no span event.
        _ => tracing::debug!(i = v.i, "detail"),
    }
}

/// What a span does, once entered.
type Body = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

const KEYS: [&str; 4] = ["order.id", "order.total", "order.paid", "order.note"];

/// Runs `ops` inside `span` (entered), returning when every task they spawned has ended.
fn run(span: tracing::Span, ops: Vec<Op>, next: &mut u64) -> Body {
    let mut children = Vec::new();
    let mut work: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
    for op in ops {
        match op {
            Op::Span {
                shape,
                values,
                task,
                read_context,
                early,
                ops,
            } => {
                *next += 1;
                let label = *next;
                let child = {
                    let _entered = span.enter();
                    self::span(shape, label, &values)
                };
                for op in early {
                    work_on(&child, op)();
                }
                if read_context {
                    let _ = child.context();
                }
                let body = run(child.clone(), ops, next);
                children.push((task, child.clone(), body.instrument(child)));
            }
            leaf => work.push(work_on(&span, leaf)),
        }
    }
    Box::pin(async move {
        for work in work {
            work();
        }
        for (task, span, child) in children {
            if task {
                let _ = tokio::spawn(child.with_current_subscriber()).await;
            } else {
                child.await;
            }
            // The span's last handle is dropped here, under this test's subscriber: the Registry
            // closes a span's parent through the thread's default subscriber, which a worker
            // thread has only while it polls the task.
            drop(span);
        }
    })
}

/// A leaf op on `span`, to run later.
fn work_on(span: &tracing::Span, op: Op) -> Box<dyn FnOnce() + Send> {
    match op {
        Op::Event { shape, values } => {
            let span = span.clone();
            Box::new(move || {
                let _entered = span.enter();
                event(shape, &values);
            })
        }
        Op::Record(n) => {
            let span = span.clone();
            Box::new(move || {
                span.record("later", n);
            })
        }
        Op::SetAttribute(key, value) => {
            let span = span.clone();
            Box::new(move || {
                span.set_attribute(KEYS[usize::from(key)], Value::from(value));
            })
        }
        Op::SetStatus(which) => {
            let span = span.clone();
            Box::new(move || {
                span.set_status(match which {
                    0 => Status::Unset,
                    1 => Status::Ok,
                    2 => Status::error(""),
                    _ => Status::error("bad"),
                });
            })
        }
        Op::AddLink(trace, id, sampled) => {
            let span = span.clone();
            Box::new(move || {
                span.add_link_with_attributes(
                    remote(trace, id, sampled),
                    vec![KeyValue::new("link.kind", "follows")],
                );
            })
        }
        Op::AddEvent(name, value) => {
            let span = span.clone();
            Box::new(move || {
                span.add_event(name, vec![KeyValue::new("value", Value::from(value))]);
            })
        }
        Op::Span { .. } => unreachable!("spans are not leaves"),
    }
}

/// How a path's spans leave the process.
#[derive(Debug, Clone, Copy)]
enum Export {
    /// As `SpanData`, converted to OTLP by opentelemetry-proto (the segment and console paths).
    Whole,
    /// Encoded as they end, as the agent and OTLP/HTTP paths send them.
    Encoded,
}

/// Every span `ops` exports under `root`, on `path`, as OTLP.
fn export(path: SpanPath, how: Export, root: &Root, ops: &[Op]) -> Vec<ProtoSpan> {
    let mut config = Config::from_lookup(|_| None).expect("defaults");
    config.span_path = path;
    config.max_buffered_spans = 4096;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let test = match how {
        Export::Whole => TestTelemetry::with_config(config),
        Export::Encoded => TestTelemetry::encoding(config),
    };
    let top = tracing::info_span!("root", label = 0u64, otel.kind = "server");
    if let Root::Remote(trace, id, sampled) = root {
        let parent = Context::new().with_remote_span_context(remote(*trace, *id, *sampled));
        top.set_parent(parent).expect("not started yet");
    }
    let mut next = 0;
    let body = run(top.clone(), ops.to_vec(), &mut next);
    runtime.block_on(body.instrument(top).with_current_subscriber());
    runtime.block_on(test.telemetry().force_flush(Duration::from_secs(5)));
    match how {
        Export::Whole => test.spans().into_iter().map(ProtoSpan::from).collect(),
        Export::Encoded => test.otlp_spans(),
    }
}

/// Attributes, `u64` values as integers.
type Attributes = Vec<(String, Option<AnyValue>)>;

/// A span without its ids and times: its label, its parent's label (or remote parent), whether it
/// shares its parent's trace, and everything else as exported.
#[derive(Debug, PartialEq)]
struct Seen {
    parent: String,
    same_trace_as_parent: bool,
    flags: u32,
    trace_state: String,
    name: String,
    kind: i32,
    attributes: Attributes,
    dropped_attributes: u32,
    /// Name, attributes, attributes dropped.
    events: Vec<(String, Attributes, u32)>,
    dropped_events: u32,
    links: Vec<ProtoLink>,
    dropped_links: u32,
    status: Option<ProtoStatus>,
}

fn label(span: &ProtoSpan) -> u64 {
    span.attributes
        .iter()
        .find(|kv| kv.key == "label")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::IntValue(n) => u64::try_from(*n).ok(),
            AnyValue::StringValue(s) => s.parse().ok(),
            _ => None,
        })
        .expect("every span has a label")
}

/// `u64` fields are integers on tracekit's path and text on the library path.
fn value(key: &str, value: Option<&AnyValue>) -> Option<AnyValue> {
    match (key, value) {
        ("label" | "u", Some(AnyValue::StringValue(text))) => Some(
            text.parse::<u64>()
                .ok()
                .and_then(|n| i64::try_from(n).ok())
                .map_or_else(|| AnyValue::StringValue(text.clone()), AnyValue::IntValue),
        ),
        _ => value.cloned(),
    }
}

fn attributes(attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> Attributes {
    attributes
        .iter()
        .map(|kv| {
            let any = kv.value.as_ref().and_then(|v| v.value.as_ref());
            (kv.key.clone(), value(&kv.key, any))
        })
        .collect()
}

fn seen(spans: &[ProtoSpan]) -> BTreeMap<u64, Seen> {
    let by_id: std::collections::HashMap<&[u8], &ProtoSpan> = spans
        .iter()
        .map(|span| (span.span_id.as_slice(), span))
        .collect();
    spans
        .iter()
        .map(|span| {
            let parent = by_id.get(span.parent_span_id.as_slice());
            let parent_name = match parent {
                Some(parent) => format!("span {}", label(parent)),
                None if span.parent_span_id.is_empty() => "none".to_owned(),
                None => format!("remote {:?}", span.parent_span_id),
            };
            let same_trace_as_parent = parent.is_none_or(|parent| parent.trace_id == span.trace_id);
            let events = span
                .events
                .iter()
                .map(|event| {
                    (
                        event.name.clone(),
                        attributes(&event.attributes),
                        event.dropped_attributes_count,
                    )
                })
                .collect();
            (
                label(span),
                Seen {
                    parent: parent_name,
                    same_trace_as_parent,
                    flags: span.flags,
                    trace_state: span.trace_state.clone(),
                    name: span.name.clone(),
                    kind: span.kind,
                    attributes: attributes(&span.attributes),
                    dropped_attributes: span.dropped_attributes_count,
                    events,
                    dropped_events: span.dropped_events_count,
                    links: span.links.clone(),
                    dropped_links: span.dropped_links_count,
                    status: span.status.clone(),
                },
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The same spans, as OTLP, from the library path (its `SpanData` through opentelemetry-proto)
    /// and from tracekit's subscriber, its records kept whole or encoded as they end.
    #[test]
    fn both_paths_export_the_same_spans(root in root(), ops in ops()) {
        let library = export(SpanPath::TracingOpentelemetry, Export::Whole, &root, &ops);
        let library = seen(&library);
        for how in [Export::Whole, Export::Encoded] {
            let own = export(SpanPath::Tracekit, how, &root, &ops);
            prop_assert_eq!(library.len(), own.len(), "span counts ({:?})", how);
            let own = seen(&own);
            for (label, library) in &library {
                prop_assert_eq!(Some(library), own.get(label), "span {} ({:?})", label, how);
            }
        }
    }
}

/// The log lines `write` produces on `path` in `format`, without what differs from run to run
/// (the time, and the ids of a new trace, kept only as present or not).
fn lines(path: SpanPath, format: crate::config::LogFormat) -> Vec<String> {
    let mut config = Config::from_lookup(|_| None).expect("defaults");
    config.span_path = path;
    config.log_format = format;
    config.log_filter = "debug".into();
    let test = TestTelemetry::with_config(config);
    tracing::info!(target: "orders", "outside any span");
    let outer = tracing::info_span!(
        "outer",
        order = 7u64,
        kind = "book",
        later = tracing::field::Empty
    );
    {
        let _outer = outer.enter();
        tracing::debug!(target: "orders", items = 3, "priced");
        outer.record("later", "set");
        let inner = tracing::debug_span!("inner", step = 2);
        let _inner = inner.enter();
        tracing::warn!(target: "orders", reason = ?"slow", "took {}ms", 12);
        let quiet = tracing::trace_span!("quiet");
        let _quiet = quiet.enter();
        tracing::error!(target: "orders", error = %"boom");
    }
    test.log_lines()
        .into_iter()
        .map(|line| match format {
            crate::config::LogFormat::Json => {
                let mut json: serde_json::Value = serde_json::from_str(&line).expect("JSON");
                let object = json.as_object_mut().expect("an object");
                object.remove("timestamp");
                for id in ["traceId", "spanId"] {
                    if object.remove(id).is_some() {
                        object.insert(id.into(), "present".into());
                    }
                }
                json.to_string()
            }
            _ => line
                .split_once(' ')
                .map(|(_, rest)| rest.to_owned())
                .unwrap_or(line),
        })
        .collect()
}

#[test]
fn both_paths_write_the_same_log_lines() {
    for format in [
        crate::config::LogFormat::Json,
        crate::config::LogFormat::Text,
    ] {
        let library = lines(SpanPath::TracingOpentelemetry, format);
        let own = lines(SpanPath::Tracekit, format);
        assert_eq!(library.len(), 4, "{format:?}: {library:#?}");
        assert_eq!(own, library, "{format:?}");
    }
}

#[test]
fn after_shutdown_a_span_is_dropped_and_counted_on_both_paths() {
    for path in [SpanPath::TracingOpentelemetry, SpanPath::Tracekit] {
        let mut config = Config::from_lookup(|_| None).expect("defaults");
        config.span_path = path;
        let test = TestTelemetry::with_config(config);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        drop(tracing::info_span!("before").entered());
        let report = runtime.block_on(test.telemetry().shutdown(Duration::from_secs(1)));
        assert_eq!(
            report.exported, 1,
            "{path:?}: the span ended before shutdown"
        );
        drop(tracing::info_span!("after").entered());
        let report = runtime.block_on(test.telemetry().force_flush(Duration::from_secs(1)));
        let names: Vec<_> = test.spans().iter().map(|span| span.name.clone()).collect();
        assert_eq!(
            names,
            ["before"],
            "{path:?}: nothing ended after shutdown is exported"
        );
        // tracekit's subscriber counts the span it could not keep; the SDK's tracer, once its
        // provider is shut down, makes no span at all.
        let counted = u64::from(path == SpanPath::Tracekit);
        assert_eq!(report.dropped, counted, "{path:?}: {report:?}");
    }
}
