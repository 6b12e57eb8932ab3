//! A span's annotations and metadata as the agent and OTLP paths export them (through tracekit's
//! hidden `__fuzz` entry point: the public path is an exporter's network I/O). The input is the
//! span's attributes, one `key=value` a line (a value that reads as an integer, a float or a
//! boolean is one). What a user wrote as metadata — `metadata.<namespace>.<key>`, or
//! `metadata_json.<namespace>.<key>` holding JSON text, kept as text when it is not JSON — is
//! re-read at export into one `aws.xray.metadata.<namespace>` JSON object per namespace: every
//! value ends up there, the last one of a key winning, and no metadata attribute is left behind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value as Json};
use std::time::SystemTime;
use tracekit::opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use tracekit::opentelemetry::{InstrumentationScope, KeyValue, Value};
use tracekit::opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

const METADATA: &str = "metadata.";
const METADATA_JSON: &str = "metadata_json.";
const OTLP_METADATA: &str = "aws.xray.metadata.";

fn span(attributes: Vec<KeyValue>) -> SpanData {
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(0x6900_0000_1234_5678_9abc_def0_1234_5678u128),
            SpanId::from(7),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: "fuzz".into(),
        start_time: SystemTime::UNIX_EPOCH,
        end_time: SystemTime::UNIX_EPOCH,
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::builder("fuzz").build(),
    }
}

fn value(text: &str) -> Value {
    if let Ok(number) = text.parse::<i64>() {
        Value::I64(number)
    } else if let Ok(flag) = text.parse::<bool>() {
        Value::Bool(flag)
    } else if let Ok(number) = text.parse::<f64>() {
        Value::F64(number)
    } else {
        Value::from(text.to_owned())
    }
}

/// The namespace and key of a metadata attribute, and whether it holds JSON text.
fn metadata_key(name: &str) -> Option<(&str, &str, bool)> {
    let (rest, json) = match name.strip_prefix(METADATA_JSON) {
        Some(rest) => (rest, true),
        None => (name.strip_prefix(METADATA)?, false),
    };
    rest.split_once('.')
        .filter(|(namespace, key)| !namespace.is_empty() && !key.is_empty())
        .map(|(namespace, key)| (namespace, key, json))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let attributes: Vec<KeyValue> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, text)| KeyValue::new(key.to_owned(), value(text)))
        .collect();
    // What the namespaces must hold, in order of first appearance.
    let mut expected: Vec<(String, Map<String, Json>)> = Vec::new();
    for attribute in &attributes {
        let Some((namespace, key, json)) = metadata_key(attribute.key.as_str()) else {
            continue;
        };
        let value = match &attribute.value {
            Value::String(text) if json => serde_json::from_str(text.as_str())
                .unwrap_or_else(|_| Json::String(text.as_str().to_owned())),
            Value::String(text) => Json::String(text.as_str().to_owned()),
            Value::I64(number) => Json::from(*number),
            Value::Bool(flag) => Json::Bool(*flag),
            Value::F64(number) => {
                serde_json::Number::from_f64(*number).map_or(Json::Null, Json::Number)
            }
            other => unreachable!("the input makes no {other:?}"),
        };
        // X-Ray reserves nothing of a namespace but the record separator tracekit marks with.
        let namespace = namespace.replace('\u{1e}', "_");
        match expected.iter_mut().find(|(known, _)| *known == namespace) {
            Some((_, object)) => {
                object.insert(key.to_owned(), value);
            }
            None => expected.push((namespace, Map::from_iter([(key.to_owned(), value)]))),
        }
    }

    let mut exported = span(attributes);
    tracekit::__fuzz::for_otlp(&mut exported);

    for attribute in &exported.attributes {
        assert!(
            metadata_key(attribute.key.as_str()).is_none(),
            "metadata attribute {} left on the span",
            attribute.key
        );
    }
    let namespaces = &exported.attributes[exported.attributes.len() - expected.len()..];
    for ((namespace, object), attribute) in expected.iter().zip(namespaces) {
        assert_eq!(
            attribute.key.as_str(),
            format!("{OTLP_METADATA}{namespace}")
        );
        let Value::String(text) = &attribute.value else {
            panic!("{} is not JSON text", attribute.key);
        };
        let read: Json = serde_json::from_str(text.as_str()).expect("a namespace's JSON parses");
        assert!(
            read.is_object(),
            "namespace {namespace} is not a JSON object"
        );
        // As text: serde_json reads floats back to the nearest, not always the same, value.
        assert_eq!(
            text.as_str(),
            Json::Object(object.clone()).to_string(),
            "namespace {namespace}"
        );
    }
});
