//! What is known about the invocation a task is serving, for the modules that need it without
//! knowing each other: the invocation layer (`lambda`) writes it, the log lines (`log_format`) read
//! the request id.
//!
//! It is a task-local, not a global: under Lambda Managed Instances several invocations run at once
//! in one process, each in its own task. Work a handler spawns onto other tasks keeps its spans'
//! parents (through the span it is instrumented with) but not this state.

use std::sync::{
    Mutex,
    atomic::{AtomicBool, AtomicU16},
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
