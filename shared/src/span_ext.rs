//! tracekit's span extension: what a module of tracekit, or a function, does to the OpenTelemetry
//! side of a `tracing` span (its parent, links, attributes, status, events, its context).
//!
//! It is the one seam between tracekit and the span path: every module reaches spans through it,
//! never through tracing-opentelemetry, so the path behind it can change without them. Today it is
//! tracing-opentelemetry's layer, and each method is the same call on
//! [`tracing_opentelemetry::OpenTelemetrySpanExt`], with the same name and the same meaning: code
//! that imports `tracekit::OpenTelemetrySpanExt` compiles either way.

use opentelemetry::{Context, Key, KeyValue, Value, trace::SpanContext, trace::Status};
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
        Bridge::set_parent(self, cx).map_err(|_| SetParentError)
    }

    fn add_link(&self, cx: SpanContext) {
        Bridge::add_link(self, cx);
    }

    fn add_link_with_attributes(&self, cx: SpanContext, attributes: Vec<KeyValue>) {
        Bridge::add_link_with_attributes(self, cx, attributes);
    }

    fn context(&self) -> Context {
        Bridge::context(self)
    }

    fn set_attribute(&self, key: impl Into<Key>, value: impl Into<Value>) {
        Bridge::set_attribute(self, key, value);
    }

    fn set_status(&self, status: Status) {
        Bridge::set_status(self, status);
    }

    fn add_event(&self, name: impl Into<Cow<'static, str>>, attributes: Vec<KeyValue>) {
        Bridge::add_event(self, name, attributes);
    }

    fn add_event_with_timestamp(
        &self,
        name: impl Into<Cow<'static, str>>,
        timestamp: SystemTime,
        attributes: Vec<KeyValue>,
    ) {
        Bridge::add_event_with_timestamp(self, name, timestamp, attributes);
    }
}
