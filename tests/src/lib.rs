//! Test harness for tracekit: everything an end-to-end test needs to run a real Lambda function binary
//! on this machine and see what it exported.
//!
//! - [`runtime_api`]: a Lambda Runtime API server that spawns a function binary as a child process and
//!   drives it the way Lambda does, with the trace header, deadline and ARN a test chooses; timing marks
//!   are taken where the server sees the requests, so benchmarks can use them too.
//! - [`flow`]: the orders flow end to end: the `api` and `worker` binaries, and the SQS event source
//!   mapping's part played by the harness.
//! - [`otlp`]: an OTLP/HTTP receiver standing in for the ADOT collector layer, or, over HTTPS with
//!   SigV4 and gzip, for X-Ray's OTLP endpoint.
//! - [`sigv4`]: the receiver's authentication (a SigV4 verifier built on `aws-sigv4`, bearer keys),
//!   the credentials a test issues and revokes, and a container-credentials server that hands them
//!   to the AWS SDK.
//! - [`tls`]: a CA generated at test time and the certificates and client configurations it makes.
//! - [`page`]: the trace page (waterfall and service map in one HTML file) and its check in headless
//!   Chromium; [`page::PageServer`] serves it live as spans arrive (`tracekit-view`).
//! - [`program`]: a program that is not a function (`tracekit-view`), its output read line by line.
//! - [`xray`]: an X-Ray agent stand-in (UDP) that decodes OTLP `T1S`/`T1U` datagrams into the same
//!   span store the OTLP receiver fills, forwards segment documents to the X-Ray API (moto), and
//!   [`xray::batch_get_traces`] to read them back.
//! - [`scripted`]: an AWS endpoint answering from a script (500, 429, modeled errors) that records
//!   the headers the SDK sent.
//! - [`stack`]: endpoints of the local AWS stack (`scripts/devstack`), health checks that fail loudly,
//!   SDK clients, unique names, polling, and where the function binaries are.
//!
//! ```no_run
//! use integration_tests::{FunctionProcess, Invocation, InvocationOutcome, OtlpReceiver};
//! use serde_json::json;
//!
//! # async fn example() -> integration_tests::Result<()> {
//! let otlp = OtlpReceiver::start()?;
//! let function = FunctionProcess::spawn(
//!     &integration_tests::stack::function_binary("api"),
//!     &[("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint())],
//! )?;
//! let outcome = function
//!     .invoke(Invocation::json(json!({"hello": "world"})).trace_header(
//!         "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
//!     ))
//!     .await?;
//! assert!(matches!(outcome, InvocationOutcome::Response(_)));
//! let spans = otlp.wait_for_spans(1, std::time::Duration::from_secs(5)).await?;
//! assert_eq!(spans[0].trace_id, "5759e988bd862e3fe1be46a994272793");
//! # Ok(())
//! # }
//! ```
//!
//! Servers bind 127.0.0.1 on a free port (the `_at`/`listen` constructors, an address a tool is given)
//! and stop when their value is dropped; function processes are
//! killed on drop. Everything here must be used inside a Tokio runtime.

pub mod emf;
mod error;
pub mod flow;
mod http;
pub mod otlp;
pub mod page;
pub mod program;
pub mod runtime_api;
pub mod scripted;
pub mod sigv4;
pub mod stack;
pub mod tls;
mod util;
pub mod xray;

pub use error::{Error, Result};
pub use otlp::{OtlpReceiver, ReceivedRequest, ReceivedSpan, TlsOptions};
pub use program::Program;
pub use runtime_api::{FunctionProcess, Invocation, InvocationOutcome, TimedOutcome};
pub use scripted::{Scripted, ScriptedEndpoint};
pub use sigv4::{Auth, CredentialStore, CredentialsServer, TestCredentials};
pub use tls::TestCa;
pub use xray::XrayDaemon;
