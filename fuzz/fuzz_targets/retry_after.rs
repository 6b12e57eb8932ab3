//! An OTLP endpoint's `Retry-After`, as the OTLP exporter reads it before retrying a 429, 502, 503
//! or 504 (through tracekit's hidden `__fuzz` entry point: the public path is a real endpoint). The
//! input is the header's value. A delay is never longer than a minute, whole seconds are read as
//! they are written, and anything else tracekit reads is an HTTP date.
#![no_main]

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use tracekit::__fuzz::retry_after;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::RETRY_AFTER, value);
    let delay = retry_after(&headers);
    let Some(delay) = delay else {
        return;
    };
    assert!(
        delay <= Duration::from_secs(60),
        "{delay:?}: longer than a minute"
    );
    let text = std::str::from_utf8(data)
        .expect("a value tracekit read is text")
        .trim();
    match text.parse::<u64>() {
        Ok(seconds) => assert_eq!(
            delay,
            Duration::from_secs(seconds.min(60)),
            "{text:?} seconds"
        ),
        Err(_) => assert!(
            httpdate::parse_http_date(text).is_ok(),
            "{text:?} is neither seconds nor an HTTP date"
        ),
    }
});
