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
}

impl InvocationState {
    pub(crate) fn new(request_id: String) -> Self {
        InvocationState {
            request_id,
            ..InvocationState::default()
        }
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
