//! tracekit's entry points, one per runtime mode: each wraps the handler ([`traced`]) and the
//! runtime (the invocation layer), and runs it beside tracekit's extension, the background flush
//! and the SIGTERM flush (`lifecycle`).

use super::lifecycle::{run_until_terminated, start_beside_a_runtime};
use super::*;

/// Runs `handler` on the Lambda runtime, traced: one call in `main` after [`crate::init`].
///
/// Invocations are processed one at a time, like [`lambda_runtime::run`].
pub async fn run<A, F, R, B, S, D, E>(
    telemetry: &Telemetry,
    handler: F,
) -> Result<(), lambda_runtime::Error>
where
    F: Service<LambdaEvent<A>, Response = R>,
    F::Future: Future<Output = Result<R, F::Error>>,
    F::Error: Into<Diagnostic> + fmt::Debug + 'static,
    A: for<'de> serde::Deserialize<'de>,
    R: lambda_runtime::IntoFunctionResponse<B, S>,
    B: serde::Serialize,
    S: futures_core::Stream<Item = Result<D, E>> + Unpin + Send + 'static,
    D: Into<bytes::Bytes> + Send,
    E: Into<lambda_runtime::Error> + Send + fmt::Debug,
{
    warn_if_sequential_under_concurrency(telemetry, "run", "run_concurrent");
    let runtime = lambda_runtime::Runtime::new(traced(captured::<_, B, S>(telemetry, handler)))
        .layer(invocation_layer(telemetry));
    run_until_terminated(telemetry, Box::pin(runtime.run())).await
}

/// [`run`] for Lambda Managed Instances, where one execution environment serves up to
/// `AWS_LAMBDA_MAX_CONCURRENCY` invocations at once (lambda_runtime's
/// [`run_concurrent`](lambda_runtime::Runtime::run_concurrent)); with that variable unset or 1 it
/// runs invocations one at a time, like [`run`], so one binary serves both.
///
/// It keeps everything [`run`] does: one invocation span per invocation, each parented on its own
/// `Lambda-Runtime-Trace-Id` (nothing about "the current invocation" is global), handler errors
/// recorded on the invocation that failed, cold start on the first invocation of the process only,
/// the flush policy, tracekit's internal extension and the SIGTERM flush. Under managed concurrency
/// the environment never freezes, so the flush defaults to `amortized` (see
/// [`FlushStrategy`](crate::FlushStrategy)), checked after each invocation and, for a quiet
/// environment, in the background every `TRACEKIT_FLUSH_MAX_AGE_MS`.
pub async fn run_concurrent<A, F, R, B, S, D, E>(
    telemetry: &Telemetry,
    handler: F,
) -> Result<(), lambda_runtime::Error>
where
    F: Service<LambdaEvent<A>, Response = R> + Clone + Send + 'static,
    F::Future: Future<Output = Result<R, F::Error>> + Send + 'static,
    F::Error: Into<Diagnostic> + fmt::Debug + 'static,
    A: for<'de> serde::Deserialize<'de> + Send + 'static,
    R: lambda_runtime::IntoFunctionResponse<B, S> + Send + 'static,
    B: serde::Serialize + Send + 'static,
    S: futures_core::Stream<Item = Result<D, E>> + Unpin + Send + 'static,
    D: Into<bytes::Bytes> + Send + 'static,
    E: Into<lambda_runtime::Error> + Send + fmt::Debug + 'static,
{
    let runtime = lambda_runtime::Runtime::new(traced(captured::<_, B, S>(telemetry, handler)))
        .layer(invocation_layer(telemetry));
    run_until_terminated(telemetry, Box::pin(runtime.run_concurrent())).await
}

/// A [`lambda_runtime::Runtime`] that traces `handler`, for a `main` that composes its own: add
/// tower layers with [`Runtime::layer`](lambda_runtime::Runtime::layer) and call its `run`.
///
/// One call wraps both the handler (its errors reach the invocation span) and the runtime (the
/// invocation span), and, before it returns, starts what [`run`] keeps besides: tracekit's extension
/// for the `amortized` flush (registered now, before the runtime's first `/next`, as Lambda
/// requires), the background flush under managed concurrency, and the SIGTERM flush, after which
/// the process exits. Layers added to the runtime run outside the invocation span; to run inside
/// it, wrap the handler instead.
///
/// ```no_run
/// # use tracekit::lambda_runtime::{Error, LambdaEvent, service_fn};
/// # async fn handler(event: LambdaEvent<serde_json::Value>) -> Result<serde_json::Value, Error> { Ok(event.payload) }
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// let telemetry = tracekit::init()?;
/// tracekit::runtime(&telemetry, service_fn(handler))
///     .await
///     .layer(tower::layer::util::Identity::new()) // your layers
///     .run()
///     .await
/// # }
/// ```
///
/// For Lambda Managed Instances, [`runtime_concurrent`] gives a runtime whose `run_concurrent` can
/// be called. tracekit's internals cannot be composed by hand any other way, so no composition
/// loses a feature silently.
///
/// SIGTERM and SIGINT are tracekit's to handle: the invocations in flight are cut short, what is
/// buffered is flushed, and the process exits. The runtime's own end, when `run` returns
/// lambda_runtime's error (or panics), is `main`'s to see: flush then, as [`run`] does by itself.
///
/// ```no_run
/// # use tracekit::lambda_runtime::{Error, LambdaEvent, service_fn};
/// # async fn handler(event: LambdaEvent<serde_json::Value>) -> Result<serde_json::Value, Error> { Ok(event.payload) }
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// let telemetry = tracekit::init()?;
/// let ended = tracekit::runtime(&telemetry, service_fn(handler)).await.run().await;
/// telemetry.shutdown(std::time::Duration::from_millis(250)).await;
/// ended
/// # }
/// ```
pub async fn runtime<A, F, R, B, S, D, E>(
    telemetry: &Telemetry,
    handler: F,
) -> lambda_runtime::Runtime<
    impl Service<LambdaInvocation, Response = (), Error = lambda_runtime::Error>
    + use<A, F, R, B, S, D, E>,
>
where
    F: Service<LambdaEvent<A>, Response = R> + 'static,
    F::Future: Future<Output = Result<R, F::Error>> + 'static,
    F::Error: Into<Diagnostic> + fmt::Debug + 'static,
    A: for<'de> serde::Deserialize<'de>,
    R: lambda_runtime::IntoFunctionResponse<B, S>,
    B: serde::Serialize + 'static,
    S: futures_core::Stream<Item = Result<D, E>> + Unpin + Send + 'static,
    D: Into<bytes::Bytes> + Send,
    E: Into<lambda_runtime::Error> + Send + fmt::Debug,
{
    start_beside_a_runtime(telemetry).await;
    lambda_runtime::Runtime::new(traced(captured::<_, B, S>(telemetry, handler)))
        .layer(invocation_layer(telemetry))
}

/// [`runtime`] for Lambda Managed Instances: the handler is `Clone + Send`, so the runtime's
/// `run_concurrent` serves up to `AWS_LAMBDA_MAX_CONCURRENCY` invocations at once.
pub async fn runtime_concurrent<A, F, R, B, S, D, E>(
    telemetry: &Telemetry,
    handler: F,
) -> lambda_runtime::Runtime<
    impl Service<LambdaInvocation, Response = (), Error = lambda_runtime::Error, Future: Send>
    + Clone
    + Send
    + use<A, F, R, B, S, D, E>,
>
where
    F: Service<LambdaEvent<A>, Response = R> + Clone + Send + 'static,
    F::Future: Future<Output = Result<R, F::Error>> + Send + 'static,
    F::Error: Into<Diagnostic> + fmt::Debug + 'static,
    A: for<'de> serde::Deserialize<'de> + Send + 'static,
    R: lambda_runtime::IntoFunctionResponse<B, S> + Send + 'static,
    B: serde::Serialize + Send + 'static,
    S: futures_core::Stream<Item = Result<D, E>> + Unpin + Send + 'static,
    D: Into<bytes::Bytes> + Send + 'static,
    E: Into<lambda_runtime::Error> + Send + fmt::Debug + 'static,
{
    start_beside_a_runtime(telemetry).await;
    lambda_runtime::Runtime::new(traced(captured::<_, B, S>(telemetry, handler)))
        .layer(invocation_layer(telemetry))
}

/// [`run`] for `lambda_http` handlers (API Gateway REST and HTTP APIs, ALB, function URLs).
///
/// The response's status goes on the invocation span as `http.response.status_code`; a 5xx answer
/// also sets the span's status to ERROR with `error.type` the status code, as the semantic
/// conventions ask of HTTP server spans (a 4xx is the client's error and leaves the status unset).
#[cfg(feature = "http")]
pub async fn run_http<'a, R, S, E>(
    telemetry: &Telemetry,
    handler: S,
) -> Result<(), lambda_runtime::Error>
where
    S: Service<lambda_http::Request, Response = R, Error = E>,
    S::Future: Send + 'a,
    R: lambda_http::IntoResponse,
    E: fmt::Debug + Into<Diagnostic> + 'static,
{
    warn_if_sequential_under_concurrency(telemetry, "run_http", "run_http_concurrent");
    let runtime = lambda_runtime::Runtime::new(traced(captured(
        telemetry,
        lambda_http::Adapter::from(http_status::Recorded::new(handler)),
    )))
    .layer(invocation_layer(telemetry));
    run_until_terminated(telemetry, Box::pin(runtime.run())).await
}

/// [`run_http`] for Lambda Managed Instances: [`run_concurrent`] for `lambda_http` handlers.
#[cfg(feature = "http")]
pub async fn run_http_concurrent<R, S, E>(
    telemetry: &Telemetry,
    handler: S,
) -> Result<(), lambda_runtime::Error>
where
    S: Service<lambda_http::Request, Response = R, Error = E> + Clone + Send + 'static,
    S::Future: Send + 'static,
    R: lambda_http::IntoResponse + Send + Sync + 'static,
    E: fmt::Debug + Into<Diagnostic> + Send + 'static,
{
    let runtime = lambda_runtime::Runtime::new(traced(captured(
        telemetry,
        lambda_http::Adapter::from(http_status::Recorded::new(handler)),
    )))
    .layer(invocation_layer(telemetry));
    run_until_terminated(telemetry, Box::pin(runtime.run_concurrent())).await
}

/// [`run_http`] for handlers that stream their response
/// ([response streaming](https://docs.aws.amazon.com/lambda/latest/dg/configuration-response-streaming.html)),
/// as lambda_http's `run_with_streaming_response` runs them.
///
/// It keeps everything [`run_http`] does. The status is the one the handler's response starts with
/// (its metadata prelude); the invocation span ends, and the flush starts, once the whole body has
/// been streamed to Lambda.
#[cfg(feature = "http")]
pub async fn run_http_streaming<'a, S, B, E>(
    telemetry: &Telemetry,
    handler: S,
) -> Result<(), lambda_runtime::Error>
where
    S: Service<lambda_http::Request, Response = lambda_http::Response<B>, Error = E>,
    S::Future: Send + 'a,
    E: fmt::Debug + Into<Diagnostic> + 'static,
    B: http_body::Body + Unpin + Send + 'static,
    B::Data: Into<bytes::Bytes> + Send,
    B::Error: Into<lambda_runtime::Error> + Send + fmt::Debug,
{
    warn_if_sequential_under_concurrency(
        telemetry,
        "run_http_streaming",
        "run_http_streaming_concurrent",
    );
    let runtime = lambda_runtime::Runtime::new(traced(http_status::Streaming::new(handler)))
        .layer(invocation_layer(telemetry));
    run_until_terminated(telemetry, Box::pin(runtime.run())).await
}

/// [`run_http_streaming`] for Lambda Managed Instances: [`run_concurrent`] for streaming
/// `lambda_http` handlers.
#[cfg(feature = "http")]
pub async fn run_http_streaming_concurrent<S, B, E>(
    telemetry: &Telemetry,
    handler: S,
) -> Result<(), lambda_runtime::Error>
where
    S: Service<lambda_http::Request, Response = lambda_http::Response<B>, Error = E>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    E: fmt::Debug + Into<Diagnostic> + Send + 'static,
    B: http_body::Body + Unpin + Send + 'static,
    B::Data: Into<bytes::Bytes> + Send,
    B::Error: Into<lambda_runtime::Error> + Send + fmt::Debug,
{
    let runtime = lambda_runtime::Runtime::new(traced(http_status::Streaming::new(handler)))
        .layer(invocation_layer(telemetry));
    run_until_terminated(telemetry, Box::pin(runtime.run_concurrent())).await
}

/// lambda_runtime's sequential `run` warns whenever `AWS_LAMBDA_MAX_CONCURRENCY` is set, `1`
/// included, and tracekit drops that line (see `telemetry::quiet`); this is the warning that stands
/// in for it, given only when the environment asks for more than one invocation at a time.
fn warn_if_sequential_under_concurrency(telemetry: &Telemetry, entry: &str, concurrent: &str) {
    let max_concurrency = telemetry.config().max_concurrency;
    if max_concurrency > 1 {
        tracing::warn!(
            target: "tracekit",
            max_concurrency,
            "AWS_LAMBDA_MAX_CONCURRENCY is {max_concurrency}, but tracekit::{entry} serves one invocation at a time: use tracekit::{concurrent}"
        );
    }
}
