//! The `init` span: a cold start's init, from the process's start until the runtime first asks
//! Lambda for an invocation, in the first invocation's trace (`TRACEKIT_INIT_SPAN`).
//!
//! Its trace is not known while init runs (it is the first invocation's), so init is timed and the
//! span is made when that invocation arrives, with the times it had. It hangs where Lambda's own
//! `Initialization` subsegment does: under the invocation's parent (Lambda's segment, with active
//! tracing) beside the invocation span, or under the invocation span when that is a root. Under it:
//! `tracekit init` (reading the configuration and building the tracer), and every span that ended
//! during init, the function's own and its SDK calls' (a secret fetched, a table described), moved
//! into its trace: they were recorded as traces of their own, with no invocation to belong to.
//!
//! A function started ahead of its first invocation (provisioned concurrency) gets no `init` span:
//! its init and first invocation are apart, and `faas.coldstart` is false.

use opentelemetry::{
    KeyValue,
    trace::{SpanContext, SpanKind, TraceContextExt, Tracer, TracerProvider},
};
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::time::{Duration, SystemTime};

/// The name of the span of a cold start's init.
const INIT_SPAN_NAME: &str = "init";
/// The name of the span of tracekit's own init.
const TRACEKIT_INIT_SPAN_NAME: &str = "tracekit init";

/// What init took, as far as tracekit saw it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InitTimes {
    /// When the process started (`/proc/self/stat`), else when tracekit's init began.
    pub(crate) process_start: SystemTime,
    /// tracekit's own init: configuration, tracer, subscriber.
    pub(crate) tracekit: (SystemTime, SystemTime),
    /// When the runtime was handed control to ask for the first invocation.
    pub(crate) ready: Option<SystemTime>,
}

impl InitTimes {
    /// Init times with tracekit's init between `began` and now.
    pub(crate) fn tracekit_init(began: SystemTime) -> Self {
        InitTimes {
            process_start: process_start()
                .filter(|start| *start <= began)
                .unwrap_or(began),
            tracekit: (began, SystemTime::now()),
            ready: None,
        }
    }
}

/// Makes the `init` span under `parent` (see the module docs) and its `tracekit init` child.
/// Returns the span's context and the end of init, for [`adopt`], when it is sampled.
pub(crate) fn record(
    provider: &SdkTracerProvider,
    times: InitTimes,
    parent: &opentelemetry::Context,
) -> Option<(SpanContext, SystemTime)> {
    let ready = times.ready.unwrap_or_else(SystemTime::now);
    let tracer = provider.tracer("tracekit");
    let init = tracer
        .span_builder(INIT_SPAN_NAME)
        .with_kind(SpanKind::Internal)
        .with_start_time(times.process_start)
        .with_attributes([KeyValue::new(
            opentelemetry_semantic_conventions::attribute::FAAS_COLDSTART,
            true,
        )])
        .start_with_context(&tracer, parent);
    let init_cx = parent.with_span(init);
    let init_context = init_cx.span().span_context().clone();
    let (began, done) = times.tracekit;
    let mut own = tracer
        .span_builder(TRACEKIT_INIT_SPAN_NAME)
        .with_kind(SpanKind::Internal)
        .with_start_time(began)
        .start_with_context(&tracer, &init_cx);
    opentelemetry::trace::Span::end_with_timestamp(&mut own, done);
    init_cx.span().end_with_timestamp(ready);
    init_context.is_sampled().then_some((init_context, ready))
}

/// The spans in `spans` that ended before `ready`, moved into `init`'s trace (their roots under
/// `init`); the others as they were.
pub(crate) fn adopt(
    spans: Vec<opentelemetry_sdk::trace::SpanData>,
    init: &SpanContext,
    ready: SystemTime,
) -> Vec<opentelemetry_sdk::trace::SpanData> {
    spans
        .into_iter()
        .map(|mut span| {
            if span.end_time > ready || span.span_context.trace_id() == init.trace_id() {
                return span;
            }
            if span.parent_span_id == opentelemetry::trace::SpanId::INVALID {
                span.parent_span_id = init.span_id();
                span.parent_span_is_remote = false;
            }
            span.span_context = SpanContext::new(
                init.trace_id(),
                span.span_context.span_id(),
                span.span_context.trace_flags(),
                false,
                span.span_context.trace_state().clone(),
            );
            span
        })
        .collect()
}

/// When this process started: `/proc/self/stat`'s start time (clock ticks after boot) against
/// `/proc/uptime`, to the 10 ms the kernel counts in. `None` where there is no `/proc`.
fn process_start() -> Option<SystemTime> {
    // Linux's USER_HZ is 100 on every architecture Lambda runs.
    const TICKS_PER_SECOND: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 22 is the 20th after the name (fields 3..).
    let start_ticks: f64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let age = uptime - start_ticks / TICKS_PER_SECOND;
    if !(0.0..86_400.0 * 365.0).contains(&age) {
        return None;
    }
    SystemTime::now().checked_sub(Duration::from_secs_f64(age))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    #[test]
    fn the_process_started_before_now_and_not_long_ago() {
        let start = process_start().expect("/proc is there on Linux");
        let age = SystemTime::now()
            .duration_since(start)
            .expect("in the past");
        assert!(
            age < Duration::from_secs(3_600),
            "this test process is young: {age:?}"
        );
    }

    #[test]
    fn spans_ended_during_init_move_into_its_trace() {
        let init = SpanContext::new(
            TraceId::from(7u128),
            SpanId::from(70u64),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let ready = SystemTime::now();
        let mut root = crate::test_spans::span(1, vec![]);
        root.parent_span_id = SpanId::INVALID;
        root.end_time = ready - Duration::from_millis(5);
        let mut child = crate::test_spans::span(2, vec![]);
        child.parent_span_id = root.span_context.span_id();
        child.end_time = ready - Duration::from_millis(6);
        let mut later = crate::test_spans::span(3, vec![]);
        later.end_time = ready + Duration::from_millis(1);
        let later_trace = later.span_context.trace_id();

        let spans = adopt(vec![root, child, later], &init, ready);
        assert_eq!(spans[0].span_context.trace_id(), init.trace_id());
        assert_eq!(
            spans[0].parent_span_id,
            init.span_id(),
            "a root hangs under init"
        );
        assert_eq!(spans[1].span_context.trace_id(), init.trace_id());
        assert_eq!(
            spans[1].parent_span_id,
            spans[0].span_context.span_id(),
            "a child keeps its parent"
        );
        assert_eq!(
            spans[2].span_context.trace_id(),
            later_trace,
            "a span that ended after init is not init's"
        );
    }
}
