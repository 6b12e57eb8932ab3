//! JSON log lines that carry the X-Ray trace id, so CloudWatch Logs and X-Ray find each other.
//!
//! One object per line, with the fields of
//! [Lambda's JSON log format](https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-advanced.html#monitoring-cloudwatchlogs-JSON):
//! `timestamp` (RFC 3339), `level`, `message` and, inside an invocation, `requestId`; then `target`,
//! the event's other fields under `fields`, and, inside a traced span, `traceId` in X-Ray form
//! (`1-{8 hex}-{24 hex}`) and `spanId`.
//!
//! The request id comes from the task serving the invocation (see `invocation`): a line logged from
//! a task the handler spawned has its trace and span ids but no `requestId`.

use crate::{invocation, propagation::xray_trace_id};
use opentelemetry::trace::TraceContextExt;
use serde_json::{Map, Value};
use std::fmt;
use tracing::{Event, Subscriber, field::Field};
use tracing_subscriber::{
    fmt::{
        FmtContext, FormatEvent, FormatFields,
        format::Writer,
        time::{FormatTime, SystemTime},
    },
    registry::LookupSpan,
};

/// The JSON event format.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JsonFormat;

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writeln!(writer, "{}", json_line(event)?)
    }
}

/// `event` as one JSON log line, without the newline.
pub(crate) fn json_line(event: &Event<'_>) -> Result<String, fmt::Error> {
    let mut visitor = JsonVisitor::default();
    event.record(&mut visitor);
    let mut line = Map::with_capacity(8);
    line.insert("timestamp".into(), Value::String(timestamp()?));
    line.insert(
        "level".into(),
        Value::String(event.metadata().level().to_string()),
    );
    line.insert(
        "target".into(),
        Value::String(event.metadata().target().into()),
    );
    line.insert(
        "message".into(),
        visitor.message.unwrap_or(Value::String(String::new())),
    );
    if !visitor.fields.is_empty() {
        line.insert("fields".into(), Value::Object(visitor.fields));
    }
    if let Some(request_id) = invocation::with_request_id(|id| Value::String(id.to_owned())) {
        line.insert("requestId".into(), request_id);
    }
    // tracing-opentelemetry activates the span's OpenTelemetry context on enter, so the current
    // context is the span this event belongs to.
    let cx = opentelemetry::Context::current();
    let span = cx.span();
    let span_context = span.span_context();
    if span_context.is_valid() {
        line.insert(
            "traceId".into(),
            Value::String(xray_trace_id(span_context.trace_id())),
        );
        line.insert(
            "spanId".into(),
            Value::String(span_context.span_id().to_string()),
        );
    }
    serde_json::to_string(&line).map_err(|_| fmt::Error)
}

/// `event` as one text log line (`timestamp LEVEL target: message field=value ...`, the request id
/// first among the fields), without the newline: buffered lines in text mode, written outside the
/// text layer.
pub(crate) fn text_line(event: &Event<'_>) -> Result<String, fmt::Error> {
    let mut visitor = JsonVisitor::default();
    event.record(&mut visitor);
    let metadata = event.metadata();
    let mut line = format!(
        "{} {:>5} {}:",
        timestamp()?,
        metadata.level(),
        metadata.target()
    );
    if let Some(request_id) = invocation::with_request_id(str::to_owned) {
        line.push_str(&format!(" requestId={request_id}"));
    }
    match visitor.message {
        Some(Value::String(message)) => line.push_str(&format!(" {message}")),
        Some(other) => line.push_str(&format!(" {other}")),
        None => {}
    }
    for (name, value) in visitor.fields {
        match value {
            Value::String(text) => line.push_str(&format!(" {name}={text}")),
            other => line.push_str(&format!(" {name}={other}")),
        }
    }
    Ok(line)
}

fn timestamp() -> Result<String, fmt::Error> {
    let mut timestamp = String::with_capacity(32);
    SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
    Ok(timestamp)
}

#[derive(Default)]
struct JsonVisitor {
    message: Option<Value>,
    fields: Map<String, Value>,
}

impl JsonVisitor {
    fn insert(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(value);
        } else {
            self.fields.insert(field.name().to_owned(), value);
        }
    }
}

impl tracing::field::Visit for JsonVisitor {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, serde_json::json!(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, Value::String(value.to_owned()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.insert(field, Value::String(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.insert(field, Value::String(format!("{value:?}")));
    }
}
