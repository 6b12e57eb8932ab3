//! The invocation event, as any trigger (or a user) may send it: trigger detection reads only the
//! fields that tell the source apart, and anything unreadable is `other`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracekit::{Trigger, TriggerKind};

fuzz_target!(|data: &[u8]| {
    let trigger = Trigger::detect(data);
    let name = trigger.span_name();
    if trigger.kind != TriggerKind::Http {
        assert!(name.is_none(), "only HTTP events name the span");
    }
});
