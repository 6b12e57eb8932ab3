//! SNS event records as Lambda delivers them to an SNS-triggered function: the input is one record
//! or a whole event (`Records`), run through `tracekit::sns::SnsProcessor`. Every record is either
//! handed to the handler or named as failed, never both and never neither. A malformed carrier
//! loses only the context: a record that is an SNS message apart from its `MessageAttributes` is
//! processed whatever they hold, and no attribute value is copied into a log line or a span.
#![no_main]

#[path = "common.rs"]
mod common;

use common::runtime;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::cell::RefCell;
use std::time::Duration;
use tracekit::opentelemetry::trace::{Event, Link, Status};
use tracekit::sns::{SnsBatch, SnsFailure, SnsMessage, SnsProcessor};
use tracekit::testing::TestTelemetry;

/// Whether `record` is an SNS message once its attributes are set aside: then its attributes
/// alone must not fail it.
fn message_but_for_attributes(record: &Value) -> Option<String> {
    let source = record
        .get("EventSource")
        .or_else(|| record.get("eventSource"));
    if source.is_some_and(|source| source.as_str() != Some("aws:sns")) {
        return None;
    }
    let mut sns = record.get("Sns")?.clone();
    sns.as_object_mut()?.remove("MessageAttributes");
    serde_json::from_value::<SnsMessage>(sns)
        .ok()
        .map(|message| message.message_id)
}

/// The string values inside `value` (not its keys), at any depth.
fn strings<'a>(value: &'a Value, into: &mut Vec<&'a str>) {
    match value {
        Value::String(text) => into.push(text),
        Value::Array(items) => items.iter().for_each(|item| strings(item, into)),
        Value::Object(map) => map.values().for_each(|item| strings(item, into)),
        _ => {}
    }
}

/// A record without its attributes, as text.
fn without_attributes(record: &Value) -> String {
    let mut rest = record.clone();
    if let Some(sns) = rest.get_mut("Sns").and_then(Value::as_object_mut) {
        sns.remove("MessageAttributes");
    }
    rest.to_string()
}

/// The attribute values that only a copy of the attributes could have put in a log line or a span:
/// long enough to be unmistakable, found nowhere else in the batch (`rest`: the records without
/// their attributes), and not hex (a trace id read from a `traceparent` is rightly in the log
/// lines, and so is any run of its digits).
fn secret_values(record: &Value, rest: &str) -> Vec<String> {
    let Some(attributes) = record.pointer("/Sns/MessageAttributes") else {
        return Vec::new();
    };
    let mut values = Vec::new();
    strings(attributes, &mut values);
    values
        .into_iter()
        .filter(|value| {
            value.len() >= 16
                && value.chars().all(|c| c.is_ascii_alphanumeric())
                && value.chars().any(|c| !c.is_ascii_hexdigit())
        })
        .filter(|value| !rest.contains(value))
        .map(str::to_owned)
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let records = match value.get("Records").and_then(Value::as_array) {
        Some(records) => records.clone(),
        None => vec![value],
    };
    let test = TestTelemetry::new();
    // Each record's message id as the handler saw it, and whether it failed it (every third).
    let calls = RefCell::new(Vec::<(String, bool)>::new());
    let outcome = runtime().block_on(SnsProcessor::default().process(
        SnsBatch {
            records: records.clone(),
        },
        |message: SnsMessage| {
            let failed = message.message_id.len() % 3 == 0;
            calls.borrow_mut().push((message.message_id, failed));
            async move {
                if failed {
                    Err("handler failed")
                } else {
                    Ok(())
                }
            }
        },
    ));
    let calls = calls.into_inner();
    let succeeded = calls.iter().filter(|(_, failed)| !failed).count();
    match outcome {
        Ok(()) => assert_eq!(
            succeeded,
            records.len(),
            "a record neither succeeded nor was named as failed"
        ),
        Err(SnsFailure::Failed { failed, total, .. }) => {
            assert_eq!(total, records.len());
            assert_eq!(
                failed.len(),
                records.len() - succeeded,
                "every record not processed is named, once"
            );
        }
        Err(other) => panic!("an unknown failure: {other:?}"),
    }
    for id in records.iter().filter_map(message_but_for_attributes) {
        assert!(
            calls.iter().any(|(seen, _)| *seen == id),
            "message {id:?} was not processed: its attributes alone failed it"
        );
    }

    let rest: String = records.iter().map(without_attributes).collect();
    let secrets: Vec<String> = records
        .iter()
        .flat_map(|record| secret_values(record, &rest))
        .collect();
    if secrets.is_empty() {
        return;
    }
    runtime().block_on(test.telemetry().force_flush(Duration::from_secs(1)));
    let logs = test.log_lines().join("\n");
    let mut recorded = String::new();
    for span in test.spans() {
        for attribute in &span.attributes {
            recorded.push_str(&attribute.value.to_string());
        }
        for Event {
            name, attributes, ..
        } in span.events.iter()
        {
            recorded.push_str(name);
            attributes
                .iter()
                .for_each(|kv| recorded.push_str(&kv.value.to_string()));
        }
        for Link { attributes, .. } in span.links.iter() {
            attributes
                .iter()
                .for_each(|kv| recorded.push_str(&kv.value.to_string()));
        }
        if let Status::Error { description } = &span.status {
            recorded.push_str(description);
        }
    }
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "an attribute's value is in the log lines: {logs}"
        );
        assert!(
            !recorded.contains(secret.as_str()),
            "an attribute's value is recorded on a span"
        );
    }
});
