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

use crate::{invocation, log_record::Record};
use std::fmt;
use tracing::{Event, Subscriber};
use tracing_subscriber::{
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
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
    let record = Record::capture(event, usize::MAX)?.ok_or(fmt::Error)?;
    match invocation::with_request_id(str::to_owned) {
        Some(request_id) => record.json(Some(&request_id)),
        None => record.json(None),
    }
}
