//! How tracekit records a failure on a span (invocations, SDK calls, SQS messages, and users' own
//! spans through [`record_error`]), and the `error.type` it gives: a name a reader can group
//! failures by.
//!
//! lambda_runtime names a [`Diagnostic`]'s `error_type` after the Rust type it was made from, so the
//! quick start's own `lambda_runtime::Error` arrives as
//! `&alloc::boxed::Box<dyn core::error::Error + core::marker::Send + core::marker::Sync>` for every
//! failure alike. The semantic conventions ask for a low-cardinality name of the error's type, and
//! `_OTHER` when there is none ([`error.type`](https://opentelemetry.io/docs/specs/semconv/registry/attributes/error/)):
//!
//! - a name the handler chose (its own `From<E> for Diagnostic`) is kept as it is;
//! - a concrete type lambda_runtime named (`&anyhow::Error`) loses its `&`;
//! - a boxed error is looked into: `std::io::Error` and `serde_json::Error` are named as such, any
//!   other by the type or variant name its `Debug` output starts with (`OrderNotFound` for
//!   `OrderNotFound { id: .. }`), which a derived `Debug` always gives;
//! - a string (`"bad order".into()`) has no type to name: `_OTHER`.
//!
//! Only the name is taken from `Debug`, never the fields after it. What reaches Lambda's `/error` is
//! the runtime's own `Diagnostic`, unchanged.

use crate::OpenTelemetrySpanExt;
use lambda_runtime::Diagnostic;
use opentelemetry::{KeyValue, trace::Status};
use std::{any::Any, error::Error as StdError};
use tracing::Span;

/// Attribute and event names of a failure.
/// [Recording errors](https://opentelemetry.io/docs/specs/semconv/general/recording-errors/),
/// [exceptions](https://opentelemetry.io/docs/specs/semconv/exceptions/exceptions-spans/).
mod attr {
    pub(super) use opentelemetry_semantic_conventions::attribute::ERROR_TYPE;
    pub(super) const EXCEPTION_EVENT: &str = "exception";
    pub(super) use opentelemetry_semantic_conventions::attribute::EXCEPTION_MESSAGE;
    pub(super) use opentelemetry_semantic_conventions::attribute::EXCEPTION_TYPE;
}

/// The semantic conventions' `error.type` when the type cannot be told.
pub(crate) const OTHER: &str = "_OTHER";
/// How lambda_runtime's `type_name_of_val` spells a boxed trait object.
const BOXED: &str = "alloc::boxed::Box<dyn ";
/// Type names longer than this are not names a reader groups by.
const MAX_NAME: usize = 128;

/// Records `error` on `span` as tracekit records its own failures: status ERROR with the error's
/// message, `error.type`, and an `exception` event with `exception.type` and `exception.message`.
///
/// The type is named as tracekit names a handler's boxed error: `std::io::Error` and
/// `serde_json::Error` by name, any other error by the type or variant name its `Debug` output
/// starts with (a derived `Debug` starts with it), else `_OTHER`. The message is the error's `Display`, so it must not carry
/// secrets.
///
/// ```
/// # #[derive(Debug, thiserror::Error)] #[error("order {0} not found")] struct OrderNotFound(u32);
/// let span = tracing::info_span!("load order");
/// tracekit::record_error(&span, &OrderNotFound(42)); // error.type = "OrderNotFound"
/// ```
pub fn record_error(span: &Span, error: &(dyn StdError + 'static)) {
    record(span, &boxed_error_type(error), &error.to_string());
}

/// [`record_error`] with the type and message already known.
pub(crate) fn record(span: &Span, error_type: &str, message: &str) {
    span.set_status(Status::error(message.to_owned()));
    span.set_attribute(attr::ERROR_TYPE, error_type.to_owned());
    span.add_event(
        attr::EXCEPTION_EVENT,
        vec![
            KeyValue::new(attr::EXCEPTION_TYPE, error_type.to_owned()),
            KeyValue::new(attr::EXCEPTION_MESSAGE, message.to_owned()),
        ],
    );
}

/// `error` as the [`Diagnostic`] lambda_runtime makes of it, and its `error.type`.
pub(crate) fn diagnose<E: Any + Into<Diagnostic>>(error: E) -> (Diagnostic, String) {
    // Looked into before `into` consumes it; only boxes are, and only on the error path.
    let boxed = boxed_error(&error).map(boxed_error_type);
    let diagnostic: Diagnostic = error.into();
    let error_type = name(&diagnostic, boxed);
    (diagnostic, error_type)
}

/// The error inside `error`, when it is one of the boxes a handler returns.
fn boxed_error<E: Any>(error: &E) -> Option<&(dyn StdError + 'static)> {
    let error = error as &dyn Any;
    if let Some(boxed) = error.downcast_ref::<lambda_runtime::Error>() {
        Some(boxed.as_ref())
    } else if let Some(boxed) = error.downcast_ref::<Box<dyn StdError + Send>>() {
        Some(boxed.as_ref())
    } else if let Some(boxed) = error.downcast_ref::<Box<dyn StdError>>() {
        Some(boxed.as_ref())
    } else {
        None
    }
}

/// The `error.type` for `diagnostic`; `boxed` is the name of the error inside, for a box.
fn name(diagnostic: &Diagnostic, boxed: Option<String>) -> String {
    let Some(named) = diagnostic.error_type.strip_prefix('&') else {
        // Not a `type_name` from lambda_runtime: the handler's own name for it.
        return diagnostic.error_type.clone();
    };
    if named.starts_with(BOXED) {
        return boxed.unwrap_or_else(|| OTHER.to_owned());
    }
    match named {
        "str" | "alloc::string::String" => OTHER.to_owned(),
        named if named.len() > MAX_NAME => OTHER.to_owned(),
        named => named.to_owned(),
    }
}

/// The name of the error inside a box (see the module docs).
fn boxed_error_type(error: &(dyn StdError + 'static)) -> String {
    if error.is::<std::io::Error>() {
        return "std::io::Error".to_owned();
    }
    if error.is::<serde_json::Error>() {
        return "serde_json::Error".to_owned();
    }
    let debug = format!("{error:?}");
    let name_end = debug
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(debug.len());
    let name = &debug[..name_end];
    if name.starts_with(|c: char| c.is_ascii_uppercase()) && name.len() <= MAX_NAME {
        name.to_owned()
    } else {
        OTHER.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::Error as BoxError;

    #[derive(Debug, thiserror::Error)]
    #[error("order {id} not found")]
    struct OrderNotFound {
        id: u32,
    }

    #[derive(Debug, thiserror::Error)]
    enum OrderError {
        #[error("the table is unavailable: {0}")]
        Unavailable(String),
    }

    #[derive(Debug, thiserror::Error)]
    #[error("refused")]
    struct Refused;

    impl From<Refused> for Diagnostic {
        fn from(_: Refused) -> Diagnostic {
            Diagnostic {
                error_type: "OrderRefused".to_owned(),
                error_message: "refused".to_owned(),
            }
        }
    }

    fn io_error() -> std::io::Error {
        std::io::Error::other("disk full")
    }

    fn json_error() -> serde_json::Error {
        serde_json::from_str::<u8>("x").expect_err("not a number")
    }

    #[test]
    fn error_types_are_names_a_reader_can_group_by() {
        // (diagnosed error, error.type, message, reason)
        let cases: Vec<((Diagnostic, String), &str, &str, &str)> = vec![
            (
                diagnose(Box::new(OrderNotFound { id: 42 }) as BoxError),
                "OrderNotFound",
                "order 42 not found",
                "a boxed struct: its name, not its fields",
            ),
            (
                diagnose(Box::new(OrderError::Unavailable("orders".into())) as BoxError),
                "Unavailable",
                "the table is unavailable: orders",
                "a boxed enum: the variant's name",
            ),
            (
                diagnose(BoxError::from("bad order")),
                OTHER,
                "bad order",
                "a boxed string has no type",
            ),
            (
                diagnose(Box::new(io_error()) as BoxError),
                "std::io::Error",
                "disk full",
                "a boxed io::Error",
            ),
            (
                diagnose(Box::new(json_error()) as BoxError),
                "serde_json::Error",
                "expected value at line 1 column 1",
                "a boxed serde_json::Error",
            ),
            (
                diagnose(Box::new(OrderNotFound { id: 7 }) as Box<dyn StdError>),
                "OrderNotFound",
                "order 7 not found",
                "a box without Send + Sync",
            ),
            (
                diagnose(Refused),
                "OrderRefused",
                "refused",
                "the handler's own name wins",
            ),
            (
                diagnose(io_error()),
                "std::io::error::Error",
                "disk full",
                "a concrete type: its path, without the reference",
            ),
            (
                diagnose("bad order".to_owned()),
                OTHER,
                "bad order",
                "a String has no type",
            ),
        ];
        for ((diagnostic, error_type), expected, message, reason) in cases {
            assert_eq!(error_type, expected, "{reason}");
            assert_eq!(
                diagnostic.error_message, message,
                "{reason}: the message is kept"
            );
        }
    }

    #[test]
    fn the_diagnostic_is_lambda_runtimes_own() {
        let (diagnostic, _) = diagnose(Box::new(OrderNotFound { id: 42 }) as BoxError);
        assert_eq!(
            diagnostic,
            Diagnostic::from(Box::new(OrderNotFound { id: 42 }) as BoxError)
        );
    }
}
