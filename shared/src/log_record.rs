//! A log event as recorded, before it is formatted: its time, level, target, message and fields,
//! and the span it belongs to. `log_format` formats it at once; the log buffer
//! (`TRACEKIT_LOG_BUFFER`) keeps it as it is and formats only the lines it ends up writing, so a
//! line evicted from the buffer never costs its JSON.
//!
//! Recording stops at a byte budget: a value past it is not copied (a 50 MB message costs no 50 MB
//! to a buffer that keeps 20 KB), and the record says it went over.

use crate::propagation::xray_trace_id;
use opentelemetry::trace::{SpanId, TraceId};
use serde_json::{Map, Value};
use std::fmt::{self, Write as _};
use tracing::{Event, Level, field::Field};
use tracing_subscriber::fmt::{
    format::Writer,
    time::{FormatTime, SystemTime},
};

/// What a record costs beyond its values' text: the names, the timestamp, the ids.
const OVERHEAD: usize = 128;

/// One event, recorded.
#[derive(Debug)]
pub(crate) struct Record {
    timestamp: String,
    level: Level,
    target: &'static str,
    message: Option<Value>,
    fields: Vec<(&'static str, Value)>,
    span: Option<(TraceId, SpanId)>,
    /// About how many bytes the line takes: what a buffer counts it by.
    pub(crate) bytes: usize,
}

impl Record {
    /// Records `event`, unless its values take more than `budget` bytes: then `None`, and what was
    /// copied stopped at the budget.
    pub(crate) fn capture(event: &Event<'_>, budget: usize) -> Result<Option<Record>, fmt::Error> {
        let mut visitor = Visitor {
            budget,
            ..Visitor::default()
        };
        event.record(&mut visitor);
        if visitor.over {
            return Ok(None);
        }
        let mut timestamp = String::with_capacity(32);
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let metadata = event.metadata();
        Ok(Some(Record {
            timestamp,
            level: *metadata.level(),
            target: metadata.target(),
            message: visitor.message,
            fields: visitor.fields,
            span: crate::entered::current_ids(),
            bytes: visitor.used + OVERHEAD,
        }))
    }

    /// The record as one JSON line, without the newline: Lambda's JSON log fields (see
    /// `log_format`).
    pub(crate) fn json(self, request_id: Option<&str>) -> Result<String, fmt::Error> {
        let mut line = Map::with_capacity(8);
        line.insert("timestamp".into(), Value::String(self.timestamp));
        line.insert("level".into(), Value::String(self.level.to_string()));
        line.insert("target".into(), Value::String(self.target.into()));
        line.insert(
            "message".into(),
            self.message.unwrap_or(Value::String(String::new())),
        );
        if !self.fields.is_empty() {
            let fields = self
                .fields
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect();
            line.insert("fields".into(), Value::Object(fields));
        }
        if let Some(request_id) = request_id {
            line.insert("requestId".into(), Value::String(request_id.to_owned()));
        }
        if let Some((trace_id, span_id)) = self.span {
            line.insert("traceId".into(), Value::String(xray_trace_id(trace_id)));
            line.insert("spanId".into(), Value::String(span_id.to_string()));
        }
        serde_json::to_string(&line).map_err(|_| fmt::Error)
    }

    /// The record as one text line (`timestamp LEVEL target: message field=value ...`, the request
    /// id first among the fields), without the newline.
    pub(crate) fn text(self, request_id: Option<&str>) -> String {
        let mut line = format!("{} {:>5} {}:", self.timestamp, self.level, self.target);
        if let Some(request_id) = request_id {
            let _ = write!(line, " requestId={request_id}");
        }
        match self.message {
            Some(Value::String(message)) => {
                let _ = write!(line, " {message}");
            }
            Some(other) => {
                let _ = write!(line, " {other}");
            }
            None => {}
        }
        // A later field of the same name wins, as in the JSON object.
        let mut seen = std::collections::BTreeMap::new();
        for (name, value) in self.fields {
            seen.insert(name, value);
        }
        for (name, value) in seen {
            match value {
                Value::String(text) => {
                    let _ = write!(line, " {name}={text}");
                }
                other => {
                    let _ = write!(line, " {name}={other}");
                }
            }
        }
        line
    }
}

/// Records an event's values within a byte budget.
#[derive(Default)]
struct Visitor {
    message: Option<Value>,
    fields: Vec<(&'static str, Value)>,
    budget: usize,
    used: usize,
    over: bool,
}

impl Visitor {
    fn insert(&mut self, field: &Field, value: Value, bytes: usize) {
        self.used += bytes + field.name().len();
        if self.used > self.budget {
            self.over = true;
            return;
        }
        if field.name() == "message" {
            self.message = Some(value);
        } else {
            self.fields.push((field.name(), value));
        }
    }

    /// `Display` or `Debug` text, cut off (and the record over budget) where the budget ends.
    fn text(&mut self, field: &Field, write: impl FnOnce(&mut Bounded) -> fmt::Result) {
        if self.over {
            return;
        }
        let mut bounded = Bounded {
            text: String::new(),
            room: self.budget.saturating_sub(self.used),
        };
        if write(&mut bounded).is_err() {
            self.over = true;
            return;
        }
        let bytes = bounded.text.len();
        self.insert(field, Value::String(bounded.text), bytes);
    }
}

/// A `fmt::Write` that refuses text past `room` bytes.
struct Bounded {
    text: String,
    room: usize,
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        if self.text.len() + text.len() > self.room {
            return Err(fmt::Error);
        }
        self.text.push_str(text);
        Ok(())
    }
}

impl tracing::field::Visit for Visitor {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, serde_json::json!(value), 24);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, Value::from(value), 20);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, Value::from(value), 20);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, Value::Bool(value), 5);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if self.over {
            return;
        }
        if self.used + value.len() > self.budget {
            self.over = true;
            return;
        }
        self.insert(field, Value::String(value.to_owned()), value.len());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field, |text| write!(text, "{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.text(field, |text| write!(text, "{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

    /// Records every event within `budget`, or `None` where it went over.
    struct Capture {
        budget: usize,
        records: Arc<Mutex<Vec<Option<Record>>>>,
    }

    impl<S: tracing::Subscriber> Layer<S> for Capture {
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            let record = Record::capture(event, self.budget).expect("a timestamp");
            self.records.lock().expect("lock").push(record);
        }
    }

    fn capture(budget: usize, log: impl FnOnce()) -> Vec<Option<Record>> {
        let records = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Capture {
            budget,
            records: records.clone(),
        });
        tracing::subscriber::with_default(subscriber, log);
        std::mem::take(&mut *records.lock().expect("lock"))
    }

    #[test]
    fn a_record_formats_as_lambdas_json_and_as_text() {
        let mut records = capture(usize::MAX, || {
            tracing::info!(order = 42, paid = true, "order {} taken", "A-1");
        });
        let record = records.pop().flatten().expect("recorded");
        let json: Value = serde_json::from_str(&record.json(Some("req-1")).expect("JSON"))
            .expect("a JSON object");
        assert_eq!(json["message"], "order A-1 taken");
        assert_eq!(json["level"], "INFO");
        assert_eq!(json["requestId"], "req-1");
        assert_eq!(json["fields"]["order"], 42);
        assert_eq!(json["fields"]["paid"], true);
        assert!(json.get("traceId").is_none(), "no span, no trace id");
        let mut records = capture(usize::MAX, || tracing::warn!(order = 42, "late"));
        let text = records
            .pop()
            .flatten()
            .expect("recorded")
            .text(Some("req-1"));
        assert!(
            text.ends_with(" WARN tracekit::log_record::tests: requestId=req-1 late order=42"),
            "{text}"
        );
    }

    /// A line larger than the budget is not copied past it: a buffer that keeps 1 KB never holds a
    /// 10 MB message, whatever field carries it.
    #[test]
    fn a_line_over_the_budget_is_not_recorded() {
        let huge = "x".repeat(10 * 1024 * 1024);
        // (what, the event)
        let cases: [(&str, &dyn Fn()); 4] = [
            ("a message", &|| tracing::debug!("{huge}")),
            ("a str field", &|| {
                tracing::debug!(body = huge.as_str(), "got")
            }),
            ("a Debug field", &|| tracing::debug!(body = ?huge, "got")),
            ("a Display field", &|| tracing::debug!(body = %huge, "got")),
        ];
        for (what, log) in cases {
            let records = capture(1024, log);
            assert!(
                matches!(records.as_slice(), [None]),
                "{what}: over the budget"
            );
        }
        let records = capture(1024, || tracing::debug!(body = "small", "got"));
        let record = records
            .into_iter()
            .next()
            .flatten()
            .expect("within the budget");
        assert!(record.bytes < 1024 + OVERHEAD, "{}", record.bytes);
    }
}
