//! tracekit's own `tracing` subscriber: spans kept as compact records and handed to the span
//! buffer when they close, log lines written beside them.
//!
//! The library path (tracing-subscriber's Registry, tracing-opentelemetry's layer and an SDK span
//! per `tracing` span) looks each span up again in every layer, builds an SDK span through a
//! builder and a tracer, and formats `u64` fields as strings. Here one subscriber owns the spans:
//! each is one slot in a lock-free slab (the Registry's own storage) holding a [`Record`], started
//! as the SDK starts a span (the same sampler and ID generator) and turned into the span
//! processor's [`SpanData`](opentelemetry_sdk::trace::SpanData) when it closes. Which span is
//! current is a per-thread stack, as `tracing` defines it.
//!
//! Callers reach a span's record only through [`crate::OpenTelemetrySpanExt`], which asks the
//! dispatcher for this subscriber and falls back to tracing-opentelemetry's layer when it is not
//! the one in force (the compatibility path, `TRACEKIT_SPAN_PATH=tracing-opentelemetry`).

mod directives;
mod logs;
mod record;
#[cfg(test)]
mod tests;

pub(crate) use directives::Directives;
pub(crate) use logs::Logs;
use record::{Record, Starter, State};

use crate::{
    entered::{self, Entered},
    flush::LambdaSpanProcessor,
};
use opentelemetry::{Context, InstrumentationScope};
use opentelemetry_sdk::trace::{IdGenerator, ShouldSample, SpanProcessor};
use sharded_slab::Pool;
use std::{
    cell::Cell,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};
use tracing::{
    Event, Metadata, Subscriber,
    span::{self, Id},
    subscriber::Interest,
};
use tracing_core::span::Current;
use tracing_subscriber::filter::LevelFilter;

/// Tells each recorder's entries on a thread's stack apart (tests run several side by side).
static RECORDERS: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// A record is locked on this thread while a sampler or ID generator of the user's runs: an
    /// event it logs is written, but not added to a span, and a span it opens is not traced.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Which spans and events the recorder sees.
#[derive(Debug, Clone)]
pub(crate) struct Filters {
    /// Spans (and events inside them) that become OpenTelemetry spans.
    pub(crate) spans: Directives,
    /// Lines written, and in text format the spans those lines print.
    pub(crate) logs: Directives,
    /// Lines log buffering keeps, when it is on.
    pub(crate) kept: Option<Directives>,
    /// Text lines print the spans they are in.
    pub(crate) text: bool,
}

impl Filters {
    fn wants(&self, metadata: &Metadata<'_>) -> bool {
        let (target, level) = (metadata.target(), metadata.level());
        self.spans.would_enable(target, level)
            || (metadata.is_event() || self.text) && self.logs.would_enable(target, level)
            || metadata.is_event()
                && self
                    .kept
                    .as_ref()
                    .is_some_and(|kept| kept.would_enable(target, level))
    }
}

/// What the OpenTelemetry SDK's tracer would use: the sampler, the ID generator, the processor.
pub(crate) struct Tracing {
    pub(crate) sampler: Box<dyn ShouldSample>,
    pub(crate) ids: Arc<dyn IdGenerator>,
    pub(crate) processor: LambdaSpanProcessor,
    /// Keep `opentelemetry::Context::current()` naming the entered span, for code that reads it.
    pub(crate) attach: bool,
    /// The instrumentation scope of the spans.
    pub(crate) scope: InstrumentationScope,
}

/// One span, in the pool: initialised in place when the span opens, cleared in place when it
/// closes, its allocations kept for the next span.
#[derive(Default)]
struct Slot {
    refs: AtomicUsize,
    metadata: Option<&'static Metadata<'static>>,
    /// The `tracing` parent, kept open while this span is.
    parent: Option<Id>,
    /// The span becomes an OpenTelemetry span: its record is in use.
    traced: bool,
    record: Mutex<Record>,
    /// The span's fields as text lines print them, if they print it.
    text: Mutex<Option<logs::TextFields>>,
}

impl sharded_slab::Clear for Slot {
    fn clear(&mut self) {
        self.parent = None;
        self.metadata = None;
        self.traced = false;
        self.record
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
        *self
            .text
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// tracekit's subscriber (see the module docs).
pub(crate) struct Recorder {
    me: u64,
    spans: Pool<Slot>,
    tracing: Tracing,
    filters: Filters,
    logs: Logs,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("filters", &self.filters)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    pub(crate) fn new(tracing: Tracing, filters: Filters, logs: Logs) -> Recorder {
        Recorder {
            me: RECORDERS.fetch_add(1, Ordering::Relaxed),
            spans: Pool::new(),
            tracing,
            filters,
            logs,
        }
    }

    fn starter(&self) -> Starter<'_> {
        Starter {
            sampler: self.tracing.sampler.as_ref(),
            ids: self.tracing.ids.as_ref(),
        }
    }

    fn slot(&self, id: &Id) -> Option<sharded_slab::pool::Ref<'_, Slot>> {
        self.spans.get(key(id))
    }

    /// Runs `f` on `id`'s record, if it is traced; a sampler or ID generator `f` calls runs
    /// "inside" (see [`INSIDE`]).
    fn with_record<R>(&self, id: &Id, f: impl FnOnce(&mut Record, &Starter<'_>) -> R) -> Option<R> {
        let slot = self.slot(id)?;
        if !slot.traced {
            return None;
        }
        let mut record = lock(&slot.record);
        Some(inside(|| f(&mut record, &self.starter())))
    }

    /// The innermost span of this recorder entered on this thread that `is` accepts.
    fn innermost(&self, is: impl Fn(&Entered) -> bool) -> Option<Id> {
        entered::innermost(self.me, is)
    }

    /// The parent context of a new traced span, as tracing-opentelemetry chooses it.
    fn parent_context(&self, attrs: &span::Attributes<'_>) -> Context {
        if let Some(parent) = attrs.parent() {
            // A parent that is not traced leaves the span a root, as on the library path.
            return self
                .with_record(parent, |record, starter| record.context(starter))
                .unwrap_or_default();
        }
        if !attrs.is_contextual() {
            return Context::new();
        }
        if self.tracing.attach {
            return Context::current();
        }
        self.innermost(|entered| entered.ids.is_some())
            .and_then(|parent| self.with_record(&parent, |record, starter| record.context(starter)))
            .unwrap_or_else(Context::current)
    }

    /// Ends `span`, whose last handle is gone: its record goes to the span processor, its slot
    /// back to the pool, and its parent loses a handle.
    fn end(&self, span: &Id, slot: sharded_slab::pool::Ref<'_, Slot>) {
        let data = slot.traced.then(|| {
            let mut record = lock(&slot.record);
            inside(|| {
                record.end(
                    &self.starter(),
                    &self.tracing.scope,
                    &self.tracing.processor,
                )
            })
        });
        let parent = slot.parent.clone();
        drop(slot);
        self.spans.clear(key(span));
        if let Some(data) = data.flatten() {
            self.tracing.processor.on_end(data);
        }
        if let Some(parent) = parent {
            self.try_close(parent);
        }
    }

    /// The spans a text line inside `event` prints, outermost first.
    fn text_scope(&self, event: &Event<'_>, line: &mut String) {
        let shown = |id: &Id| self.slot(id).is_some_and(|slot| lock(&slot.text).is_some());
        let innermost = match event.parent() {
            Some(parent) => Some(parent.clone()),
            None if event.is_contextual() => self.innermost(|entered| shown(&entered.id)),
            None => None,
        };
        let mut scope = Vec::new();
        let mut next = innermost;
        while let Some(id) = next {
            let Some(slot) = self.slot(&id) else { break };
            if let (Some(metadata), Some(text)) = (slot.metadata, lock(&slot.text).as_ref()) {
                scope.push((metadata.name(), text.to_string()));
            }
            next = slot.parent.clone();
        }
        for (name, fields) in scope.iter().rev() {
            line.push_str(name);
            if !fields.is_empty() {
                line.push('{');
                line.push_str(fields);
                line.push('}');
            }
            line.push(':');
        }
        if !scope.is_empty() {
            line.push(' ');
        }
    }
}

/// The slab key of `id`.
fn key(id: &Id) -> usize {
    (id.into_u64() - 1) as usize
}

fn inside<R>(f: impl FnOnce() -> R) -> R {
    let was = INSIDE.with(|inside| inside.replace(true));
    let result = f();
    INSIDE.with(|inside| inside.set(was));
    result
}

fn is_inside() -> bool {
    INSIDE.with(Cell::get)
}

impl Subscriber for Recorder {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        // Every filter is static (targets and levels): the answer never changes.
        if self.filters.wants(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filters.wants(metadata)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        let filters = &self.filters;
        let kept = filters.kept.as_ref().and_then(Directives::max_level_hint);
        filters
            .spans
            .max_level_hint()
            .max(filters.logs.max_level_hint())
            .max(kept)
    }

    fn new_span(&self, attrs: &span::Attributes<'_>) -> Id {
        let metadata = attrs.metadata();
        let (target, level) = (metadata.target(), metadata.level());
        let traced = self.filters.spans.would_enable(target, level) && !is_inside();
        let parent = match attrs.parent() {
            Some(parent) => Some(self.clone_span(parent)),
            None if attrs.is_contextual() => self
                .innermost(|entered| !entered.duplicate)
                .map(|parent| self.clone_span(&parent)),
            None => None,
        };
        let parent_context = traced.then(|| self.parent_context(attrs));
        let shown = self.filters.text && self.filters.logs.would_enable(target, level);
        let key = self.spans.create_with(|slot| {
            *slot.refs.get_mut() = 1;
            slot.metadata = Some(metadata);
            slot.parent = parent;
            if let Some(parent_context) = parent_context {
                slot.traced = true;
                slot.record
                    .get_mut()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .open(metadata.name(), parent_context, attrs);
            }
            if shown {
                *slot
                    .text
                    .get_mut()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) =
                    Some(logs::TextFields::new(attrs));
            }
        });
        match key {
            Some(key) => Id::from_u64(key as u64 + 1),
            // The pool is full (millions of spans open per thread): the span is not kept.
            None => Id::from_u64(u64::MAX),
        }
    }

    fn record(&self, span: &Id, values: &span::Record<'_>) {
        let Some(slot) = self.slot(span) else { return };
        if slot.traced {
            lock(&slot.record).record(values);
        }
        if let Some(text) = lock(&slot.text).as_mut() {
            text.add(values);
        }
    }

    fn record_follows_from(&self, span: &Id, follows: &Id) {
        let Some(context) = self.with_record(follows, |record, starter| {
            record.start(starter).span_context.clone()
        }) else {
            return;
        };
        self.with_record(span, |record, _| record.push_link(context, Vec::new()));
    }

    fn event_enabled(&self, event: &Event<'_>) -> bool {
        !crate::quiet::is_runtime_concurrency_warning(event)
    }

    fn event(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        if !is_inside()
            && self
                .filters
                .spans
                .would_enable(metadata.target(), metadata.level())
        {
            let span = match event.parent() {
                Some(parent) => Some(parent.clone()),
                None if event.is_contextual() => self.innermost(|entered| entered.ids.is_some()),
                None => None,
            };
            if let Some(span) = span {
                self.with_record(&span, |record, _| record.event(event));
            }
        }
        if self.filters.text {
            self.logs.event(event, |line| self.text_scope(event, line));
        } else {
            self.logs.event(event, |_| {});
        }
    }

    fn enter(&self, span: &Id) {
        let duplicate = entered::contains(self.me, span);
        // One look-up: the handle the stack keeps, and the record started.
        let (ids, context) = match self.slot(span) {
            Some(slot) => {
                if !duplicate {
                    slot.refs.fetch_add(1, Ordering::Relaxed);
                }
                if slot.traced {
                    let mut record = lock(&slot.record);
                    inside(|| {
                        let starter = self.starter();
                        let started = record.start(&starter);
                        let context = &started.span_context;
                        let ids = context
                            .is_valid()
                            .then(|| (context.trace_id(), context.span_id()));
                        let attach = self.tracing.attach.then(|| record.context(&starter));
                        (ids, attach)
                    })
                } else {
                    (None, None)
                }
            }
            None => (None, None),
        };
        entered::push(Entered {
            recorder: self.me,
            id: span.clone(),
            duplicate,
            ids,
            attached: context.map(Context::attach),
        });
    }

    fn exit(&self, span: &Id) {
        let Some(entered) = entered::remove(self.me, span) else {
            return;
        };
        // One look-up: the end time, and the handle the stack kept.
        let slot = self.slot(span);
        if let Some(slot) = slot.as_ref().filter(|slot| slot.traced) {
            lock(&slot.record).end_time = Some(opentelemetry::time::now());
        }
        let duplicate = entered.duplicate;
        drop(entered);
        if let (false, Some(slot)) = (duplicate, slot)
            && slot.refs.fetch_sub(1, Ordering::AcqRel) == 1
        {
            self.end(span, slot);
        }
    }

    fn clone_span(&self, span: &Id) -> Id {
        if let Some(slot) = self.slot(span) {
            slot.refs.fetch_add(1, Ordering::Relaxed);
        }
        span.clone()
    }

    fn try_close(&self, span: Id) -> bool {
        let Some(slot) = self.slot(&span) else {
            return false;
        };
        if slot.refs.fetch_sub(1, Ordering::AcqRel) != 1 {
            return false;
        }
        self.end(&span, slot);
        true
    }

    fn current_span(&self) -> Current {
        self.innermost(|entered| !entered.duplicate)
            .and_then(|id| {
                let metadata = self.slot(&id)?.metadata?;
                Some(Current::new(id, metadata))
            })
            .unwrap_or_else(Current::none)
    }
}

/// What the seam ([`crate::OpenTelemetrySpanExt`]) does to a span under the recorder.
pub(crate) enum Reached<R, T> {
    /// The recorder is in force and traces the span: `f`'s answer.
    Traced(R),
    /// The recorder is in force, and the span is disabled or not traced.
    Untraced,
    /// Another subscriber is in force (the compatibility path): the value, not used, for it.
    Elsewhere(T),
}

/// Runs `f` on `span`'s record with `value`, if the recorder is the subscriber in force; else
/// hands `value` back, so that the compatibility path gets it without a copy.
fn reach<T, R>(
    span: &tracing::Span,
    value: T,
    f: impl FnOnce(&mut Record, &Starter<'_>, T) -> R,
) -> Reached<R, T> {
    let under_recorder = span
        .with_subscriber(|(_, dispatch)| dispatch.is::<Recorder>())
        // A disabled span: under the recorder, if it is the default.
        .unwrap_or_else(|| tracing::dispatcher::get_default(|d| d.is::<Recorder>()));
    if !under_recorder {
        return Reached::Elsewhere(value);
    }
    let answer = span
        .with_subscriber(|(id, dispatch)| {
            let recorder = dispatch.downcast_ref::<Recorder>()?;
            recorder.with_record(id, |record, starter| f(record, starter, value))
        })
        .flatten();
    match answer {
        Some(answer) => Reached::Traced(answer),
        None => Reached::Untraced,
    }
}

/// The seam's operations on a record; each hands its value back when another subscriber is in
/// force.
pub(crate) mod ops {
    use super::{Reached, State, reach};
    use opentelemetry::{
        Context, KeyValue,
        trace::{Event, SpanContext, Status},
    };
    use std::borrow::Cow;
    use tracing::Span;

    /// Sets the parent of a span that has not started: `Traced(false)` if it has.
    pub(crate) fn set_parent(span: &Span, cx: Context) -> Reached<bool, Context> {
        reach(span, cx, |record, _, cx| match &mut record.state {
            State::Pending { parent } => {
                *parent = cx;
                true
            }
            State::Started(_) => false,
        })
    }

    pub(crate) fn context(span: &Span) -> Reached<Context, ()> {
        reach(span, (), |record, starter, ()| record.context(starter))
    }

    pub(crate) fn add_link(
        span: &Span,
        link: (SpanContext, Vec<KeyValue>),
    ) -> Reached<(), (SpanContext, Vec<KeyValue>)> {
        reach(span, link, |record, _, (cx, attributes)| {
            record.push_link(cx, attributes);
        })
    }

    pub(crate) fn set_attribute(span: &Span, attribute: KeyValue) -> Reached<(), KeyValue> {
        reach(span, attribute, |record, _, attribute| {
            record.push_attribute(attribute);
        })
    }

    pub(crate) fn set_status(span: &Span, status: Status) -> Reached<(), Status> {
        reach(span, status, |record, _, status| record.set_status(status))
    }

    pub(crate) fn add_event(span: &Span, event: Event) -> Reached<(), Event> {
        reach(span, event, |record, _, event| record.push_event(event))
    }

    pub(crate) fn rename(span: &Span, name: Cow<'static, str>) -> Reached<(), Cow<'static, str>> {
        reach(span, name, |record, _, name| record.rename(name))
    }
}
