//! One open span, as the recorder keeps it: its name, kind, times, typed attributes, events, links
//! and status, and its place in a trace once it has started.
//!
//! A span starts (gets its ids and its sampling decision) when it is first entered, when its
//! context is read, or when it closes, whichever comes first: until then its parent can still be
//! set ([`crate::OpenTelemetrySpanExt::set_parent`]). This is when tracing-opentelemetry starts its
//! spans, and what it does with each field, event and status is what a record does, so a trace
//! reads the same on either path; the one difference is that a `u64` field is an integer here.

use crate::flush::{LambdaSpanProcessor, SpanParts};
use opentelemetry::{
    Context, Key, KeyValue, StringValue, Value,
    trace::{Event, Link, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags},
};
use opentelemetry_sdk::trace::{
    IdGenerator, SamplingDecision, ShouldSample, SpanData, SpanEvents, SpanLinks,
};
use std::{borrow::Cow, fmt, time::SystemTime};
use tracing::field::{Field, Visit};

/// The OpenTelemetry SDK's default span limits, which the library path applies.
pub(super) const MAX_ATTRIBUTES: usize = 128;
const MAX_EVENTS: usize = 128;
const MAX_LINKS: usize = 128;
const MAX_ATTRIBUTES_PER_EVENT: usize = 128;
const MAX_ATTRIBUTES_PER_LINK: usize = 128;

/// Fields that say something about the span rather than being attributes of it (the names
/// tracing-opentelemetry gives them).
const NAME_FIELD: &str = "otel.name";
const KIND_FIELD: &str = "otel.kind";
const STATUS_CODE_FIELD: &str = "otel.status_code";
const STATUS_DESCRIPTION_FIELD: &str = "otel.status_description";
const EXCEPTION_EVENT: &str = "exception";
const EXCEPTION_MESSAGE: &str = "exception.message";
const EXCEPTION_STACKTRACE: &str = "exception.stacktrace";

/// What a record needs to start: the sampler and the ID generator.
pub(super) struct Starter<'a> {
    pub(super) sampler: &'a dyn ShouldSample,
    pub(super) ids: &'a dyn IdGenerator,
}

/// Where a span stands in its trace.
#[derive(Debug)]
pub(super) enum State {
    /// Not started: its parent is still this context.
    Pending { parent: Context },
    /// Started: its ids, its parent's, and whether it is recorded.
    Started(Started),
}

#[derive(Debug)]
pub(super) struct Started {
    pub(super) span_context: SpanContext,
    parent_span_id: SpanId,
    parent_is_remote: bool,
    /// Recorded (sampled, or recorded unsampled for Application Signals): only then are its
    /// attributes, events and links kept.
    pub(super) recording: bool,
    /// The parent's context: what a child or a carrier inherits besides this span (baggage).
    parent: Context,
    /// This span's context, built the first time something asks for it.
    context: Option<Context>,
}

/// One open span.
#[derive(Debug)]
pub(super) struct Record {
    pub(super) name: Cow<'static, str>,
    kind: Option<SpanKind>,
    start_time: SystemTime,
    pub(super) end_time: Option<SystemTime>,
    attributes: Vec<KeyValue>,
    dropped_attributes: u32,
    events: Vec<Event>,
    dropped_events: u32,
    links: Vec<Link>,
    dropped_links: u32,
    status: Status,
    pub(super) state: State,
}

impl Default for Record {
    fn default() -> Record {
        Record {
            name: Cow::Borrowed(""),
            kind: None,
            start_time: SystemTime::UNIX_EPOCH,
            end_time: None,
            attributes: Vec::new(),
            dropped_attributes: 0,
            events: Vec::new(),
            dropped_events: 0,
            links: Vec::new(),
            dropped_links: 0,
            status: Status::Unset,
            state: State::Pending {
                parent: Context::new(),
            },
        }
    }
}

impl Record {
    /// Opens this record for a span named `name` under `parent`, its creation fields recorded
    /// from `fields`. The record is cleared (see [`Record::clear`]).
    pub(super) fn open(
        &mut self,
        name: &'static str,
        parent: Context,
        fields: &tracing::span::Attributes<'_>,
    ) {
        self.name = Cow::Borrowed(name);
        self.start_time = opentelemetry::time::now();
        self.state = State::Pending { parent };
        self.attributes.reserve(fields.fields().len());
        fields.record(&mut SpanFields(self));
    }

    /// What the last span left, gone: the record is ready to be opened again.
    pub(super) fn clear(&mut self) {
        self.kind = None;
        self.end_time = None;
        self.attributes.clear();
        self.dropped_attributes = 0;
        self.events.clear();
        self.dropped_events = 0;
        self.links.clear();
        self.dropped_links = 0;
        self.status = Status::Unset;
        self.state = State::Pending {
            parent: Context::new(),
        };
    }

    pub(super) fn is_started(&self) -> bool {
        matches!(self.state, State::Started(_))
    }

    /// Whether what is recorded now would be kept: not started yet, or started and recorded.
    pub(super) fn keeps(&self) -> bool {
        match &self.state {
            State::Pending { .. } => true,
            State::Started(started) => started.recording,
        }
    }

    /// The started span's ids, starting it if it has not.
    pub(super) fn start(&mut self, starter: &Starter<'_>) -> &mut Started {
        if let State::Pending { parent } = &mut self.state {
            let parent = std::mem::take(parent);
            let started = self.started(parent, starter);
            self.state = State::Started(started);
        }
        match &mut self.state {
            State::Started(started) => started,
            State::Pending { .. } => unreachable!("started just above"),
        }
    }

    /// Ids and the sampling decision, as the OpenTelemetry SDK's tracer makes them.
    fn started(&mut self, parent: Context, starter: &Starter<'_>) -> Started {
        if parent.is_telemetry_suppressed() {
            self.forget();
            return Started {
                span_context: SpanContext::empty_context(),
                parent_span_id: SpanId::INVALID,
                parent_is_remote: false,
                recording: false,
                parent,
                context: None,
            };
        }
        let span_id = starter.ids.new_span_id();
        let parent_span = parent.span();
        let parent_span = parent_span.span_context();
        let (trace_id, parent_span_id, parent_is_remote, flags) = if parent_span.is_valid() {
            (
                parent_span.trace_id(),
                parent_span.span_id(),
                parent_span.is_remote(),
                parent_span.trace_flags(),
            )
        } else {
            (
                starter.ids.new_trace_id(),
                SpanId::INVALID,
                false,
                TraceFlags::default(),
            )
        };
        let result = starter.sampler.should_sample(
            Some(&parent),
            trace_id,
            &self.name,
            self.kind.as_ref().unwrap_or(&SpanKind::Internal),
            &self.attributes,
            &self.links,
        );
        let (flags, recording) = match result.decision {
            SamplingDecision::RecordAndSample => (flags.with_sampled(true), true),
            SamplingDecision::RecordOnly => (flags.with_sampled(false), true),
            SamplingDecision::Drop => (TraceFlags::default(), false),
        };
        if recording {
            for attribute in result.attributes {
                self.push_attribute(attribute);
            }
        } else {
            self.forget();
        }
        Started {
            span_context: SpanContext::new(trace_id, span_id, flags, false, result.trace_state),
            parent_span_id,
            parent_is_remote,
            recording,
            parent,
            context: None,
        }
    }

    /// A span that will not be exported keeps nothing (but its storage, for the next span).
    fn forget(&mut self) {
        self.attributes.clear();
        self.events.clear();
        self.links.clear();
    }

    /// The [`Context`] naming this span (it must have started).
    pub(super) fn context(&mut self, starter: &Starter<'_>) -> Context {
        let started = self.start(starter);
        started
            .context
            .get_or_insert_with(|| {
                started
                    .parent
                    .with_remote_span_context(started.span_context.clone())
            })
            .clone()
    }

    pub(super) fn push_attribute(&mut self, attribute: KeyValue) {
        if !self.keeps() {
            return;
        }
        if self.attributes.len() < MAX_ATTRIBUTES {
            self.attributes.push(attribute);
        } else {
            self.dropped_attributes += 1;
        }
    }

    pub(super) fn push_event(&mut self, mut event: Event) {
        if !self.keeps() {
            return;
        }
        if self.events.len() < MAX_EVENTS {
            let dropped = event
                .attributes
                .len()
                .saturating_sub(MAX_ATTRIBUTES_PER_EVENT);
            event.attributes.truncate(MAX_ATTRIBUTES_PER_EVENT);
            event.dropped_attributes_count = dropped as u32;
            self.events.push(event);
        } else {
            self.dropped_events += 1;
        }
    }

    pub(super) fn push_link(&mut self, context: SpanContext, mut attributes: Vec<KeyValue>) {
        if !self.keeps() || !context.is_valid() {
            return;
        }
        if self.links.len() < MAX_LINKS {
            let dropped = attributes.len().saturating_sub(MAX_ATTRIBUTES_PER_LINK);
            attributes.truncate(MAX_ATTRIBUTES_PER_LINK);
            self.links
                .push(Link::new(context, attributes, dropped as u32));
        } else {
            self.dropped_links += 1;
        }
    }

    /// Sets the status as tracing-opentelemetry does: before the span starts the last word wins;
    /// afterwards, as on an SDK span, only a move up the order Unset < Error < Ok.
    pub(super) fn set_status(&mut self, status: Status) {
        if !self.is_started() || status > self.status {
            self.status = status;
        }
    }

    /// Renames the span, whether or not it has started.
    pub(super) fn rename(&mut self, name: Cow<'static, str>) {
        self.name = name;
    }

    /// Records the fields of a `span.record(..)` call.
    pub(super) fn record(&mut self, values: &tracing::span::Record<'_>) {
        values.record(&mut SpanFields(self));
    }

    /// A `tracing` event inside this span, as a span event (`level`, `target` and the fields); an
    /// ERROR event, or one with an `error` field, makes the span's status an error.
    pub(super) fn event(&mut self, event: &tracing::Event<'_>) {
        let metadata = event.metadata();
        let mut visitor = EventFields {
            event: Event::new(
                "",
                opentelemetry::time::now(),
                vec![
                    KeyValue::new("level", metadata.level().as_str()),
                    KeyValue::new("target", metadata.target()),
                ],
                0,
            ),
            status: None,
            exception: Vec::new(),
        };
        event.record(&mut visitor);
        let EventFields {
            mut event,
            status,
            exception,
        } = visitor;
        if event.name.is_empty() {
            event.name = Cow::Borrowed(metadata.name());
        }
        let error = *metadata.level() == tracing::Level::ERROR;
        if self.is_started() {
            if error {
                self.set_status(Status::error(""));
            }
            if let Some(status) = status {
                self.set_status(status);
            }
        } else {
            if error && self.status == Status::Unset {
                self.status = Status::error("");
            }
            if let Some(status) = status {
                self.status = status;
            }
        }
        for attribute in exception {
            self.push_attribute(attribute);
        }
        self.push_event(event);
    }

    /// The ended span goes to `processor`: encoded from the record where the processor encodes
    /// spans as they end (the record keeps its storage for the next span), else as a `SpanData`
    /// taken out of the record, returned for [`SpanProcessor::on_end`]. A span never exited ends
    /// now.
    ///
    /// [`SpanProcessor::on_end`]: opentelemetry_sdk::trace::SpanProcessor::on_end
    pub(super) fn end(
        &mut self,
        starter: &Starter<'_>,
        scope: &opentelemetry::InstrumentationScope,
        processor: &LambdaSpanProcessor,
    ) -> Option<SpanData> {
        if !processor.encodes() {
            return self.take_span_data(starter, scope);
        }
        let started = self.start(starter);
        if !started.recording {
            return None;
        }
        let context = started.span_context.clone();
        let parent_span_id = started.parent_span_id;
        let parent_span_is_remote = parent_span_id != SpanId::INVALID && started.parent_is_remote;
        let kind = self.kind.clone().unwrap_or(SpanKind::Internal);
        let end_time = self.end_time.unwrap_or_else(opentelemetry::time::now);
        let Record {
            name,
            start_time,
            attributes,
            dropped_attributes,
            events,
            dropped_events,
            links,
            dropped_links,
            status,
            ..
        } = self;
        processor.end_parts(
            (
                &kind,
                (parent_span_id, parent_span_is_remote),
                context.is_sampled(),
            ),
            scope,
            attributes,
            |attributes| SpanParts {
                context: &context,
                parent_span_id,
                parent_span_is_remote,
                name,
                kind: &kind,
                start_time: *start_time,
                end_time,
                attributes,
                dropped_attributes: *dropped_attributes,
                events,
                dropped_events: *dropped_events,
                links,
                dropped_links: *dropped_links,
                status,
            },
        );
        None
    }

    /// The ended span, for the span processor, taken out of the record: `None` if it is not
    /// recorded. A span never exited ends now.
    pub(super) fn take_span_data(
        &mut self,
        starter: &Starter<'_>,
        scope: &opentelemetry::InstrumentationScope,
    ) -> Option<SpanData> {
        let started = self.start(starter);
        if !started.recording {
            return None;
        }
        let span_context = started.span_context.clone();
        let parent_span_id = started.parent_span_id;
        let parent_span_is_remote = parent_span_id != SpanId::INVALID && started.parent_is_remote;
        let mut events = SpanEvents::default();
        events.events = std::mem::take(&mut self.events);
        events.dropped_count = self.dropped_events;
        let mut links = SpanLinks::default();
        links.links = std::mem::take(&mut self.links);
        links.dropped_count = self.dropped_links;
        Some(SpanData {
            span_context,
            parent_span_id,
            parent_span_is_remote,
            span_kind: self.kind.take().unwrap_or(SpanKind::Internal),
            name: std::mem::take(&mut self.name),
            start_time: self.start_time,
            end_time: self.end_time.unwrap_or_else(opentelemetry::time::now),
            attributes: std::mem::take(&mut self.attributes),
            dropped_attributes_count: self.dropped_attributes,
            events,
            links,
            status: std::mem::take(&mut self.status),
            instrumentation_scope: scope.clone(),
        })
    }

    fn special(&mut self, field: &Field, value: &str) -> bool {
        match field.name() {
            NAME_FIELD => {
                // Once started, the library path keeps the name it started with.
                if !self.is_started() {
                    self.name = Cow::Owned(value.to_owned());
                }
            }
            KIND_FIELD => {
                // An unknown kind leaves the one the span had.
                if let (false, Some(kind)) = (self.is_started(), span_kind(value)) {
                    self.kind = Some(kind);
                }
            }
            STATUS_CODE_FIELD => self.set_status(status(value)),
            STATUS_DESCRIPTION_FIELD => self.set_status(Status::error(value.to_owned())),
            _ => return false,
        }
        true
    }
}

fn span_kind(value: &str) -> Option<SpanKind> {
    [
        ("server", SpanKind::Server),
        ("client", SpanKind::Client),
        ("producer", SpanKind::Producer),
        ("consumer", SpanKind::Consumer),
        ("internal", SpanKind::Internal),
    ]
    .into_iter()
    .find(|(name, _)| value.eq_ignore_ascii_case(name))
    .map(|(_, kind)| kind)
}

fn status(value: &str) -> Status {
    if value.eq_ignore_ascii_case("ok") {
        Status::Ok
    } else if value.eq_ignore_ascii_case("error") {
        Status::error("")
    } else {
        Status::Unset
    }
}

/// An error's `source` chain, outermost first, without the error itself.
fn source_chain(error: &(dyn std::error::Error + 'static)) -> Vec<StringValue> {
    let mut chain = Vec::new();
    let mut next = error.source();
    while let Some(source) = next {
        chain.push(source.to_string().into());
        next = source.source();
    }
    chain
}

/// A span's fields, as attributes (or as its name, kind and status).
struct SpanFields<'a>(&'a mut Record);

impl Visit for SpanFields<'_> {
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.push_attribute(KeyValue::new(field.name(), value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.push_attribute(KeyValue::new(field.name(), value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.push_attribute(KeyValue::new(field.name(), value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match i64::try_from(value) {
            Ok(value) => self.0.push_attribute(KeyValue::new(field.name(), value)),
            Err(_) => self.record_debug(field, &value),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.0.special(field, value) {
            self.0
                .push_attribute(KeyValue::new(field.name(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.0.keeps() && !field.name().starts_with("otel.") {
            return;
        }
        let text = format!("{value:?}");
        if !self.0.special(field, &text) {
            self.0
                .push_attribute(KeyValue::new(field.name(), Value::String(text.into())));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if !self.0.keeps() {
            return;
        }
        let chain = source_chain(value);
        let message = value.to_string();
        self.0
            .push_attribute(KeyValue::new(EXCEPTION_MESSAGE, message.clone()));
        self.0.push_attribute(KeyValue::new(
            EXCEPTION_STACKTRACE,
            Value::Array(chain.clone().into()),
        ));
        self.0.push_attribute(KeyValue::new(field.name(), message));
        self.0.push_attribute(KeyValue::new(
            Key::new(format!("{}.chain", field.name())),
            Value::Array(chain.into()),
        ));
    }
}

/// An event's fields, as a span event's name and attributes.
struct EventFields {
    event: Event,
    /// An `error` field makes the span's status an error with its text.
    status: Option<Status>,
    /// An error value's message and chain, for the span's own attributes.
    exception: Vec<KeyValue>,
}

impl EventFields {
    fn attribute(&mut self, attribute: KeyValue) {
        self.event.attributes.push(attribute);
    }

    /// An `error` field before any message: the event is an `exception` and the span an error.
    fn error(&mut self, text: String) {
        self.status = Some(Status::error(text.clone()));
        self.event.name = Cow::Borrowed(EXCEPTION_EVENT);
        self.attribute(KeyValue::new(EXCEPTION_MESSAGE, text));
    }
}

impl Visit for EventFields {
    fn record_bool(&mut self, field: &Field, value: bool) {
        match field.name() {
            "message" => self.event.name = value.to_string().into(),
            name => self.attribute(KeyValue::new(name, value)),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        match field.name() {
            "message" => self.event.name = value.to_string().into(),
            name => self.attribute(KeyValue::new(name, value)),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        match field.name() {
            "message" => self.event.name = value.to_string().into(),
            name => self.attribute(KeyValue::new(name, value)),
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match (field.name(), i64::try_from(value)) {
            ("message", _) => self.event.name = value.to_string().into(),
            (name, Ok(value)) => self.attribute(KeyValue::new(name, value)),
            (_, Err(_)) => self.record_debug(field, &value),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.event.name = value.to_owned().into(),
            "error" if self.event.name.is_empty() => self.error(format!("{value:?}")),
            name => self.attribute(KeyValue::new(name, value.to_owned())),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.event.name = format!("{value:?}").into(),
            "error" if self.event.name.is_empty() => self.error(format!("{value:?}")),
            name => self.attribute(KeyValue::new(name, format!("{value:?}"))),
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let chain = source_chain(value);
        let message = value.to_string();
        self.attribute(KeyValue::new(EXCEPTION_MESSAGE, message.clone()));
        self.attribute(KeyValue::new(
            EXCEPTION_STACKTRACE,
            Value::Array(chain.clone().into()),
        ));
        self.exception
            .push(KeyValue::new(EXCEPTION_MESSAGE, message.clone()));
        self.exception.push(KeyValue::new(
            EXCEPTION_STACKTRACE,
            Value::Array(chain.clone().into()),
        ));
        self.attribute(KeyValue::new(field.name(), message));
        self.attribute(KeyValue::new(
            Key::new(format!("{}.chain", field.name())),
            Value::Array(chain.into()),
        ));
    }
}
