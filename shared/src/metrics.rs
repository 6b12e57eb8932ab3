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

use crate::invocation::INVOCATION;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Metric definitions in one line, at most.
pub const MAX_METRICS_PER_LINE: usize = 100;
/// Values of one metric in one line, at most.
pub const MAX_VALUES_PER_METRIC: usize = 100;
/// Dimensions in one dimension set, at most.
pub const MAX_DIMENSIONS: usize = 30;
/// The dimension every line has.
pub const SERVICE_DIMENSION: &str = "service";
/// The cold start metric's name, and its other dimension.
pub const COLD_START_METRIC: &str = "ColdStart";
const FUNCTION_NAME_DIMENSION: &str = "function_name";

/// A metric's unit: CloudWatch's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum Unit {
    Seconds,
    Microseconds,
    Milliseconds,
    Bytes,
    Kilobytes,
    Megabytes,
    Gigabytes,
    Terabytes,
    Bits,
    Kilobits,
    Megabits,
    Gigabits,
    Terabits,
    Percent,
    Count,
    BytesPerSecond,
    KilobytesPerSecond,
    MegabytesPerSecond,
    GigabytesPerSecond,
    TerabytesPerSecond,
    BitsPerSecond,
    KilobitsPerSecond,
    MegabitsPerSecond,
    GigabitsPerSecond,
    TerabitsPerSecond,
    CountPerSecond,
    None,
}

impl Unit {
    /// The unit as CloudWatch spells it (`Count/Second`).
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Seconds => "Seconds",
            Unit::Microseconds => "Microseconds",
            Unit::Milliseconds => "Milliseconds",
            Unit::Bytes => "Bytes",
            Unit::Kilobytes => "Kilobytes",
            Unit::Megabytes => "Megabytes",
            Unit::Gigabytes => "Gigabytes",
            Unit::Terabytes => "Terabytes",
            Unit::Bits => "Bits",
            Unit::Kilobits => "Kilobits",
            Unit::Megabits => "Megabits",
            Unit::Gigabits => "Gigabits",
            Unit::Terabits => "Terabits",
            Unit::Percent => "Percent",
            Unit::Count => "Count",
            Unit::BytesPerSecond => "Bytes/Second",
            Unit::KilobytesPerSecond => "Kilobytes/Second",
            Unit::MegabytesPerSecond => "Megabytes/Second",
            Unit::GigabytesPerSecond => "Gigabytes/Second",
            Unit::TerabytesPerSecond => "Terabytes/Second",
            Unit::BitsPerSecond => "Bits/Second",
            Unit::KilobitsPerSecond => "Kilobits/Second",
            Unit::MegabitsPerSecond => "Megabits/Second",
            Unit::GigabitsPerSecond => "Gigabits/Second",
            Unit::TerabitsPerSecond => "Terabits/Second",
            Unit::CountPerSecond => "Count/Second",
            Unit::None => "None",
        }
    }
}

/// How finely CloudWatch stores a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resolution {
    /// One-minute points (`StorageResolution` 60, left out of the line as CloudWatch's default).
    #[default]
    Standard,
    /// One-second points (`StorageResolution` 1).
    High,
}

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
    let mut single = MetricSet {
        own_dimensions_only: true,
        ..MetricSet::default()
    };
    single.add(name.into(), unit, value, Resolution::Standard);
    for (name, value) in dimensions {
        single.dimension((*name).to_owned(), (*value).to_owned());
    }
    with_set(|set| set.singles.push(single));
}

/// Runs `f` on the current invocation's metrics; outside an invocation, on a set written at once.
fn with_set(f: impl FnOnce(&mut MetricSet)) {
    let mut f = Some(f);
    let kept = INVOCATION.try_with(|state| {
        if let Some(f) = f.take() {
            let mut metrics = state
                .metrics
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            f(metrics.get_or_insert_with(MetricSet::default));
        }
    });
    if kept.is_err()
        && let Some(f) = f.take()
    {
        let mut set = MetricSet::default();
        f(&mut set);
        crate::telemetry::write_metrics_now(set);
    }
}

/// One invocation's metrics, dimensions and properties, and its one-off metrics.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct MetricSet {
    metrics: Vec<Metric>,
    dimensions: Vec<(String, String)>,
    metadata: Map<String, Value>,
    singles: Vec<MetricSet>,
    /// A one-off metric's line: its own dimensions, without `service`.
    own_dimensions_only: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Metric {
    name: String,
    unit: Unit,
    resolution: Resolution,
    values: Vec<f64>,
}

impl MetricSet {
    pub(crate) fn is_empty(&self) -> bool {
        self.metrics.is_empty() && self.singles.iter().all(MetricSet::is_empty)
    }

    fn add(&mut self, name: String, unit: Unit, value: f64, resolution: Resolution) {
        if !value.is_finite() {
            tracing::warn!(target: "tracekit", metric = %name, value, "metric value is not a finite number: not written");
            return;
        }
        if name.is_empty() || name.len() > 255 {
            tracing::warn!(target: "tracekit", metric = %name, "metric names are 1 to 255 characters: not written");
            return;
        }
        match self.metrics.iter_mut().find(|metric| metric.name == name) {
            Some(metric) => {
                if metric.unit != unit || metric.resolution != resolution {
                    tracing::warn!(target: "tracekit", metric = %name, unit = unit.as_str(), first = metric.unit.as_str(), "a metric keeps the unit and resolution it was first added with");
                }
                metric.values.push(value);
            }
            None => self.metrics.push(Metric {
                name,
                unit,
                resolution,
                values: vec![value],
            }),
        }
    }

    /// A dimension, replacing one of the same name.
    fn dimension(&mut self, name: String, value: String) {
        match self.dimensions.iter_mut().find(|(known, _)| *known == name) {
            Some((_, known)) => *known = value,
            None => self.dimensions.push((name, value)),
        }
    }

    /// Adds the cold start's metric, as a line of its own.
    pub(crate) fn cold_start(&mut self, function_name: &str) {
        let mut single = MetricSet::default();
        single.add(
            COLD_START_METRIC.to_owned(),
            Unit::Count,
            1.0,
            Resolution::Standard,
        );
        single.dimension(FUNCTION_NAME_DIMENSION.to_owned(), function_name.to_owned());
        self.singles.push(single);
    }
}

/// What every line of a process says: its namespace and service.
#[derive(Debug, Clone)]
pub(crate) struct Emitter {
    pub(crate) namespace: Option<String>,
    pub(crate) service: String,
}

/// Where a line's metrics come from, besides its set.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LineContext<'a> {
    pub(crate) request_id: Option<&'a str>,
    pub(crate) trace_id: Option<&'a str>,
    pub(crate) timestamp_ms: u64,
}

/// Metrics dropped because no namespace is configured, and whether that has been said.
static DROPPED: AtomicU64 = AtomicU64::new(0);
static SAID_NO_NAMESPACE: AtomicBool = AtomicBool::new(false);

impl Emitter {
    /// The EMF lines of `set` (each ending in a newline); none if it holds no metric.
    pub(crate) fn lines(&self, set: &MetricSet, context: LineContext<'_>) -> Vec<String> {
        if set.is_empty() {
            return Vec::new();
        }
        let Some(namespace) = self.namespace.as_deref() else {
            let metrics = count(set);
            let before = DROPPED.fetch_add(metrics as u64, Ordering::Relaxed);
            if !SAID_NO_NAMESPACE.swap(true, Ordering::Relaxed) {
                tracing::warn!(target: "tracekit", dropped = metrics, "metrics need a namespace: set TRACEKIT_METRICS_NAMESPACE (or POWERTOOLS_METRICS_NAMESPACE); metrics are dropped until then");
            } else {
                tracing::debug!(target: "tracekit", dropped = before + metrics as u64, "metrics dropped: no namespace");
            }
            return Vec::new();
        };
        let mut lines = Vec::new();
        self.set_lines(namespace, set, context, &mut lines);
        for single in &set.singles {
            self.set_lines(namespace, single, context, &mut lines);
        }
        lines
    }

    fn set_lines(
        &self,
        namespace: &str,
        set: &MetricSet,
        context: LineContext<'_>,
        lines: &mut Vec<String>,
    ) {
        if set.metrics.is_empty() {
            return;
        }
        let mut dimensions: Vec<(&str, &str)> = Vec::new();
        if !set.own_dimensions_only {
            dimensions.push((SERVICE_DIMENSION, self.service.as_str()));
        }
        let mut overflow: Vec<(&str, &str)> = Vec::new();
        for (name, value) in &set.dimensions {
            if let Some(known) = dimensions.iter_mut().find(|(known, _)| *known == name) {
                known.1 = value;
            } else if dimensions.len() < MAX_DIMENSIONS {
                dimensions.push((name, value));
            } else {
                overflow.push((name, value));
            }
        }
        if !overflow.is_empty() {
            tracing::warn!(target: "tracekit", kept_as_properties = overflow.len(), "a metric line holds at most 30 dimensions: the rest are written as properties");
        }
        // Each metric's values in chunks of 100; a chunk goes on the first line after its
        // metric's previous chunk that has room.
        let mut placed: Vec<Vec<(&Metric, &[f64])>> = Vec::new();
        for metric in &set.metrics {
            let mut next = 0;
            for chunk in metric.values.chunks(MAX_VALUES_PER_METRIC) {
                let mut line = next;
                while placed
                    .get(line)
                    .is_some_and(|line| line.len() >= MAX_METRICS_PER_LINE)
                {
                    line += 1;
                }
                if line == placed.len() {
                    placed.push(Vec::new());
                }
                placed[line].push((metric, chunk));
                next = line + 1;
            }
        }
        for metrics in placed {
            let mut root = Map::new();
            let definitions: Vec<Value> = metrics
                .iter()
                .map(|(metric, _)| {
                    let mut definition = Map::new();
                    definition.insert("Name".into(), Value::from(metric.name.as_str()));
                    definition.insert("Unit".into(), Value::from(metric.unit.as_str()));
                    if metric.resolution == Resolution::High {
                        definition.insert("StorageResolution".into(), Value::from(1));
                    }
                    Value::Object(definition)
                })
                .collect();
            let names: Vec<Value> = dimensions
                .iter()
                .map(|(name, _)| Value::from(*name))
                .collect();
            let aws = serde_json::json!({
                "Timestamp": context.timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": [names],
                    "Metrics": definitions,
                }],
            });
            // Properties first, so that a dimension or a metric of the same name wins.
            for (key, value) in &set.metadata {
                root.insert(key.clone(), value.clone());
            }
            for (name, value) in &overflow {
                root.insert((*name).to_owned(), Value::from(*value));
            }
            if let Some(request_id) = context.request_id {
                root.insert("requestId".into(), Value::from(request_id));
            }
            if let Some(trace_id) = context.trace_id {
                root.insert("traceId".into(), Value::from(trace_id));
            }
            for (name, value) in &dimensions {
                root.insert((*name).to_owned(), Value::from(*value));
            }
            for (metric, values) in &metrics {
                let value = match values {
                    [one] => Value::from(*one),
                    many => Value::from(many.to_vec()),
                };
                root.insert(metric.name.clone(), value);
            }
            root.insert("_aws".into(), aws);
            let mut line = Value::Object(root).to_string();
            line.push('\n');
            lines.push(line);
        }
    }
}

fn count(set: &MetricSet) -> usize {
    set.metrics.len() + set.singles.iter().map(count).sum::<usize>()
}

#[cfg(test)]
mod tests;
