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
//! use tracekit::lambda_runtime::{Error, LambdaEvent, service_fn};
//! use serde_json::Value;
//!
//! async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
//!     tracekit::tracing::info!("handling");
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
//! ## Entry points
//! One call per runtime mode. Each keeps everything: the invocation span (parent from the
//! invocation's own trace header, cold start once per process), the handler's errors and panics on
//! it, the flush policy with tracekit's extension, and the last flush however the process ends
//! (SIGTERM, SIGINT, the runtime's error or panic), with the invocations in flight cut short first
//! so that none is lost headless.
//!
//! | handler | one at a time | Lambda Managed Instances (`AWS_LAMBDA_MAX_CONCURRENCY` > 1) |
//! |---|---|---|
//! | `lambda_runtime` | [`run`] | [`run_concurrent`] |
//! | `lambda_http` (API Gateway REST and HTTP APIs, ALB, function URLs) | [`run_http`] | [`run_http_concurrent`] |
//! | `lambda_http`, response streaming | [`run_http_streaming`] | [`run_http_streaming_concurrent`] |
//! | a `Runtime` `main` composes with its own tower layers | [`runtime`] | [`runtime_concurrent`] |
//!
//! The HTTP entry points also record the response's status (`http.response.status_code`; a 5xx is
//! an error), the method, the route and the path. The concurrent ones run one invocation at a time
//! when `AWS_LAMBDA_MAX_CONCURRENCY` is unset or 1, so one binary serves both kinds of function;
//! under managed concurrency the flush is `amortized` by default (the environment never freezes),
//! with a background flush for a quiet environment. A sequential entry point in an environment
//! that asks for more says so at start.
//!
//! ```no_run
//! use tracekit::lambda_http::{Body, Error, Request, Response, service_fn};
//!
//! async fn handler(_: Request) -> Result<Response<Body>, Error> {
//!     Ok(Response::new(Body::from("ok")))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     let telemetry = tracekit::init()?;
//!     tracekit::run_http_concurrent(&telemetry, service_fn(handler)).await
//! }
//! ```
//!
//! ## Your own spans
//! tracekit re-exports what a function shares types with it, at the versions it is built with:
//! [`lambda_runtime`], [`lambda_http`], [`opentelemetry`], [`opentelemetry_sdk`], [`tracing`] and
//! [`OpenTelemetrySpanExt`]. A span of your own is a `tracing` span; [`record_error`] records a
//! failure on it as tracekit records its own.
//!
//! ```
//! use tracekit::OpenTelemetrySpanExt;
//!
//! let span = tracekit::tracing::info_span!("price order");
//! span.set_attribute("order.items", 3);
//! ```
//!
//! A handler's error reaches the invocation span as `error.type`: the name its own
//! `From<E> for Diagnostic` gives, or, for a boxed error such as `lambda_runtime::Error`, the name
//! of the type inside the box (a derived `Debug` starts with it); a string error is `_OTHER`. To
//! name your errors, return your own error type and implement
//! `From<YourError> for lambda_runtime::Diagnostic`.
//!
//! [`builder`] is [`init`] with parts chosen in code: the exporter, the sampler, resource
//! attributes, the ID generator, more `tracing_subscriber` layers, and where log lines go.
//!
//! Configuration is read from the environment: see [`config`] for every variable.
//!
//! ## Features
//! The default is what most functions need and builds fast: the agent path and OTLP/HTTP (no
//! feature), [`run_http`] for `lambda_http` (`http`), and the SDK interceptor for any client
//! ([`aws::TracingInterceptor`], no feature). Everything that brings a large dependency is named:
//! - `http` (default): [`run_http`] for `lambda_http` handlers.
//! - `xray`: `OTEL_TRACES_EXPORTER=xray`, segment documents to Lambda's X-Ray daemon address
//!   (the compatibility path: segments carry no span links).
//! - `console`: `OTEL_TRACES_EXPORTER=console`, spans printed to stdout.
//! - `https`: `https://` OTLP endpoints, over rustls (the AWS SDK's TLS stack, aws-lc-rs) with the
//!   platform's roots or `OTEL_EXPORTER_OTLP_CERTIFICATE`.
//! - `sigv4` (with `https`): SigV4 for X-Ray's OTLP endpoint
//!   (`https://xray.<region>.amazonaws.com/v1/traces`), with Lambda's own credentials
//!   (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
//! - `sigv4-chain` (with `sigv4`): where the environment holds no credentials, the rest of the AWS
//!   SDK's default chain (`aws-config`: profiles, web identity, container and instance
//!   credentials). Lambda never needs it; it adds the SDK's STS, SSO and IMDS clients.
//! - `dynamodb`, `s3`, `sqs`: service attributes on [`aws`] client spans and
//!   `tracekit::aws::dynamodb_client` and kin; `sqs` also brings send-side propagation and the
//!   consumer side, `tracekit::sqs`.
//!
//! A setting that needs a feature the build leaves out fails the init with the `Cargo.toml` line
//! to add.
//! - `sns`, `eventbridge`, `sfn`, `lambda-invoke` (off by default: each brings its SDK crate):
//!   propagation through SNS message attributes, EventBridge's `TraceHeader`, Step Functions'
//!   `traceHeader` and `Invoke`'s `ClientContext.custom`, and `tracekit::aws::sns_client` and kin;
//!   `sns` also brings the SNS consumer, `tracekit::sns`.
//! - `streams` (off by default): Kinesis and DynamoDB Streams batches, `tracekit::streams`.
//! - `axum` (off by default, with `http`): `tracekit::axum::route_layer`, the route an axum router
//!   matched names the invocation span.
//! - `reqwest` (off by default): `tracekit::http_client::reqwest_client` and `TraceMiddleware`, a
//!   reqwest client's every request a CLIENT span ([`http_client::layer`] is the same for any tower
//!   client of `http::Request`s, with no feature).
//! - `testing`: [`testing::TestTelemetry`] (in-memory exporter) and [`testing::FakeInvocation`] to test
//!   your handlers the way tracekit tests its own.
//!
//! ## X-Ray annotations and metadata
//! [`annotate`] sets an annotation (indexed: X-Ray searches by them) and [`metadata`] keeps any
//! serializable value under a namespace; `tracing` fields named `annotation.<key>` and
//! `metadata.<namespace>.<key>` do the same. Both mean the same on every export path.
//!
//! ```no_run
//! tracekit::annotate("customer_tier", "gold");
//! tracekit::metadata("orders", "items", &vec!["sku-1", "sku-2"]);
//! ```
//!
//! ## What tracekit records
//! Span names, kinds, timings, the invocation's ids and ARN, the trigger, and error types and
//! messages. It never records event payloads or response bodies, unless `TRACEKIT_CAPTURE_RESPONSE`
//! or `TRACEKIT_CAPTURE_ERROR` asks for them ([`config::Capture`]). With
//! `OTEL_AWS_APPLICATION_SIGNALS_ENABLED=true` spans also carry the `aws.local.*` and `aws.remote.*`
//! attributes CloudWatch Application Signals reads, and on the agent path unsampled invocations are
//! recorded and sent too (`T1U`), so Application Signals counts every invocation.

/// Entry points for tracekit's own fuzz targets (feature `fuzzing`): not part of the API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz;
mod annotations;
mod app_signals;
pub mod aws;
#[cfg(feature = "axum")]
pub mod axum;
pub mod config;
#[cfg(any(feature = "sqs", feature = "sns", feature = "streams"))]
mod consumer;
mod entered;
mod error;
mod flush;
pub mod http_client;
mod init_span;
mod invocation;
mod lambda;
mod log_buffer;
mod log_format;
mod log_record;
mod metadata;
pub mod metrics;
pub mod propagation;
mod quiet;
mod recorder;
mod redaction;
#[cfg(feature = "sns")]
pub mod sns;
mod span_ext;
#[cfg(feature = "sqs")]
pub mod sqs;
#[cfg(feature = "streams")]
pub mod streams;
mod telemetry;
#[cfg(test)]
mod test_spans;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

/// The services and futures tracekit's layer and handler wrapper are made of: plumbing, named here
/// so that a type signature can spell them, as tower and axum keep theirs.
pub mod future {
    pub use crate::lambda::{
        InvocationFuture, InvocationService, TracedHandler, TracedHandlerFuture,
    };
}

pub use annotations::{ANNOTATION_PREFIX, AnnotationValue, annotate};
pub use config::{Config, ConfigError, FlushStrategy, SqsParentPolicy, SqsSpans};
pub use error::record_error;
pub use flush::{ExporterError, FlushReport};
pub use lambda::{
    InvocationLayer, Trigger, TriggerKind, run, run_concurrent, runtime, runtime_concurrent,
};
#[cfg(feature = "http")]
pub use lambda::{
    run_http, run_http_concurrent, run_http_streaming, run_http_streaming_concurrent,
};
pub use metadata::{METADATA_PREFIX, metadata};
pub use telemetry::{Builder, InitError, Telemetry, builder, init, init_with};

// The crates a function shares types with tracekit through, at the versions tracekit is built with:
// a function uses these and never version-matches them by hand.
#[cfg(feature = "http")]
pub use lambda_http;
pub use lambda_runtime;
pub use opentelemetry;
pub use opentelemetry_sdk;
pub use span_ext::{OpenTelemetrySpanExt, SetParentError};
pub use tracing;
