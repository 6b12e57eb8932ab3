//! X-Ray annotations: the span attributes X-Ray indexes, so that traces can be searched by them
//! (`annotation.customer_tier = "gold"` in the console's filter expressions).
//!
//! tracekit keeps an annotation on its span as the attribute `annotation.<key>`, set by
//! [`annotate`] or written as a `tracing` field of that name:
//!
//! ```
//! let span = tracing::info_span!("charge", annotation.customer_tier = "gold");
//! ```
//!
//! and gives each export path what it means by an annotation:
//! - the agent (OTLP over UDP), OTLP/HTTP(S) and X-Ray's OTLP endpoint: the attribute `<key>`, named
//!   in the span's `aws.xray.annotations` list, the convention AWS's X-Ray guide gives for
//!   OpenTelemetry spans and the ADOT collector's `awsxray` exporter reads (every other attribute
//!   is metadata there);
//! - X-Ray segment documents: the `annotation.` prefix, which opentelemetry-aws's translator reads
//!   itself.
//!
//! X-Ray's rules hold on every path: a key of letters, digits and underscores (any other character
//! becomes `_`, with one warning) of at most 500 characters; strings of at most 1,000 characters
//! (longer ones are cut, with one warning); 50 annotations per span, the first 50 — the others stay
//! attributes, which X-Ray keeps as metadata.
//! [Segment documents: annotations](https://docs.aws.amazon.com/xray/latest/devguide/xray-api-segmentdocuments.html#api-segmentdocuments-annotations)

use crate::OpenTelemetrySpanExt;
use opentelemetry::{Array, Key, KeyValue, StringValue, Value};

use std::borrow::Cow;
/// The prefix that makes an attribute an annotation.
pub const ANNOTATION_PREFIX: &str = "annotation.";
/// The OTLP paths' list of the attributes that are annotations.
const AWS_XRAY_ANNOTATIONS: &str = "aws.xray.annotations";
/// X-Ray indexes at most this many annotations.
const MAX_ANNOTATIONS: usize = 50;
/// Longest key X-Ray accepts.
const MAX_KEY_CHARS: usize = 500;
/// Longest string value X-Ray accepts.
const MAX_STRING_CHARS: usize = 1_000;

/// An annotation's value: X-Ray indexes strings, numbers and booleans.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AnnotationValue {
    /// A string, at most 1,000 characters.
    String(String),
    /// A whole number.
    Int(i64),
    /// A number.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl From<&str> for AnnotationValue {
    fn from(value: &str) -> Self {
        AnnotationValue::String(value.to_owned())
    }
}

impl From<String> for AnnotationValue {
    fn from(value: String) -> Self {
        AnnotationValue::String(value)
    }
}

impl From<i64> for AnnotationValue {
    fn from(value: i64) -> Self {
        AnnotationValue::Int(value)
    }
}

impl From<i32> for AnnotationValue {
    fn from(value: i32) -> Self {
        AnnotationValue::Int(i64::from(value))
    }
}

impl From<u32> for AnnotationValue {
    fn from(value: u32) -> Self {
        AnnotationValue::Int(i64::from(value))
    }
}

impl From<f64> for AnnotationValue {
    fn from(value: f64) -> Self {
        AnnotationValue::Float(value)
    }
}

impl From<bool> for AnnotationValue {
    fn from(value: bool) -> Self {
        AnnotationValue::Bool(value)
    }
}

/// Annotates the current span (the invocation's, or the one the handler entered) with `key` and
/// `value`, which X-Ray indexes. A key X-Ray would refuse is made valid (`order id` →
/// `order_id`) and a string too long is cut, each with a warning; an empty key is refused with one.
///
/// ```no_run
/// tracekit::annotate("customer_tier", "gold");
/// tracekit::annotate("items", 3);
/// tracekit::annotate("express", true);
/// ```
pub fn annotate(key: &str, value: impl Into<AnnotationValue>) {
    let Some(valid) = valid_key(key) else {
        tracing::warn!(target: "tracekit", "annotation refused: X-Ray annotation keys cannot be empty");
        return;
    };
    if valid != key {
        tracing::warn!(target: "tracekit", key, annotation = %valid, "annotation key changed: X-Ray keys hold letters, digits and underscores, at most 500");
    }
    let value = match value.into() {
        AnnotationValue::String(text) => {
            let cut = cut(&text);
            if cut.len() < text.len() {
                tracing::warn!(target: "tracekit", annotation = %valid, chars = text.chars().count(), "annotation value cut to X-Ray's 1,000 characters");
            }
            Value::from(cut.into_owned())
        }
        AnnotationValue::Int(number) => Value::I64(number),
        AnnotationValue::Float(number) => Value::F64(number),
        AnnotationValue::Bool(flag) => Value::Bool(flag),
    };
    tracing::Span::current().set_attribute(format!("{ANNOTATION_PREFIX}{valid}"), value);
}

/// `key` with every character X-Ray refuses replaced by `_`, cut to 500 characters; `None` when
/// nothing is left.
pub(crate) fn valid_key(key: &str) -> Option<Cow<'_, str>> {
    if key.is_empty() {
        return None;
    }
    let fine = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if key.len() <= MAX_KEY_CHARS && key.chars().all(fine) {
        return Some(Cow::Borrowed(key));
    }
    Some(Cow::Owned(
        key.chars()
            .take(MAX_KEY_CHARS)
            .map(|c| if fine(c) { c } else { '_' })
            .collect(),
    ))
}

fn cut(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(MAX_STRING_CHARS) {
        Some((end, _)) => Cow::Owned(text[..end].to_owned()),
        None => Cow::Borrowed(text),
    }
}

/// Rewrites `span`'s `annotation.<key>` attributes the way the OTLP paths carry annotations: the
/// attribute `<key>`, listed in `aws.xray.annotations`. Values X-Ray cannot index (arrays) and
/// annotations past the 50th stay as they are: metadata.
pub(crate) fn for_otlp(attributes: &mut Vec<KeyValue>) {
    if !attributes
        .iter()
        .any(|kv| kv.key.as_str().starts_with(ANNOTATION_PREFIX))
    {
        return;
    }
    let mut keys: Vec<StringValue> = Vec::new();
    for attribute in attributes.iter_mut() {
        if keys.len() == MAX_ANNOTATIONS {
            break;
        }
        let Some(key) = attribute.key.as_str().strip_prefix(ANNOTATION_PREFIX) else {
            continue;
        };
        let value = match &attribute.value {
            Value::String(text) => Value::from(cut(text.as_str()).into_owned()),
            Value::I64(_) | Value::F64(_) | Value::Bool(_) => attribute.value.clone(),
            _ => continue,
        };
        let Some(key) = valid_key(key).map(Cow::into_owned) else {
            continue;
        };
        if keys.iter().any(|known| known.as_str() == key) {
            continue;
        }
        keys.push(StringValue::from(key.clone()));
        *attribute = KeyValue::new(Key::from(key), value);
    }
    attributes.push(KeyValue::new(
        AWS_XRAY_ANNOTATIONS,
        Value::Array(Array::String(keys)),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::trace::SpanData;

    #[test]
    fn keys_are_made_valid_the_way_x_ray_reads_them() {
        let long = "k".repeat(600);
        let cases = [
            ("order_id", Some("order_id"), "valid as it is"),
            ("ColdStart", Some("ColdStart"), "capitals are letters"),
            ("order id", Some("order_id"), "a space"),
            ("customer.tier", Some("customer_tier"), "a dot"),
            ("préféré", Some("pr_f_r_"), "letters outside ASCII"),
            ("", None, "empty"),
        ];
        for (key, expected, reason) in cases {
            assert_eq!(valid_key(key).as_deref(), expected, "{reason}");
        }
        assert_eq!(
            valid_key(&long).map(|key| key.len()),
            Some(500),
            "cut to 500"
        );
    }

    fn span(attributes: Vec<KeyValue>) -> SpanData {
        crate::test_spans::span(1, attributes)
    }

    fn listed(span: &SpanData) -> Vec<String> {
        match span
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == AWS_XRAY_ANNOTATIONS)
            .map(|kv| &kv.value)
        {
            Some(Value::Array(Array::String(keys))) => {
                keys.iter().map(|key| key.as_str().to_owned()).collect()
            }
            other => panic!("no annotation list: {other:?}"),
        }
    }

    #[test]
    fn annotations_become_listed_attributes_on_the_otlp_paths() {
        let mut data = span(vec![
            KeyValue::new("faas.coldstart", true),
            KeyValue::new("annotation.ColdStart", true),
            KeyValue::new("annotation.customer.tier", "gold"),
            KeyValue::new("annotation.note", "n".repeat(1_200)),
            KeyValue::new(
                "annotation.tags",
                Value::Array(Array::String(vec!["a".into()])),
            ),
        ]);
        for_otlp(&mut data.attributes);
        assert_eq!(listed(&data), ["ColdStart", "customer_tier", "note"]);
        let value = |key: &str| {
            data.attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.clone())
        };
        assert_eq!(value("ColdStart"), Some(Value::Bool(true)));
        assert_eq!(value("customer_tier"), Some(Value::from("gold")));
        assert_eq!(
            value("note").map(|note| note.as_str().chars().count()),
            Some(1_000)
        );
        assert!(
            value("annotation.tags").is_some(),
            "an array is no annotation: it stays, as metadata"
        );
        assert_eq!(value("faas.coldstart"), Some(Value::Bool(true)));
    }

    #[test]
    fn the_fifty_first_annotation_stays_metadata() {
        let mut data = span(
            (0..60)
                .map(|n| KeyValue::new(format!("annotation.k{n}"), n as i64))
                .collect(),
        );
        for_otlp(&mut data.attributes);
        let keys = listed(&data);
        assert_eq!(keys.len(), 50);
        assert_eq!(keys[49], "k49");
        assert!(
            data.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "annotation.k50")
        );
    }

    #[test]
    fn a_span_without_annotations_is_left_alone() {
        let mut data = span(vec![KeyValue::new("faas.coldstart", true)]);
        for_otlp(&mut data.attributes);
        assert_eq!(data.attributes.len(), 1);
    }
}
