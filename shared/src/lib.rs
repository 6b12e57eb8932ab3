//! # tracekit
//!
//! AWS-native tracing for Rust Lambda functions. One call wraps a handler; every invocation becomes
//! an X-Ray-compatible SERVER span whose parent is the invocation's `Lambda-Runtime-Trace-Id`, with the
//! `faas.*` and `cloud.*` attributes, handler errors recorded, and spans exported after the response
//! has been posted. In Lambda they go, by default, as OTLP over UDP to the X-Ray agent Lambda runs (as
//! AWS's own distributions send them: no layer, no collector); an OTLP endpoint sends them to a
//! collector over HTTP instead, and `OTEL_TRACES_EXPORTER=xray` sends X-Ray segment documents.
//!
//! ```no_run
//! use lambda_runtime::{Error, LambdaEvent, service_fn};
//! use serde_json::Value;
//!
//! async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
//!     tracing::info!("handling");
//!     Ok(event.payload)
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     let telemetry = tracekit::init()?; // reads OTEL_* and TRACEKIT_* once; no network I/O
//!     tracekit::run(&telemetry, service_fn(handler)).await
//! }
//! ```
//!
//! `lambda_http` handlers use [`run_http`]. On Lambda Managed Instances, where one environment serves
//! several invocations at once, [`run_concurrent`] and [`run_http_concurrent`] keep all of it; with
//! `AWS_LAMBDA_MAX_CONCURRENCY` unset or 1 they run one invocation at a time, so one binary serves
//! both kinds of function. To compose your own [`lambda_runtime::Runtime`], add
//! [`Telemetry::layer`] with `Runtime::layer` and wrap the handler in [`traced`] so its errors
//! reach the invocation span:
//!
//! ```no_run
//! # use lambda_runtime::{Error, LambdaEvent, Runtime, service_fn};
//! # async fn handler(event: LambdaEvent<serde_json::Value>) -> Result<serde_json::Value, Error> { Ok(event.payload) }
//! # #[tokio::main] async fn main() -> Result<(), Error> {
//! let telemetry = tracekit::init()?;
//! Runtime::new(tracekit::traced(service_fn(handler)))
//!     .layer(telemetry.layer())
//!     .run_concurrent() // Lambda Managed Instances: the parent still comes from each invocation
//!     .await
//! # }
//! ```
//!
//! Configuration is read from the environment: see [`config`] for every variable.
//!
//! ## Features
//! - `http` (default): [`run_http`] for `lambda_http` handlers.
//! - `xray` (default): `OTEL_TRACES_EXPORTER=xray`, segment documents to Lambda's X-Ray daemon address
//!   (the compatibility path: segments carry no span links). The agent path needs no feature.
//! - `console` (default): `OTEL_TRACES_EXPORTER=console`, spans printed to stdout.
//! - `dynamodb`, `s3`, `sqs` (default): service attributes on [`aws`] client spans; `sqs` also brings
//!   send-side propagation and the consumer side, [`sqs`].
//! - `testing`: [`testing::TestTelemetry`] (in-memory exporter) and [`testing::FakeInvocation`] to test
//!   your handlers the way tracekit tests its own.
//!
//! ## What tracekit records
//! Span names, kinds, timings, the invocation's ids and ARN, the trigger, and error types and
//! messages. It never records event payloads or response bodies. With
//! `OTEL_AWS_APPLICATION_SIGNALS_ENABLED=true` spans also carry the `aws.local.*` and `aws.remote.*`
//! attributes CloudWatch Application Signals reads, and on the agent path unsampled invocations are
//! recorded and sent too (`T1U`), so Application Signals counts every invocation.

mod app_signals;
pub mod aws;
pub mod config;
mod error;
mod flush;
mod invocation;
mod lambda;
mod log_format;
pub mod propagation;
#[cfg(feature = "sqs")]
pub mod sqs;
mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use config::{Config, ConfigError, FlushStrategy, SqsParentPolicy};
pub use error::record_error;
pub use flush::{ExporterError, FlushReport, LambdaSpanProcessor};
pub use lambda::{
    InvocationFuture, InvocationLayer, InvocationService, TracedHandler, TracedHandlerFuture,
    Trigger, TriggerKind, run, run_concurrent, traced,
};
#[cfg(feature = "http")]
pub use lambda::{
    run_http, run_http_concurrent, run_http_streaming, run_http_streaming_concurrent,
};
pub use telemetry::{Builder, InitError, Telemetry, builder, init, init_with};

// The crates a function shares types with tracekit through, at the versions tracekit is built with:
// a function uses these and never version-matches them by hand.
#[cfg(feature = "http")]
pub use lambda_http;
pub use lambda_runtime;
pub use opentelemetry;
pub use opentelemetry_sdk;
pub use tracing;
pub use tracing_opentelemetry::OpenTelemetrySpanExt;
