//! Kinesis and DynamoDB Streams records as Lambda delivers them: the input is one record or a whole
//! event (`Records`), run through both `tracekit::streams` processors (a record of the other stream
//! is that processor's malformed record). Records are processed in order and the first failure, a
//! handler's or a malformed record's, stops the batch: the response names exactly that record's
//! sequence number, and no record after it reaches the handler.
#![no_main]

#[path = "common.rs"]
mod common;

use common::runtime;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::cell::RefCell;
use tracekit::streams::{DynamoDbEventRecord, KinesisEventRecord, StreamBatch, StreamProcessor};
use tracekit::testing::TestTelemetry;

/// The handler fails the records whose sequence number's length is a multiple of three, so that
/// failures and successes both run.
fn fails(sequence: &str) -> bool {
    sequence.len() % 3 == 0
}

/// What the handler saw: each record's sequence number and whether it failed it, in order.
type Calls = RefCell<Vec<(String, bool)>>;

/// The handler: notes the record and fails it when [`fails`] says so.
fn handle(calls: &Calls, sequence: String) -> impl Future<Output = Result<(), &'static str>> {
    let failed = fails(&sequence);
    calls.borrow_mut().push((sequence, failed));
    async move { if failed { Err("handler failed") } else { Ok(()) } }
}

/// [`check`] of one processor's response: a stream retries from one record, so it names one at most.
fn checked(records: &[Value], calls: &Calls, failures: Vec<Option<String>>, sequence: &str) {
    assert!(failures.len() <= 1, "a stream retries from one record");
    let failure = failures.into_iter().next().map(Option::unwrap_or_default);
    check(records, &calls.borrow(), failure.as_deref(), sequence);
}

/// The policy, for one processor: `failure` is the response's one item identifier, if any, and
/// `sequence` where that stream's records keep their sequence number.
fn check(records: &[Value], calls: &[(String, bool)], failure: Option<&str>, sequence: &str) {
    let sequence_of = |record: &Value| {
        record
            .pointer(sequence)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        calls.len() <= records.len(),
        "the handler ran more often than there are records"
    );
    for (record, (seen, _)) in records.iter().zip(calls) {
        assert_eq!(
            *seen,
            sequence_of(record),
            "the handler saw the records out of order"
        );
    }
    let Some(failure) = failure else {
        assert_eq!(
            calls.len(),
            records.len(),
            "no failure reported, yet a record never reached the handler"
        );
        assert!(
            calls.iter().all(|(_, failed)| !failed),
            "a failed record was not reported"
        );
        return;
    };
    // Either the last record the handler saw failed, or the record after it was malformed.
    let expected = match calls.last() {
        Some((seen, true)) => seen.clone(),
        _ => sequence_of(&records[calls.len()]),
    };
    assert!(
        calls.iter().rev().skip(1).all(|(_, failed)| !failed),
        "the batch went on after a failure"
    );
    assert_eq!(
        failure, expected,
        "the response does not name the first failure"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let records = match value.get("Records").and_then(Value::as_array) {
        Some(records) => records.clone(),
        None => vec![value],
    };
    let _test = TestTelemetry::new();

    let calls = Calls::default();
    let response = runtime().block_on(StreamProcessor.kinesis(
        StreamBatch {
            records: records.clone(),
        },
        |record: KinesisEventRecord| handle(&calls, record.kinesis.sequence_number),
    ));
    let failures = response.batch_item_failures.iter();
    let failures: Vec<_> = failures.map(|f| f.item_identifier.clone()).collect();
    checked(&records, &calls, failures, "/kinesis/sequenceNumber");

    let calls = Calls::default();
    let response = runtime().block_on(StreamProcessor.dynamodb(
        StreamBatch {
            records: records.clone(),
        },
        |record: DynamoDbEventRecord| {
            handle(&calls, record.change.sequence_number.unwrap_or_default())
        },
    ));
    let failures = response.batch_item_failures.iter();
    let failures: Vec<_> = failures.map(|f| f.item_identifier.clone()).collect();
    checked(&records, &calls, failures, "/dynamodb/SequenceNumber");
});
