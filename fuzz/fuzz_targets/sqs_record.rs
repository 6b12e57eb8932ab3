//! SQS event records as Lambda delivers them: the input is one record or a whole event (`Records`).
//! Every record is read on its own (message attributes, `AWSTraceHeader`, an SNS envelope in the
//! body), and the batch response names only records of the batch, each at most once.
#![no_main]

#[path = "common.rs"]
mod common;

use common::runtime;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::collections::HashSet;
use tracekit::sqs::{self, BatchProcessor, SqsBatch, SqsMessage};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let records = match value.get("Records").and_then(Value::as_array) {
        Some(records) => records.clone(),
        None => vec![value],
    };
    for record in &records {
        if let Ok(message) = serde_json::from_value::<SqsMessage>(record.clone()) {
            let _ = sqs::producer_context_with_carrier(&message);
        }
    }
    let ids: HashSet<String> = records
        .iter()
        .map(|r| r.get("messageId").and_then(Value::as_str).unwrap_or_default().to_owned())
        .collect();
    let count = records.len();
    let response = runtime().block_on(BatchProcessor::default().process(
        SqsBatch { records },
        // Every third message fails, so failures and successes both run.
        |message: SqsMessage| async move {
            let fails = message.message_id.as_deref().is_some_and(|id| id.len() % 3 == 0);
            if fails { Err("handler failed") } else { Ok(()) }
        },
    ));
    assert!(response.batch_item_failures.len() <= count);
    for failure in &response.batch_item_failures {
        assert!(ids.contains(&failure.item_identifier), "{} is not in the batch", failure.item_identifier);
    }
});
