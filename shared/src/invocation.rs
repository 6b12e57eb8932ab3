//! What is known about the invocation a task is serving, for the modules that need it without
//! knowing each other: the invocation layer (`lambda`) writes it, the log lines (`log_format`) read
//! the request id.
//!
//! It is a task-local, not a global: under Lambda Managed Instances several invocations run at once
//! in one process, each in its own task. Work a handler spawns onto other tasks keeps its spans'
//! parents (through the span it is instrumented with) but not this state.

use opentelemetry::trace::TraceId;
use std::{
    cell::Cell,
    collections::VecDeque,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU16},
    },
};

tokio::task_local! {
    pub(crate) static INVOCATION: std::sync::Arc<InvocationState>;
}

/// One invocation's state, shared by the invocation span and the handler wrapper.
#[derive(Debug, Default)]
pub(crate) struct InvocationState {
    /// The AWS request id (`Lambda-Runtime-Aws-Request-Id`).
    pub(crate) request_id: String,
    pub(crate) handler_started: AtomicBool,
    pub(crate) handler_finished: AtomicBool,
    /// The handler's error: its `error.type` and message.
    pub(crate) error: Mutex<Option<(String, String)>>,
    /// The HTTP response's status, for `lambda_http` handlers; 0 until there is one.
    pub(crate) http_status: AtomicU16,
    /// The route a router matched (`tracekit::axum`) and the span name it gives: `None` until
    /// one does.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) http_route: Mutex<Option<MatchedRoute>>,
    /// Log lines kept until the invocation fails (`TRACEKIT_LOG_BUFFER`), recorded but not yet
    /// formatted.
    pub(crate) log_buffer: Mutex<LineBuffer<crate::log_record::Record>>,
    /// The metrics the invocation added (`tracekit::metrics`), written when it ends; `None` until
    /// it adds one.
    pub(crate) metrics: Mutex<Option<crate::metrics::emf::MetricSet>>,
}

/// The route a router matched for this invocation's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MatchedRoute {
    /// `http.route`, the router's template (`/orders/{id}`).
    pub(crate) route: String,
    /// The invocation span's name, `{method} {route}`.
    pub(crate) name: String,
}

/// One invocation's kept lines, oldest first, each with the bytes it is counted by.
#[derive(Debug)]
pub(crate) struct LineBuffer<T> {
    lines: VecDeque<(T, usize)>,
    bytes: usize,
    /// Lines dropped to keep within the bound.
    evicted: usize,
}

impl<T> Default for LineBuffer<T> {
    fn default() -> Self {
        LineBuffer {
            lines: VecDeque::new(),
            bytes: 0,
            evicted: 0,
        }
    }
}

impl<T> LineBuffer<T> {
    /// Keeps `line` of `bytes`, dropping the oldest lines while more than `max_bytes` are kept (a
    /// line longer than the bound is itself dropped).
    pub(crate) fn push(&mut self, line: T, bytes: usize, max_bytes: usize) {
        self.bytes += bytes;
        self.lines.push_back((line, bytes));
        while self.bytes > max_bytes {
            let Some((_, oldest)) = self.lines.pop_front() else {
                break;
            };
            self.bytes -= oldest;
            self.evicted += 1;
        }
    }

    /// A line that was never kept (larger than the bound on its own) is counted with the evicted.
    pub(crate) fn evict_unkept(&mut self) {
        self.evicted += 1;
    }

    pub(crate) fn take(&mut self) -> (impl Iterator<Item = T> + use<T>, usize) {
        self.bytes = 0;
        (
            std::mem::take(&mut self.lines)
                .into_iter()
                .map(|(line, _)| line),
            std::mem::take(&mut self.evicted),
        )
    }
}

impl InvocationState {
    pub(crate) fn new(request_id: String) -> Self {
        InvocationState {
            request_id,
            ..InvocationState::default()
        }
    }

    /// Runs `f` on the invocation's metrics, made on first use.
    pub(crate) fn add_metrics(&self, f: impl FnOnce(&mut crate::metrics::emf::MetricSet)) {
        let mut metrics = self
            .metrics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(metrics.get_or_insert_with(Default::default));
    }
}

/// Calls `f` with the request id of the invocation this task serves, if it serves one.
pub(crate) fn with_request_id<R>(f: impl FnOnce(&str) -> R) -> Option<R> {
    INVOCATION.try_with(|state| f(&state.request_id)).ok()
}

thread_local! {
    /// The trace id the next root span on this thread must have (see [`with_root_trace_id`]).
    static ROOT_TRACE_ID: Cell<Option<TraceId>> = const { Cell::new(None) };
}

/// Runs `start` with `trace_id` as the trace id of the next root span started on this thread:
/// a Root-only X-Ray header names the invocation's trace but no parent, and OpenTelemetry has no
/// other way to start a root span in a given trace. `start` must start the span (synchronously).
pub(crate) fn with_root_trace_id<R>(trace_id: TraceId, start: impl FnOnce() -> R) -> R {
    ROOT_TRACE_ID.with(|next| next.set(Some(trace_id)));
    let started = start();
    ROOT_TRACE_ID.with(|next| next.set(None));
    started
}

/// The trace id [`with_root_trace_id`] asked for, once; read by tracekit's ID generator.
pub(crate) fn take_root_trace_id() -> Option<TraceId> {
    ROOT_TRACE_ID.with(Cell::take)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_lines_go_first_and_are_counted() {
        let mut buffer = LineBuffer::default();
        for n in 0..10 {
            let line = format!("line {n}\n");
            let bytes = line.len();
            buffer.push(line, bytes, 21);
        }
        let (lines, evicted) = buffer.take();
        assert_eq!(evicted, 7);
        assert_eq!(
            lines.collect::<Vec<_>>(),
            ["line 7\n", "line 8\n", "line 9\n"]
        );
        let (mut lines, evicted) = buffer.take();
        assert!(lines.next().is_none() && evicted == 0, "taken once");
    }

    #[test]
    fn a_line_longer_than_the_bound_is_not_kept() {
        let mut buffer = LineBuffer::default();
        buffer.push(vec![b'x'; 100], 100, 50);
        let (mut lines, evicted) = buffer.take();
        assert!(lines.next().is_none());
        assert_eq!(evicted, 1);
    }
}
