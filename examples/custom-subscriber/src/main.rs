//! `tracekit::builder()` is `tracekit::init()` with parts chosen in code. Here: a
//! `tracing_subscriber` layer of the function's own beside tracekit's (it counts the WARN and ERROR
//! events the function logs), a resource attribute on every span, and log lines on stderr instead
//! of stdout.

use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use tracekit::lambda_runtime::{Error, LambdaEvent, service_fn};
use tracekit::opentelemetry::KeyValue;
use tracekit::tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::Context;

/// Warnings and errors logged since the process started.
static NOTICED: AtomicU64 = AtomicU64::new(0);

/// A layer of the function's own: it sees the events its filter lets through.
struct CountWarnings;

impl<S: Subscriber> Layer<S> for CountWarnings {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if *event.metadata().level() <= Level::WARN {
            NOTICED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    if event.payload.get("name").is_none() {
        tracekit::tracing::warn!("no name in the event");
    }
    Ok(json!({ "warnings_so_far": NOTICED.load(Ordering::Relaxed) }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = tracekit::builder()
        // Without a filter of its own a layer would enable every callsite, the SDK's DEBUG ones too.
        .layer(CountWarnings.with_filter(LevelFilter::WARN))
        .resource_attributes([KeyValue::new("deployment.environment.name", "example")])
        .writer(std::io::stderr)
        .init()?;
    tracekit::run(&telemetry, service_fn(handler)).await
}
