//! Log buffering (`TRACEKIT_LOG_BUFFER`, see [`LogBuffer`](crate::config::LogBuffer)): lines the
//! log level would not write are kept, recorded but not formatted, in the invocation's own state,
//! and formatted and written only when the invocation fails or logs an error. A line evicted from
//! the buffer never costs its formatting, and one larger than the buffer stops being recorded at
//! its bound.
//!
//! The lines live in the invocation's task-local state (`invocation`), never in a global: under
//! managed concurrency each invocation keeps, and writes, only its own.

use crate::{
    config::LogFormat,
    invocation::{INVOCATION, InvocationState},
    log_record::Record,
};
use std::sync::Arc;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::{filter::Targets, layer::Context, layer::Layer};

/// Writes one line.
type WriteLine = dyn Fn(&[u8]) + Send + Sync;

/// Where log lines are written: the log layer's writer.
#[derive(Clone)]
pub(crate) struct LineSink(pub(crate) Arc<WriteLine>);

impl std::fmt::Debug for LineSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LineSink")
    }
}

/// Writes what `state` has kept to `sink`, after a line saying how many were dropped, if any.
pub(crate) fn write_kept(state: &InvocationState, format: LogFormat, sink: &LineSink) {
    let (lines, evicted) = state
        .log_buffer
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    if evicted > 0 {
        let message = format!(
            "{evicted} buffered log lines were dropped, the oldest: the buffer keeps TRACEKIT_LOG_BUFFER_MAX_BYTES"
        );
        (sink.0)(notice(format, &state.request_id, &message).as_bytes());
    }
    // Formatted now, only the lines that are written.
    let request_id = Some(state.request_id.as_str());
    for record in lines {
        let line = match format {
            LogFormat::Text => Ok(record.text(request_id)),
            _ => record.json(request_id),
        };
        if let Ok(mut line) = line {
            line.push('\n');
            (sink.0)(line.as_bytes());
        }
    }
}

/// A WARN line of tracekit's own, in `format`.
fn notice(format: LogFormat, request_id: &str, message: &str) -> String {
    let timestamp = humantime_now();
    match format {
        LogFormat::Text => {
            format!("{timestamp}  WARN tracekit: requestId={request_id} {message}\n")
        }
        _ => format!(
            "{}\n",
            serde_json::json!({
                "timestamp": timestamp,
                "level": "WARN",
                "target": "tracekit",
                "message": message,
                "requestId": request_id,
            })
        ),
    }
}

fn humantime_now() -> String {
    use tracing_subscriber::fmt::{format::Writer, time::FormatTime};
    let mut timestamp = String::with_capacity(32);
    let _ = tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut timestamp));
    timestamp
}

/// The layer that keeps lines: it sees the events its filter (the buffer's directives) lets
/// through and keeps those the log filter would not write.
pub(crate) struct BufferLayer {
    pub(crate) format: LogFormat,
    /// What the log layer writes: not kept, written.
    pub(crate) written: Targets,
    pub(crate) max_bytes: usize,
    pub(crate) flush_on_error_log: bool,
    pub(crate) sink: LineSink,
}

impl<S: Subscriber> Layer<S> for BufferLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        self.see(event);
    }
}

impl BufferLayer {
    /// An event its filter let through: kept if the log filter would not write it, else (an error
    /// line, with `flush_on_error_log`) the cue to write what was kept.
    pub(crate) fn see(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        if self
            .written
            .would_enable(metadata.target(), metadata.level())
        {
            // This layer sits before the log layer: what was kept is written before the error.
            if self.flush_on_error_log && *metadata.level() == Level::ERROR {
                let _ = INVOCATION.try_with(|state| write_kept(state, self.format, &self.sink));
            }
            return;
        }
        let _ = INVOCATION.try_with(|state| {
            // Recorded, not formatted: most kept lines are never written. A line larger than the
            // whole buffer stops being recorded at the bound.
            let Ok(record) = Record::capture(event, self.max_bytes) else {
                return;
            };
            let mut buffer = state
                .log_buffer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match record {
                Some(record) => {
                    let bytes = record.bytes;
                    buffer.push(record, bytes, self.max_bytes);
                }
                None => buffer.evict_unkept(),
            }
        });
    }
}

/// One writer shared by the log layer and the buffer's sink.
pub(crate) struct SharedWriter<W>(pub(crate) Arc<W>);

impl<W> Clone for SharedWriter<W> {
    fn clone(&self) -> Self {
        SharedWriter(self.0.clone())
    }
}

impl<'a, W: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a>
    for SharedWriter<W>
{
    type Writer = W::Writer;

    fn make_writer(&'a self) -> Self::Writer {
        self.0.make_writer()
    }
}
