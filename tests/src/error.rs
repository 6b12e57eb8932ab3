//! The harness's error type. Messages are written for the person reading a failed test.

/// What went wrong while driving a function or a stand-in server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Something did not happen in time; the message says what was awaited and what was seen.
    #[error("{0}")]
    Timeout(String),
    /// The function broke the Runtime API contract: it exited, reported an init error, or its answer was
    /// not what the caller asked for.
    #[error("{0}")]
    Function(String),
    /// The caller asked for something the harness cannot do (a header value HTTP cannot carry, ...).
    #[error("{0}")]
    Invalid(String),
    /// The trace page did not render in the browser as it should; the message lists every problem.
    #[error("{0}")]
    Browser(String),
    /// Generating a certificate or a TLS configuration failed.
    #[error("{0}")]
    Tls(String),
    /// A socket, pipe or child-process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What the harness was doing.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A call to an AWS API failed.
    #[error("{what}: {message}")]
    Aws {
        /// The call, e.g. `BatchGetTraces`.
        what: String,
        /// The SDK error with its full context.
        message: String,
    },
    /// Data that should have been JSON was not.
    #[error("{what}: {source}")]
    Json {
        /// What was being parsed.
        what: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

/// `Result` with the harness's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }

    pub(crate) fn json(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> Error {
        let what = what.into();
        move |source| Error::Json { what, source }
    }
}
