//! The spans entered on each thread under tracekit's subscriber (`recorder`), innermost last:
//! which span is current, and which trace and span a log line written now belongs to.

use opentelemetry::{
    Context, ContextGuard,
    trace::{SpanId, TraceContextExt, TraceId},
};
use std::cell::RefCell;
use tracing::span::Id;

thread_local! {
    static STACK: RefCell<Vec<Entered>> = const { RefCell::new(Vec::new()) };
}

/// One span entered on this thread.
pub(crate) struct Entered {
    /// Which subscriber entered it (tests run several side by side).
    pub(crate) recorder: u64,
    pub(crate) id: Id,
    /// Entered again while already entered: not the current span, and its exit keeps the span.
    pub(crate) duplicate: bool,
    /// The span's ids, if it is traced: the trace and span a log line written inside it names.
    pub(crate) ids: Option<(TraceId, SpanId)>,
    /// Keeps `opentelemetry::Context::current()` naming this span while it is entered (dropped
    /// with the entry).
    #[allow(dead_code, reason = "held for its drop")]
    pub(crate) attached: Option<ContextGuard>,
}

pub(crate) fn push(entered: Entered) {
    STACK.with(|stack| stack.borrow_mut().push(entered));
}

/// Takes `recorder`'s innermost entry of `id` off the stack.
pub(crate) fn remove(recorder: u64, id: &Id) -> Option<Entered> {
    STACK.with(|stack| {
        let mut stack = stack.borrow_mut();
        let at = stack
            .iter()
            .rposition(|entered| entered.recorder == recorder && entered.id == *id)?;
        Some(stack.remove(at))
    })
}

/// Whether `recorder` has `id` entered on this thread.
pub(crate) fn contains(recorder: u64, id: &Id) -> bool {
    STACK.with(|stack| {
        stack
            .borrow()
            .iter()
            .any(|entered| entered.recorder == recorder && entered.id == *id)
    })
}

/// `recorder`'s innermost entered span that `is` accepts.
pub(crate) fn innermost(recorder: u64, is: impl Fn(&Entered) -> bool) -> Option<Id> {
    STACK.with(|stack| {
        stack
            .borrow()
            .iter()
            .rev()
            .find(|entered| entered.recorder == recorder && is(entered))
            .map(|entered| entered.id.clone())
    })
}

/// The trace and span a log line written now belongs to: the innermost traced span entered on
/// this thread under tracekit's subscriber, else the current OpenTelemetry context's span (as
/// tracing-opentelemetry's layer keeps it on the compatibility path).
pub(crate) fn current_ids() -> Option<(TraceId, SpanId)> {
    let entered = STACK.with(|stack| stack.borrow().iter().rev().find_map(|entered| entered.ids));
    entered.or_else(|| {
        let cx = Context::current();
        let span = cx.span();
        let context = span.span_context();
        context
            .is_valid()
            .then(|| (context.trace_id(), context.span_id()))
    })
}
