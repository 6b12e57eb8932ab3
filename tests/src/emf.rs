//! CloudWatch's embedded metric format (EMF), checked as CloudWatch Logs reads it: written from
//! AWS's specification, independently of tracekit's writer.
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>

use serde_json::Value;
use std::collections::BTreeMap;

/// Dimensions in one dimension set, at most.
pub const MAX_DIMENSIONS_PER_SET: usize = 30;
/// Metrics in one directive, at most.
pub const MAX_METRICS_PER_LINE: usize = 100;
/// Values of one metric in one line, at most.
pub const MAX_VALUES_PER_METRIC: usize = 100;

const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// A line against the embedded metric format specification
/// (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>):
/// the `_aws` member, its directive, every dimension and metric a member of the root of the
/// right type, and CloudWatch's limits.
pub fn check(line: &str) -> Result<Value, String> {
    let root: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let object = root.as_object().ok_or("the root is not an object")?;
    let aws = object
        .get("_aws")
        .and_then(Value::as_object)
        .ok_or("no _aws object")?;
    let timestamp = aws
        .get("Timestamp")
        .and_then(Value::as_u64)
        .ok_or("Timestamp is not a whole number")?;
    if timestamp < 1_600_000_000_000 {
        return Err(format!("Timestamp {timestamp} is not in milliseconds"));
    }
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .ok_or("no CloudWatchMetrics array")?;
    if directives.is_empty() {
        return Err("no metric directive".into());
    }
    let mut names = std::collections::HashSet::new();
    for directive in directives {
        let namespace = directive["Namespace"].as_str().ok_or("no Namespace")?;
        if namespace.is_empty() || namespace.len() > 255 {
            return Err(format!("Namespace {namespace:?}"));
        }
        let sets = directive["Dimensions"]
            .as_array()
            .ok_or("Dimensions is not an array")?;
        for set in sets {
            let set = set.as_array().ok_or("a dimension set is not an array")?;
            if set.len() > MAX_DIMENSIONS_PER_SET {
                return Err(format!("{} dimensions in a set", set.len()));
            }
            let unique: std::collections::HashSet<_> = set.iter().collect();
            if unique.len() != set.len() {
                return Err("a dimension named twice in a set".into());
            }
            for name in set {
                let name = name.as_str().ok_or("a dimension name is not a string")?;
                if !object.get(name).is_some_and(Value::is_string) {
                    return Err(format!("dimension {name} is not a string member"));
                }
            }
        }
        let metrics = directive["Metrics"]
            .as_array()
            .ok_or("Metrics is not an array")?;
        if metrics.len() > MAX_METRICS_PER_LINE {
            return Err(format!("{} metrics in a directive", metrics.len()));
        }
        for metric in metrics {
            let name = metric["Name"].as_str().ok_or("a metric without a Name")?;
            if name.is_empty() || name.len() > 255 || !names.insert(name.to_owned()) {
                return Err(format!("metric name {name:?}"));
            }
            if let Some(unit) = metric.get("Unit") {
                let unit = unit.as_str().ok_or("Unit is not a string")?;
                if !UNITS.contains(&unit) {
                    return Err(format!("unit {unit}"));
                }
            }
            if let Some(resolution) = metric.get("StorageResolution")
                && resolution != 1
                && resolution != 60
            {
                return Err(format!("StorageResolution {resolution}"));
            }
            match object.get(name) {
                Some(Value::Number(_)) => {}
                Some(Value::Array(values))
                    if values.len() <= MAX_VALUES_PER_METRIC
                        && values.iter().all(Value::is_number) => {}
                other => return Err(format!("metric {name}'s value {other:?}")),
            }
        }
    }
    Ok(root)
}

/// Every value of every metric of `lines`, by name, in line order.
pub fn values(lines: &[Value]) -> BTreeMap<String, Vec<f64>> {
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for line in lines {
        let directives = line["_aws"]["CloudWatchMetrics"].as_array();
        for metric in directives
            .into_iter()
            .flatten()
            .flat_map(|directive| directive["Metrics"].as_array().into_iter().flatten())
        {
            let Some(name) = metric["Name"].as_str() else {
                continue;
            };
            let entry = values.entry(name.to_owned()).or_default();
            match &line[name] {
                Value::Array(many) => entry.extend(many.iter().filter_map(Value::as_f64)),
                one => entry.extend(one.as_f64()),
            }
        }
    }
    values
}

/// The names of a line's first dimension set, in order.
pub fn dimension_names(line: &Value) -> Vec<String> {
    line["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// The EMF lines among `lines` (those with an `_aws` member), each checked.
pub fn checked(lines: &[String]) -> Result<Vec<Value>, String> {
    lines
        .iter()
        .filter(|line| line.contains("\"_aws\""))
        .map(|line| check(line).map_err(|error| format!("{error}: {line}")))
        .collect()
}
