//! The embedded metric format's model and writer: what an invocation's metrics are, and the lines
//! CloudWatch reads them from. Nothing here knows where the metrics come from or where the lines
//! go ([`super`] does).

use serde::{Serialize, Serializer, ser::SerializeMap};
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

/// One invocation's metrics, dimensions and properties, and its one-off metrics.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct MetricSet {
    metrics: Vec<Metric>,
    dimensions: Vec<(String, String)>,
    pub(super) metadata: Map<String, Value>,
    pub(super) singles: Vec<MetricSet>,
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
    /// A one-off metric's set: its own dimensions only.
    pub(super) fn own_dimensions() -> MetricSet {
        MetricSet {
            own_dimensions_only: true,
            ..MetricSet::default()
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.metrics.is_empty() && self.singles.iter().all(MetricSet::is_empty)
    }

    pub(super) fn add(&mut self, name: String, unit: Unit, value: f64, resolution: Resolution) {
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
    pub(super) fn dimension(&mut self, name: String, value: String) {
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
#[derive(Debug, Clone, Copy)]
pub(crate) struct Emitter<'a> {
    pub(crate) namespace: Option<&'a str>,
    pub(crate) service: &'a str,
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

impl Emitter<'_> {
    /// The EMF lines of `set` (each ending in a newline); none if it holds no metric.
    pub(crate) fn lines(&self, set: &MetricSet, context: LineContext<'_>) -> Vec<String> {
        if set.is_empty() {
            return Vec::new();
        }
        let Some(namespace) = self.namespace else {
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
            dimensions.push((SERVICE_DIMENSION, self.service));
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
        // A metric is a member of the line's root: it cannot take a dimension's name, or one of
        // the members every line has.
        let reserved = |name: &str| {
            ["_aws", "requestId", "traceId"].contains(&name)
                || dimensions
                    .iter()
                    .chain(&overflow)
                    .any(|(known, _)| *known == name)
        };
        let mut placed: Vec<Vec<(&Metric, &[f64])>> = Vec::new();
        for metric in &set.metrics {
            if reserved(&metric.name) {
                tracing::warn!(target: "tracekit", metric = %metric.name, "a metric cannot take the name of a dimension, _aws, requestId or traceId: not written");
                continue;
            }
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
            let line = Line {
                namespace,
                timestamp_ms: context.timestamp_ms,
                dimensions: &dimensions,
                overflow: &overflow,
                metadata: &set.metadata,
                request_id: context.request_id,
                trace_id: context.trace_id,
                metrics: &metrics,
            };
            if let Ok(mut text) = serde_json::to_string(&line) {
                text.push('\n');
                lines.push(text);
            }
        }
    }
}

/// One EMF line, serialized as it is read: no JSON tree is built. A member is written once: a
/// dimension, a metric, `requestId` and `traceId` before the properties of the same name, which
/// are then left out.
struct Line<'a> {
    namespace: &'a str,
    timestamp_ms: u64,
    dimensions: &'a [(&'a str, &'a str)],
    overflow: &'a [(&'a str, &'a str)],
    metadata: &'a Map<String, Value>,
    request_id: Option<&'a str>,
    trace_id: Option<&'a str>,
    metrics: &'a [(&'a Metric, &'a [f64])],
}

impl Line<'_> {
    fn taken(&self, key: &str) -> bool {
        key == "_aws"
            || self.dimensions.iter().any(|(name, _)| *name == key)
            || self.metrics.iter().any(|(metric, _)| metric.name == key)
            || (key == "requestId" && self.request_id.is_some())
            || (key == "traceId" && self.trace_id.is_some())
    }
}

impl Serialize for Line<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(
            "_aws",
            &Aws {
                timestamp: self.timestamp_ms,
                cloud_watch_metrics: [Directive {
                    namespace: self.namespace,
                    dimensions: [Names(self.dimensions)],
                    metrics: Definitions(self.metrics),
                }],
            },
        )?;
        for (name, value) in self.dimensions {
            map.serialize_entry(name, value)?;
        }
        for (metric, values) in self.metrics {
            match values {
                [one] => map.serialize_entry(&metric.name, one)?,
                many => map.serialize_entry(&metric.name, many)?,
            }
        }
        if let Some(request_id) = self.request_id {
            map.serialize_entry("requestId", request_id)?;
        }
        if let Some(trace_id) = self.trace_id {
            map.serialize_entry("traceId", trace_id)?;
        }
        for (name, value) in self.overflow {
            if !self.taken(name) {
                map.serialize_entry(name, value)?;
            }
        }
        for (key, value) in self.metadata {
            if !self.taken(key) && !self.overflow.iter().any(|(name, _)| name == key) {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Aws<'a> {
    timestamp: u64,
    cloud_watch_metrics: [Directive<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Directive<'a> {
    namespace: &'a str,
    dimensions: [Names<'a>; 1],
    metrics: Definitions<'a>,
}

/// A dimension set: the dimensions' names.
struct Names<'a>(&'a [(&'a str, &'a str)]);

impl Serialize for Names<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(name, _)| name))
    }
}

/// The line's metric definitions.
struct Definitions<'a>(&'a [(&'a Metric, &'a [f64])]);

impl Serialize for Definitions<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(metric, _)| Definition {
            name: &metric.name,
            unit: metric.unit.as_str(),
            storage_resolution: (metric.resolution == Resolution::High).then_some(1),
        }))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Definition<'a> {
    name: &'a str,
    unit: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    storage_resolution: Option<u8>,
}

fn count(set: &MetricSet) -> usize {
    set.metrics.len() + set.singles.iter().map(count).sum::<usize>()
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
