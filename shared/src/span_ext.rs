//! tracekit's span extension: what a module of tracekit, or a function, does to the OpenTelemetry
//! side of a `tracing` span (its parent, links, attributes, status, events, its context).
//!
//! It is the one seam between tracekit and the span path: every module reaches spans through it,
//! never through tracing-opentelemetry. Under tracekit's own subscriber (`recorder`) each method
//! works on the span's record; on the compatibility path (`TRACEKIT_SPAN_PATH=tracing-opentelemetry`,
//! or layers of the user's) it is the same call on
//! [`tracing_opentelemetry::OpenTelemetrySpanExt`], with the same name and the same meaning: code
//! that imports `tracekit::OpenTelemetrySpanExt` compiles and behaves the same on both.

use crate::recorder::{Reached, ops};
use opentelemetry::{
    Context, Key, KeyValue, Value,
    trace::{Event, SpanContext, Status},
};
use std::{borrow::Cow, time::SystemTime};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as Bridge;

/// The parent could not be set: no subscriber that knows OpenTelemetry records this span (the
/// span is disabled, or tracekit's subscriber is not the one in force).
#[derive(Debug, thiserror::Error)]
#[error("the span's parent cannot be set: no OpenTelemetry subscriber records it")]
#[non_exhaustive]
pub struct SetParentError;

mod sealed {
    pub trait Sealed {}
    impl Sealed for tracing::Span {}
}

/// The OpenTelemetry side of a [`tracing::Span`]: its parent, links, attributes, status and events,
/// and the [`Context`] that names it.
///
/// ```
/// use tracekit::OpenTelemetrySpanExt;
///
/// let span = tracekit::tracing::info_span!("price order");
/// span.set_attribute("order.items", 3);
/// span.set_status(tracekit::opentelemetry::trace::Status::Ok);
/// ```
pub trait OpenTelemetrySpanExt: sealed::Sealed {
    /// Makes `cx`'s span the parent of this one, before the span starts (its first enter, or its
    /// context read): afterwards it changes nothing.
    fn set_parent(&self, cx: Context) -> Result<(), SetParentError>;

    /// Links this span to `cx`'s span.
    fn add_link(&self, cx: SpanContext);

    /// Links this span to `cx`'s span, with attributes on the link.
    fn add_link_with_attributes(&self, cx: SpanContext, attributes: Vec<KeyValue>);

    /// The [`Context`] that names this span: the parent to give work done on its behalf elsewhere,
    /// or the carrier to inject into an outgoing message.
    fn context(&self) -> Context;

    /// Sets one attribute.
    fn set_attribute(&self, key: impl Into<Key>, value: impl Into<Value>);

    /// Sets the span's status.
    fn set_status(&self, status: Status);

    /// Adds an event, timed now.
    fn add_event(&self, name: impl Into<Cow<'static, str>>, attributes: Vec<KeyValue>);

    /// Adds an event at `timestamp`.
    fn add_event_with_timestamp(
        &self,
        name: impl Into<Cow<'static, str>>,
        timestamp: SystemTime,
        attributes: Vec<KeyValue>,
    );
}

impl OpenTelemetrySpanExt for Span {
    fn set_parent(&self, cx: Context) -> Result<(), SetParentError> {
        match ops::set_parent(self, cx) {
            Reached::Traced(true) => Ok(()),
            Reached::Traced(false) | Reached::Untraced => Err(SetParentError),
            Reached::Elsewhere(cx) => Bridge::set_parent(self, cx).map_err(|_| SetParentError),
        }
    }

    fn add_link(&self, cx: SpanContext) {
        OpenTelemetrySpanExt::add_link_with_attributes(self, cx, Vec::new());
    }

    fn add_link_with_attributes(&self, cx: SpanContext, attributes: Vec<KeyValue>) {
        if let Reached::Elsewhere((cx, attributes)) = ops::add_link(self, (cx, attributes)) {
            Bridge::add_link_with_attributes(self, cx, attributes);
        }
    }

    fn context(&self) -> Context {
        match ops::context(self) {
            Reached::Traced(cx) => cx,
            Reached::Untraced => Context::new(),
            Reached::Elsewhere(()) => Bridge::context(self),
        }
    }

    fn set_attribute(&self, key: impl Into<Key>, value: impl Into<Value>) {
        let attribute = KeyValue::new(key, value);
        if let Reached::Elsewhere(attribute) = ops::set_attribute(self, attribute) {
            Bridge::set_attribute(self, attribute.key, attribute.value);
        }
    }

    fn set_status(&self, status: Status) {
        if let Reached::Elsewhere(status) = ops::set_status(self, status) {
            Bridge::set_status(self, status);
        }
    }

    fn add_event(&self, name: impl Into<Cow<'static, str>>, attributes: Vec<KeyValue>) {
        OpenTelemetrySpanExt::add_event_with_timestamp(
            self,
            name,
            opentelemetry::time::now(),
            attributes,
        );
    }

    fn add_event_with_timestamp(
        &self,
        name: impl Into<Cow<'static, str>>,
        timestamp: SystemTime,
        attributes: Vec<KeyValue>,
    ) {
        let event = Event::new(name, timestamp, attributes, 0);
        if let Reached::Elsewhere(event) = ops::add_event(self, event) {
            Bridge::add_event_with_timestamp(self, event.name, event.timestamp, event.attributes);
        }
    }
}

/// Renames `span`, even after it has started (the route of an HTTP invocation is known only once
/// the handler has run).
pub(crate) fn rename(span: &Span, name: impl Into<Cow<'static, str>>) {
    use opentelemetry::trace::TraceContextExt;
    if let Reached::Elsewhere(name) = ops::rename(span, name.into()) {
        Bridge::context(span).span().update_name(name);
    }
}
