//! What tracekit writes in place of a value it must not record: each query value of an outbound
//! request's `url.full` (`http_client`), and the credential headers of a captured response
//! (`metadata`). One module both import, so neither imports the other.

/// The text that stands for a value tracekit does not record, as the HTTP conventions suggest for
/// values that may be secrets.
pub const REDACTED: &str = "REDACTED";
