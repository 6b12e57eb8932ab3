//! CloudWatch metrics beside the traces, in CloudWatch's [embedded metric format] (EMF): one JSON
//! line on stdout that CloudWatch Logs turns into metrics, with no API call on the invocation's way.
//!
//! ```no_run
//! use tracekit::metrics::{self, Unit};
//!
//! # fn order() {
//! metrics::add_metric("OrdersCreated", Unit::Count, 1.0);
//! metrics::add_metric("OrderValue", Unit::None, 42.5);
//! metrics::add_dimension("PaymentMethod", "card");
//! metrics::add_metadata("orderId", "o-123");
//! # }
//! ```
//!
//! Metrics belong to the invocation that adds them (its task-local state, so invocations running at
//! once under Lambda Managed Instances never mix theirs) and are written when it ends, after the
//! response, through the writer of the log lines: nothing is written for an invocation that added
//! none, and a failed invocation still writes its metrics. Outside an invocation (during init) a
//! metric is written at once, on a line of its own.
//!
//! Each line names the namespace (`TRACEKIT_METRICS_NAMESPACE`, or Powertools'
//! `POWERTOOLS_METRICS_NAMESPACE`), the dimension `service` (the service name tracekit gives the
//! spans) and the invocation's dimensions, and carries the invocation's `requestId` and X-Ray
//! `traceId` as properties (not dimensions), so a metric point leads to its trace. A one-off
//! metric ([`single_metric`]) has only its own dimensions, as in Powertools. CloudWatch's
//! rules hold by construction: at most 100 metrics and 100 values of a metric per line (more are
//! split over several lines), at most 30 dimensions (a dimension past the 30th is kept as a
//! property, with a warning), units from CloudWatch's list, and the timestamp in milliseconds. A
//! metric added while no namespace is configured is dropped, counted and said once.
//!
//! With `TRACEKIT_METRICS_COLD_START=true`, a cold start adds the metric `ColdStart` (count 1,
//! dimensions `function_name` and `service`), as Powertools' `capture_cold_start_metric` does:
//! once per process, never under provisioned concurrency.
//!
//! [embedded metric format]: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html

pub(crate) mod emf;

use emf::MetricSet;
pub use emf::{
    COLD_START_METRIC, MAX_DIMENSIONS, MAX_METRICS_PER_LINE, MAX_VALUES_PER_METRIC, Resolution,
    SERVICE_DIMENSION, Unit,
};

use crate::invocation::INVOCATION;
use serde_json::Value;

/// Adds `value` to the metric `name` of the current invocation, at standard resolution. Adding to
/// a metric again adds a value (a line holds up to 100 per metric).
pub fn add_metric(name: impl Into<String>, unit: Unit, value: f64) {
    add_metric_with_resolution(name, unit, value, Resolution::Standard);
}

/// [`add_metric`] at a chosen resolution.
pub fn add_metric_with_resolution(
    name: impl Into<String>,
    unit: Unit,
    value: f64,
    resolution: Resolution,
) {
    let name = name.into();
    with_set(|set| set.add(name, unit, value, resolution));
}

/// Adds the dimension `name` = `value` to every metric of the current invocation.
pub fn add_dimension(name: impl Into<String>, value: impl Into<String>) {
    let (name, value) = (name.into(), value.into());
    with_set(|set| set.dimension(name, value));
}

/// Adds a property to the current invocation's metric lines: searchable in CloudWatch Logs, not a
/// dimension.
pub fn add_metadata(key: impl Into<String>, value: impl Into<Value>) {
    let (key, value) = (key.into(), value.into());
    with_set(|set| {
        set.metadata.insert(key, value);
    });
}

/// A metric on a line of its own with only its own dimensions (not `service`, not the
/// invocation's), as Powertools' `single_metric`.
pub fn single_metric(name: impl Into<String>, unit: Unit, value: f64, dimensions: &[(&str, &str)]) {
    let mut single = MetricSet::own_dimensions();
    single.add(name.into(), unit, value, Resolution::Standard);
    for (name, value) in dimensions {
        single.dimension((*name).to_owned(), (*value).to_owned());
    }
    with_set(|set| set.singles.push(single));
}

/// Runs `f` on the current invocation's metrics; outside an invocation, on a set written at once.
fn with_set(f: impl FnOnce(&mut MetricSet)) {
    match INVOCATION.try_with(std::sync::Arc::clone) {
        Ok(state) => state.add_metrics(f),
        Err(_) => {
            let mut set = MetricSet::default();
            f(&mut set);
            crate::telemetry::write_metrics_now(set);
        }
    }
}
