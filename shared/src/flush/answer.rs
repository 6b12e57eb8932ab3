//! What the OTLP transports share about an answer: reading its body within a bound, and saying
//! what went wrong in one line. A leaf: the plain-HTTP, TLS and SigV4 modules and the exporter
//! above them all use it.

use bytes::Bytes;
use http::Response;
use http_body_util::{BodyExt, Limited};

/// A collector's answer is a small status message; anything larger is not read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Reads an answer's body, at most [`MAX_RESPONSE_BYTES`] of it: the connection can only be reused
/// once the body is read. The body itself is never reported.
pub(super) async fn read_response<B>(response: Response<B>) -> Result<Response<Bytes>, String>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        // A body too large or cut short does not change what the status said.
        .unwrap_or_default();
    Ok(Response::from_parts(parts, body))
}

/// An error and its causes, one line: hyper's "client error (Connect)" alone does not say that a
/// certificate was refused.
pub(super) fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
