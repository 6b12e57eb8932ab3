//! JSON mode's subscriber: the OpenTelemetry layer and the log lines behind one per-layer filter
//! (text mode uses the same [`Gate`] for its log lines, behind their own filter).
//!
//! tracing-subscriber's per-layer filters look each span up in the registry, for every filtered
//! layer, on every enter, exit, record and close. The JSON log layer wants no span at all (its lines
//! carry ids, not span fields), yet as a second filtered layer it paid that lookup on every span
//! callback. Here both layers sit behind a single filter, [`SpansAndLogs`], and each [`Gate`] passes
//! on only what its own part of that filter chose: what reaches each layer is what its own filter
//! let through before.

use std::any::TypeId;
use tracing::{Event, Metadata, Subscriber, span, subscriber::Interest};
use tracing_subscriber::{
    filter::{LevelFilter, Targets},
    layer::{Context, Filter, Layer},
};

/// Lets through what either layer wants: spans and events the span filter enables, and events the
/// log filter enables.
#[derive(Debug, Clone)]
pub(super) struct SpansAndLogs {
    pub(super) spans: Targets,
    pub(super) logs: Targets,
    /// The events log buffering keeps, when it is on.
    pub(super) kept: Option<Targets>,
}

impl SpansAndLogs {
    fn wants(&self, metadata: &Metadata<'_>) -> bool {
        let (target, level) = (metadata.target(), metadata.level());
        self.spans.would_enable(target, level)
            || (metadata.is_event()
                && (self.logs.would_enable(target, level)
                    || self
                        .kept
                        .as_ref()
                        .is_some_and(|kept| kept.would_enable(target, level))))
    }
}

impl<S> Filter<S> for SpansAndLogs {
    fn enabled(&self, metadata: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        self.wants(metadata)
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        // Both filters are static (targets and levels), so the answer never changes.
        if self.wants(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        let spans = Filter::<S>::max_level_hint(&self.spans);
        let logs = Filter::<S>::max_level_hint(&self.logs);
        let kept = self
            .kept
            .as_ref()
            .and_then(|kept| Filter::<S>::max_level_hint(kept));
        spans.max(logs).max(kept)
    }
}

/// Passes on to `inner` the events `events` enables, and every span callback only if `spans`.
#[derive(Debug)]
pub(super) struct Gate<L> {
    inner: L,
    events: Targets,
    spans: bool,
}

impl<L> Gate<L> {
    /// The OpenTelemetry layer: every span the shared filter passed, and the events of the span
    /// filter (which become span events).
    pub(super) fn spans_and_events(inner: L, events: Targets) -> Self {
        Gate {
            inner,
            events,
            spans: true,
        }
    }

    /// A text log layer: the events of the log filter and every span callback (text lines print the
    /// spans they are in).
    pub(super) fn events_and_spans(inner: L, events: Targets) -> Self {
        Gate {
            inner,
            events,
            spans: true,
        }
    }

    /// The log layer: the events of the log filter, no span.
    pub(super) fn events_only(inner: L, events: Targets) -> Self {
        Gate {
            inner,
            events,
            spans: false,
        }
    }
}

impl<S, L> Layer<S> for Gate<L>
where
    S: Subscriber,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if self.spans {
            self.inner.on_new_span(attrs, id, ctx);
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        if self.spans {
            self.inner.on_record(id, values, ctx);
        }
    }

    fn on_follows_from(&self, id: &span::Id, follows: &span::Id, ctx: Context<'_, S>) {
        if self.spans {
            self.inner.on_follows_from(id, follows, ctx);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        // Dropped here, not in a filter: a per-layer filter that refuses an event in
        // `event_enabled` trips a debug assertion in tracing-subscriber 0.3.
        if self
            .events
            .would_enable(metadata.target(), metadata.level())
            && !crate::quiet::is_runtime_concurrency_warning(event)
        {
            self.inner.on_event(event, ctx);
        }
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        if self.spans {
            self.inner.on_enter(id, ctx);
        }
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        if self.spans {
            self.inner.on_exit(id, ctx);
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        if self.spans {
            self.inner.on_close(id, ctx);
        }
    }

    fn on_id_change(&self, old: &span::Id, new: &span::Id, ctx: Context<'_, S>) {
        if self.spans {
            self.inner.on_id_change(old, new, ctx);
        }
    }

    // tracing-opentelemetry reaches its span data through the subscriber's downcasts
    // (`OpenTelemetrySpanExt::context`, `set_parent`), so a layer that wraps it must pass them on,
    // as tracing-subscriber's own `Layered` and `Filtered` do.
    #[allow(
        unsafe_code,
        reason = "the trait method is unsafe to implement; forwarding it keeps its contract"
    )]
    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            return Some(self as *const Self as *const ());
        }
        // SAFETY: the pointer is `inner`'s own answer for `id`, valid as long as `inner`, which
        // lives as long as `self`.
        unsafe { self.inner.downcast_raw(id) }
    }
}

#[cfg(test)]
mod tests {
    use crate::{config::Config, testing::TestTelemetry};
    use std::time::Duration;

    /// tracekit's test subscriber (JSON logs) with `RUST_LOG` set to `log_filter`.
    fn telemetry(log_filter: &str) -> TestTelemetry {
        let config =
            Config::from_lookup(|name| (name == "RUST_LOG").then(|| log_filter.to_owned()))
                .expect("valid configuration");
        TestTelemetry::with_config(config)
    }

    /// The messages of the span events of the span named `name`, and of the log lines.
    async fn events_and_lines(test: &TestTelemetry, name: &str) -> (Vec<String>, Vec<String>) {
        test.telemetry().force_flush(Duration::from_secs(1)).await;
        let spans = test.spans();
        let span = spans.iter().find(|s| s.name == name).expect("the span");
        let events = span.events.iter().map(|e| e.name.to_string()).collect();
        let lines = test
            .log_lines()
            .iter()
            .map(|line| {
                let json: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
                json["message"].as_str().unwrap_or_default().to_owned()
            })
            .collect();
        (events, lines)
    }

    #[tokio::test]
    async fn each_layer_gets_what_its_own_filter_lets_through() {
        // Logs at DEBUG; spans and span events stay at INFO, without the runtime's own targets.
        let test = telemetry("debug");
        {
            let _work = tracing::info_span!("work").entered();
            tracing::debug!("a debug line");
            tracing::info!("an info line");
            tracing::info!(target: "lambda_runtime", "a runtime line");
            // Neither a DEBUG span nor a runtime span becomes an OpenTelemetry span.
            let _quiet = tracing::debug_span!("quiet").entered();
            let _runtime = tracing::info_span!(target: "lambda_runtime", "runtime").entered();
        }
        let (events, lines) = events_and_lines(&test, "work").await;
        assert_eq!(events, ["an info line"]);
        assert_eq!(lines, ["a debug line", "an info line", "a runtime line"]);
        let names: Vec<_> = test.spans().iter().map(|s| s.name.to_string()).collect();
        assert_eq!(names, ["work"]);
    }

    #[tokio::test]
    async fn a_quiet_log_level_keeps_the_span_events() {
        let test = telemetry("warn");
        {
            let _work = tracing::info_span!("work").entered();
            tracing::info!("only a span event");
            tracing::warn!("both");
        }
        let (events, lines) = events_and_lines(&test, "work").await;
        assert_eq!(events, ["only a span event", "both"]);
        assert_eq!(lines, ["both"]);
    }
}
