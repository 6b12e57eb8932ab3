//! A quiet start: what the dependencies print on their own that a function's user did not ask for.
//!
//! - opentelemetry's internal INFO lines ("Global tracer provider is set…"): its targets log at WARN
//!   unless the user names one of them in `RUST_LOG`.
//! - lambda_runtime's `Runtime::run` warns whenever `AWS_LAMBDA_MAX_CONCURRENCY` is set, even to `1`
//!   (which `cargo lambda watch` sets for every function), and says the `concurrency-tokio` feature
//!   is off when it is on. tracekit drops that line and says instead, in its sequential entry
//!   points, when the value asks for more than they serve.

use std::fmt;
use tracing::{
    Event, Level,
    field::{Field, Visit},
};
use tracing_subscriber::filter::{LevelFilter, Targets};

/// The prefix of opentelemetry's crates' targets (`opentelemetry`, `opentelemetry_sdk`, …): a
/// `Targets` directive matches every target it starts.
const OPENTELEMETRY: &str = "opentelemetry";
/// Where lambda_runtime's warning comes from, and how it starts.
const RUNTIME_TARGET: &str = "lambda_runtime";
const RUNTIME_CONCURRENCY_WARNING: &str = "AWS_LAMBDA_MAX_CONCURRENCY is set to";

/// The log filter for `directives` (already validated by the configuration): opentelemetry's own
/// lines at WARN at most, unless a directive names one of its targets.
pub(crate) fn log_targets(directives: &str) -> Targets {
    let targets = directives
        .parse::<Targets>()
        .unwrap_or_else(|_| Targets::new().with_default(LevelFilter::INFO));
    let named = targets
        .iter()
        .any(|(target, _)| target.starts_with(OPENTELEMETRY));
    if named {
        return targets;
    }
    let default = targets.default_level().unwrap_or(LevelFilter::OFF);
    targets.with_target(OPENTELEMETRY, default.min(LevelFilter::WARN))
}

/// Whether `event` is lambda_runtime's warning about `AWS_LAMBDA_MAX_CONCURRENCY` (see the module
/// docs). Only WARN events of lambda_runtime are looked into, so other events pay one comparison.
pub(crate) fn is_runtime_concurrency_warning(event: &Event<'_>) -> bool {
    let metadata = event.metadata();
    if *metadata.level() != Level::WARN || !metadata.target().starts_with(RUNTIME_TARGET) {
        return false;
    }
    let mut message = MessageStart::default();
    event.record(&mut message);
    message.matches
}

/// Whether an event's `message` starts with [`RUNTIME_CONCURRENCY_WARNING`].
#[derive(Default)]
struct MessageStart {
    matches: bool,
}

impl Visit for MessageStart {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.matches = format!("{value:?}").starts_with(RUNTIME_CONCURRENCY_WARNING);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config::Config, testing::TestTelemetry};

    #[test]
    fn opentelemetry_logs_at_warn_unless_named() {
        // (directives, target, level, expected, reason)
        let cases = [
            (
                "info",
                "opentelemetry",
                Level::INFO,
                false,
                "its INFO lines are noise",
            ),
            (
                "info",
                "opentelemetry_sdk",
                Level::WARN,
                true,
                "its warnings still show",
            ),
            (
                "info",
                "api",
                Level::INFO,
                true,
                "the user's own lines are untouched",
            ),
            (
                "error",
                "opentelemetry",
                Level::WARN,
                false,
                "never louder than the user's level",
            ),
            (
                "info,opentelemetry_sdk=debug",
                "opentelemetry_sdk",
                Level::DEBUG,
                true,
                "a named target is the user's choice",
            ),
            ("off", "opentelemetry", Level::ERROR, false, "off stays off"),
        ];
        for (directives, target, level, expected, reason) in cases {
            assert_eq!(
                log_targets(directives).would_enable(target, &level),
                expected,
                "{directives} / {target} at {level}: {reason}"
            );
        }
    }

    fn lines_of(format: &str) -> Vec<String> {
        let config = Config::from_lookup(|name| {
            (name == "AWS_LAMBDA_LOG_FORMAT").then(|| format.to_owned())
        })
        .expect("valid configuration");
        let test = TestTelemetry::with_config(config);
        tracing::warn!(
            target: "lambda_runtime::runtime",
            "AWS_LAMBDA_MAX_CONCURRENCY is set to '1', but the concurrency-tokio feature is not enabled; running sequentially",
        );
        tracing::warn!(target: "lambda_runtime::runtime", "Error polling /next, retrying");
        tracing::info!(target: "opentelemetry", "Global tracer provider is set");
        tracing::warn!("the user's warning");
        test.log_lines()
    }

    #[test]
    fn the_runtime_concurrency_warning_is_dropped_and_nothing_else() {
        for format in ["JSON", "Text"] {
            let lines = lines_of(format);
            assert_eq!(lines.len(), 2, "{format}: {lines:?}");
            assert!(
                lines[0].contains("Error polling /next"),
                "{format}: {lines:?}"
            );
            assert!(
                lines[1].contains("the user's warning"),
                "{format}: {lines:?}"
            );
        }
    }
}
