//! The recorder's log lines: an event the log filter enables is written as one line (JSON or text,
//! as the library path writes it), and one log buffering keeps is kept.

use crate::{
    config::LogFormat,
    log_buffer::{BufferLayer, LineSink},
};
use std::fmt::Write as _;
use tracing::Event;
use tracing_subscriber::fmt::{
    FormatFields, FormattedFields,
    format::{DefaultFields, Writer},
    time::{FormatTime, SystemTime},
};

/// Where and how log lines go.
pub(crate) struct Logs {
    pub(crate) format: LogFormat,
    /// The lines written.
    pub(crate) written: super::Directives,
    pub(crate) sink: LineSink,
    /// Log buffering, and the lines it keeps.
    pub(crate) buffer: Option<(BufferLayer, super::Directives)>,
}

impl Logs {
    /// Keeps or writes `event`; `scope` writes the spans a text line is in.
    pub(super) fn event(&self, event: &Event<'_>, scope: impl FnOnce(&mut String)) {
        let metadata = event.metadata();
        let (target, level) = (metadata.target(), metadata.level());
        // The buffer first: on an error line, what it kept is written before it.
        if let Some((buffer, kept)) = &self.buffer
            && kept.would_enable(target, level)
        {
            buffer.see(event);
        }
        if !self.written.would_enable(target, level) {
            return;
        }
        let line = match self.format {
            LogFormat::Json => crate::log_format::json_line(event).map(|mut line| {
                line.push('\n');
                line
            }),
            LogFormat::Text => text_line(event, scope),
        };
        if let Ok(line) = line {
            (self.sink.0)(line.as_bytes());
        }
    }
}

/// `event` as tracing-subscriber's default text format writes it, without colours:
/// `timestamp LEVEL span{fields}:span: target: message field=value`.
fn text_line(
    event: &Event<'_>,
    scope: impl FnOnce(&mut String),
) -> Result<String, std::fmt::Error> {
    let metadata = event.metadata();
    let mut line = String::with_capacity(128);
    SystemTime.format_time(&mut Writer::new(&mut line))?;
    let level = match *metadata.level() {
        tracing::Level::TRACE => "TRACE",
        tracing::Level::DEBUG => "DEBUG",
        tracing::Level::INFO => " INFO",
        tracing::Level::WARN => " WARN",
        tracing::Level::ERROR => "ERROR",
    };
    write!(line, " {level} ")?;
    scope(&mut line);
    write!(line, "{}: ", metadata.target())?;
    DefaultFields::new().format_fields(Writer::new(&mut line), event)?;
    line.push('\n');
    Ok(line)
}

/// A span's fields as text lines print them.
pub(super) struct TextFields(FormattedFields<DefaultFields>);

impl TextFields {
    pub(super) fn new(attrs: &tracing::span::Attributes<'_>) -> TextFields {
        let mut fields = FormattedFields::new(String::new());
        let _ = DefaultFields::new().format_fields(fields.as_writer(), attrs);
        TextFields(fields)
    }

    pub(super) fn add(&mut self, values: &tracing::span::Record<'_>) {
        let _ = DefaultFields::new().add_fields(&mut self.0, values);
    }
}

impl std::fmt::Display for TextFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
