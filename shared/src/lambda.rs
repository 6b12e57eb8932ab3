//! The invocation span: a tower layer for [`lambda_runtime::Runtime`].
//!
//! [`InvocationLayer`] wraps the runtime's invocation service, so it sees each invocation from the
//! `/next` response until the function's response has been posted: it opens one SERVER span whose
//! parent is the invocation's `Lambda-Runtime-Trace-Id`, and after the response is posted (the caller
//! has its answer) it closes the span and flushes, bounded by the flush timeout and the deadline.
//!
//! The runtime turns a handler's error into the `/error` post below this layer, out of its sight, so
//! the handler itself is wrapped too ([`TracedHandler`]): it notes the error for the invocation span and
//! passes it on unchanged. Every entry point ([`run`] and its kin, [`runtime`]) does both in one call.

mod entry;
mod handler;
#[cfg(feature = "http")]
mod http_status;
mod lifecycle;
mod trigger;

pub use entry::*;
pub use handler::{TracedHandler, TracedHandlerFuture};
pub(crate) use handler::{captured, traced};

pub use trigger::{Trigger, TriggerKind};

use crate::OpenTelemetrySpanExt;
use crate::{
    config::Propagator,
    error,
    invocation::{INVOCATION, InvocationState},
    propagation,
    telemetry::Telemetry,
};
use lambda_runtime::{Diagnostic, LambdaEvent, LambdaInvocation};
use opentelemetry::trace::{SpanContext, Status, TraceContextExt};
use pin_project_lite::pin_project;
use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, ready},
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};
use tracing::{Instrument, Span, instrument::Instrumented};

/// Attribute keys of the invocation span.
/// [FaaS spans](https://opentelemetry.io/docs/specs/semconv/faas/faas-spans/),
/// [AWS Lambda](https://opentelemetry.io/docs/specs/semconv/faas/aws-lambda/).
mod attr {
    pub(super) use opentelemetry_semantic_conventions::attribute::AWS_LAMBDA_INVOKED_ARN;
    pub(super) use opentelemetry_semantic_conventions::attribute::CLOUD_ACCOUNT_ID;
    pub(super) use opentelemetry_semantic_conventions::attribute::CLOUD_RESOURCE_ID;
    pub(super) use opentelemetry_semantic_conventions::attribute::ERROR_TYPE;
    pub(super) use opentelemetry_semantic_conventions::attribute::FAAS_COLDSTART;
    pub(super) use opentelemetry_semantic_conventions::attribute::FAAS_INVOCATION_ID;
    pub(super) use opentelemetry_semantic_conventions::attribute::FAAS_TRIGGER;
    pub(super) use opentelemetry_semantic_conventions::attribute::HTTP_RESPONSE_STATUS_CODE;
    pub(super) use opentelemetry_semantic_conventions::attribute::{
        HTTP_REQUEST_METHOD, HTTP_ROUTE, URL_PATH,
    };
}

/// `error.type` of an invocation whose handler panicked.
const PANIC_ERROR_TYPE: &str = "panic";
/// `error.type` of an invocation cut short by the process's shutdown.
const SHUTDOWN_ERROR_TYPE: &str = "shutdown";
/// `error.type` of an invocation whose future was dropped before it finished (a user's layer
/// outside tracekit's gave up on it).
const CANCELLED_ERROR_TYPE: &str = "cancelled";
/// Deadlines before 2020 are not real deadlines (local emulators send fixed values such as 600000):
/// the flush is then bounded by the flush timeout alone.
const PLAUSIBLE_DEADLINE_MS: u64 = 1_577_836_800_000;
/// Time kept back from the deadline so the runtime is polling `/next` before Lambda's timeout.
const DEADLINE_MARGIN: Duration = Duration::from_millis(10);

/// Tower layer that traces each invocation. tracekit's entry points ([`run`] and its kin,
/// [`runtime`]) add it; tests get one from `TestTelemetry::layer` (feature `testing`).
#[derive(Debug, Clone)]
pub struct InvocationLayer {
    telemetry: Telemetry,
    coldstart: Arc<AtomicBool>,
}

impl InvocationLayer {
    pub(crate) fn new(telemetry: Telemetry) -> Self {
        let coldstart = !telemetry.config().provisioned;
        InvocationLayer {
            telemetry,
            coldstart: Arc::new(AtomicBool::new(coldstart)),
        }
    }
}

/// The invocation layer for `telemetry`. Not public: on its own it would lose the handler's errors,
/// the extension and the SIGTERM flush; a function gets it through [`run`] and its kin, or
/// [`runtime`].
pub(crate) fn invocation_layer(telemetry: &Telemetry) -> InvocationLayer {
    InvocationLayer::new(telemetry.clone())
}

impl<S> Layer<S> for InvocationLayer {
    type Service = InvocationService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InvocationService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`InvocationLayer`] builds.
#[derive(Debug, Clone)]
pub struct InvocationService<S> {
    inner: S,
    layer: InvocationLayer,
}

impl<S> Service<LambdaInvocation> for InvocationService<S>
where
    S: Service<LambdaInvocation, Response = ()>,
{
    type Response = ();
    type Error = S::Error;
    type Future = InvocationFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
        let coldstart = self.layer.coldstart.swap(false, Ordering::Relaxed);
        let (span, parent) = invocation_span(&self.layer.telemetry, &invocation, coldstart);
        if coldstart {
            // The init span hangs beside the invocation span, or under it when it is a root.
            let parent = parent.unwrap_or_else(|| span.context());
            self.layer.telemetry.record_init(&parent);
        }
        let state = Arc::new(InvocationState::new(invocation.context.request_id.clone()));
        let config = self.layer.telemetry.config();
        if coldstart && config.metrics.cold_start && !config.provisioned {
            state.add_metrics(|metrics| metrics.cold_start(&config.metrics.function_name));
        }
        let deadline_ms = invocation.context.deadline;
        let underway = self.layer.telemetry.invocation_underway();
        // The runtime's services call the handler synchronously from `call`: the task-local must be
        // set for that call as well as for the future.
        let inner = INVOCATION.sync_scope(state.clone(), || {
            let _entered = span.enter();
            self.inner.call(invocation)
        });
        InvocationFuture {
            inner: Some(INVOCATION.scope(state.clone(), inner.instrument(span.clone()))),
            cut: self.layer.telemetry.cut_signal(),
            finish: Some(Finish {
                span,
                state,
                deadline_ms,
                telemetry: self.layer.telemetry.clone(),
                underway,
            }),
            output: None,
            flush: None,
        }
    }
}

struct Finish {
    span: Span,
    state: Arc<InvocationState>,
    deadline_ms: u64,
    telemetry: Telemetry,
    /// Dropped once the span has ended: the shutdown waits for that.
    underway: crate::telemetry::Underway,
}

pin_project! {
    /// Future of [`InvocationService`]: the invocation, then the flush.
    ///
    /// Cut short, by the process's shutdown or by being dropped before it finished, it drops the
    /// handler's future (whose spans end with it) and ends the invocation span as an error that
    /// says why, so the last flush still carries the invocation and its children under it.
    pub struct InvocationFuture<F: Future> {
        #[pin]
        inner: Option<TaskLocalFuture<Arc<InvocationState>, Instrumented<F>>>,
        #[pin]
        cut: tokio::sync::futures::OwnedNotified,
        finish: Option<Finish>,
        output: Option<F::Output>,
        flush: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    }

    impl<F: Future> PinnedDrop for InvocationFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if let Some(finish) = this.finish.take() {
                // The handler's spans end first, then the invocation's.
                this.inner.set(None);
                finish.cut();
            }
        }
    }
}

impl<F: Future> fmt::Debug for InvocationFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvocationFuture").finish_non_exhaustive()
    }
}

impl<F: Future> Future for InvocationFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        if this.output.is_none() {
            if let Some(finish) = this.finish.as_ref() {
                let shutting_down = finish.telemetry.cut_reason().is_some();
                if shutting_down || this.cut.as_mut().poll(cx).is_ready() {
                    this.inner.set(None);
                    if let Some(finish) = this.finish.take() {
                        finish.cut();
                    }
                }
            }
            // Cut short, the invocation never answers: the process is ending.
            let Some(inner) = this.inner.as_mut().as_pin_mut() else {
                return Poll::Pending;
            };
            // The response (or error) has been posted when the inner future completes.
            let output = ready!(inner.poll(cx));
            *this.output = Some(output);
            if let Some(finish) = this.finish.take() {
                *this.flush = finish.end_and_flush();
            }
        }
        if let Some(flush) = this.flush.as_mut() {
            ready!(flush.as_mut().poll(cx));
            *this.flush = None;
        }
        match this.output.take() {
            Some(output) => Poll::Ready(output),
            // Polled again after completion: never ready again, as futures may choose.
            None => Poll::Pending,
        }
    }
}

impl Finish {
    /// Ends the invocation span of an invocation cut short: an error that says why, with the log
    /// lines it kept. No flush: the shutdown's, or the next invocation's, carries it.
    fn cut(self) {
        let (error_type, message) = match self.telemetry.cut_reason() {
            Some(reason) => (
                SHUTDOWN_ERROR_TYPE,
                format!("the invocation was cut short by the shutdown ({reason})"),
            ),
            None => (
                CANCELLED_ERROR_TYPE,
                "the invocation was dropped before it finished".to_owned(),
            ),
        };
        error::record(&self.span, error_type, &message);
        self.telemetry.write_kept_logs(&self.state);
        self.telemetry
            .write_metrics(&self.state, || xray_trace_id_of(&self.span));
    }

    /// Ends the invocation span; the flush this invocation owes, if any.
    fn end_and_flush(self) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> {
        let Finish {
            span,
            state,
            deadline_ms,
            telemetry,
            underway,
        } = self;
        let error = state
            .error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let panicked = state.handler_started.load(Ordering::Acquire)
            && !state.handler_finished.load(Ordering::Acquire);
        let matched = state
            .http_route
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(matched) = matched {
            span.set_attribute(attr::HTTP_ROUTE, matched.route);
            crate::span_ext::rename(&span, matched.name);
        }
        let http_status = state.http_status.load(Ordering::Acquire);
        if http_status != 0 {
            span.set_attribute(attr::HTTP_RESPONSE_STATUS_CODE, i64::from(http_status));
        }
        let failed = error.is_some() || panicked || http_status >= 500;
        if let Some((error_type, message)) = error {
            let capture = &telemetry.config().capture;
            if capture.error {
                let _entered = span.enter();
                crate::metadata::capture(
                    &crate::metadata::namespace_of(&telemetry.config().service_name),
                    "error",
                    &serde_json::json!({"errorType": error_type, "errorMessage": message}),
                    capture.max_bytes,
                );
            }
            error::record(&span, &error_type, &message);
        } else if panicked {
            error::record(&span, PANIC_ERROR_TYPE, "the handler panicked");
        } else if http_status >= 500 {
            // The semantic conventions' rule for HTTP server spans: a 5xx answer is an error (a 4xx
            // is the client's), and `error.type` is the status code.
            // https://opentelemetry.io/docs/specs/semconv/http/http-spans/#status
            span.set_status(Status::error(format!("HTTP {http_status}")));
            span.set_attribute(attr::ERROR_TYPE, http_status.to_string());
        }
        if failed {
            telemetry.write_kept_logs(&state);
        }
        telemetry.write_metrics(&state, || xray_trace_id_of(&span));
        // Closing the span ends it and hands it to the span buffer, in time for this flush.
        drop(span);
        drop(underway);
        if !telemetry.flush_due() {
            return None;
        }
        if telemetry.flushes_in_background() {
            // Managed concurrency: the background task flushes, so no invocation's worker waits on
            // an export (and 64 invocations finding a flush due never queue up for it).
            telemetry.wake_background();
            return None;
        }
        let bound = flush_bound(telemetry.config().flush_timeout, deadline_ms, now_ms());
        if bound.is_zero() {
            tracing::debug!(target: "tracekit", "no time left before the deadline: flush deferred");
            return None;
        }
        Some(Box::pin(async move {
            telemetry.force_flush(bound).await;
        }))
    }
}

/// The X-Ray trace id of `span`'s trace, if it has one.
fn xray_trace_id_of(span: &Span) -> Option<String> {
    let context = span.context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| propagation::xray_trace_id(span_context.trace_id()))
}

/// How long the end-of-invocation flush may take: the flush timeout, cut to the time left before the
/// deadline (less a margin). Zero means "no time: leave the spans for the next flush".
pub(crate) fn flush_bound(timeout: Duration, deadline_ms: u64, now_ms: u64) -> Duration {
    if deadline_ms < PLAUSIBLE_DEADLINE_MS {
        return timeout;
    }
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    timeout.min(left.saturating_sub(DEADLINE_MARGIN))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The invocation span, and the parent it was given, when it is not a root.
fn invocation_span(
    telemetry: &Telemetry,
    invocation: &LambdaInvocation,
    coldstart: bool,
) -> (Span, Option<opentelemetry::Context>) {
    let context = &invocation.context;
    let trigger = Trigger::detect(&invocation.body);
    let route_name = trigger.span_name();
    let name = route_name
        .as_deref()
        .unwrap_or(&context.env_config.function_name);
    let arn = Some(context.invoked_function_arn.as_str()).filter(|arn| !arn.is_empty());
    let config = telemetry.config();
    // Powertools' invocation annotations, searchable in X-Ray (`annotation.ColdStart = true`).
    let annotate = config.invocation_annotations;
    // Every value is given here, none recorded later: each `record` is a trip through the
    // subscriber. A `None` field is left out of the span.
    let span = tracing::info_span!(
        target: "tracekit",
        "invocation",
        otel.name = name,
        otel.kind = "server",
        { attr::FAAS_TRIGGER } = trigger.kind.as_str(),
        { attr::FAAS_INVOCATION_ID } = context.request_id.as_str(),
        { attr::FAAS_COLDSTART } = coldstart,
        { attr::CLOUD_RESOURCE_ID } = arn.map(function_arn),
        { attr::AWS_LAMBDA_INVOKED_ARN } = arn,
        { attr::CLOUD_ACCOUNT_ID } = arn.and_then(account_id),
        { attr::HTTP_REQUEST_METHOD } = trigger.http_method.as_deref(),
        { attr::HTTP_ROUTE } = trigger.http_route.as_deref(),
        { attr::URL_PATH } = trigger.url_path.as_deref(),
        annotation.ColdStart = annotate.then_some(coldstart),
        annotation.Service = annotate.then_some(config.service_name.as_str()),
    );

    if excluded(config, &trigger) {
        // Suppressed, the SDK builds a span that records nothing, and its children (tracing's
        // spans, the SDK interceptor's) inherit the suppression: the invocation sends nothing.
        let suppressed = opentelemetry::Context::new().with_telemetry_suppressed();
        let _ = span.set_parent(suppressed.clone());
        return (span, Some(suppressed));
    }

    let header = context.xray_trace_id.as_deref();
    let mut root_trace = None;
    let lambda_parent = match propagation::invocation_parent(
        header,
        config.sampled_zero,
        &config.sampler,
    ) {
        Ok(parent) => Some(parent),
        Err(error) => {
            // A Root-only header (no segment recorded yet) keeps its trace, without a parent
            // and without a warning; anything else starts a new trace.
            root_trace = header.and_then(propagation::root_only_trace_id);
            if root_trace.is_none() {
                tracing::warn!(target: "tracekit", %error, request_id = %context.request_id, "starting a new trace");
            }
            None
        }
    };
    let xray_lambda = config.propagators.contains(&Propagator::XrayLambda);
    // A direct `Invoke` carries its caller's context in `ClientContext.custom`.
    let caller = context.client_context.as_ref().and_then(|client| {
        caller_context(&client.custom, lambda_parent.as_ref(), &context.request_id)
    });
    let carrier_parent = match caller {
        // Link-or-parent, as for SQS: under `xray-lambda` the caller is the parent; under `xray`
        // Lambda's segment stays the parent (X-Ray draws the edge from the Invoke's own header)
        // and the caller's trace is linked.
        Some(caller) if xray_lambda => Some(caller),
        Some(caller) => {
            span.add_link(caller.span().span_context().clone());
            None
        }
        None if xray_lambda => {
            carrier_parent(&trigger, lambda_parent.as_ref(), &context.request_id)
        }
        None => None,
    };
    // As for an SQS producer: a caller whose trace id the export path cannot hold (a W3C id on the
    // segment path) is linked, and the invocation continues Lambda's trace (or a new one);
    // continued, every span of the invocation would be refused.
    let xray_ids_only = matches!(config.exporter, crate::config::ExporterConfig::Xray { .. });
    let carrier_parent = carrier_parent.and_then(|carrier| {
        let remote = carrier.span().span_context().clone();
        if propagation::export_holds(xray_ids_only, remote.trace_id()) {
            Some(carrier)
        } else {
            span.add_link(remote);
            None
        }
    });
    // `set_parent` fails only when no OpenTelemetry layer is installed, and then there is nothing to
    // parent.
    let parent = match (carrier_parent, lambda_parent) {
        (Some(carrier), lambda) => {
            let _ = span.set_parent(carrier.clone());
            // Lambda's own segment is still part of the story: a link, as the conventions ask.
            if let Some(lambda) = lambda.filter(SpanContext::is_valid) {
                span.add_link(lambda);
            }
            Some(carrier)
        }
        (None, Some(lambda)) => {
            let lambda = opentelemetry::Context::new().with_remote_span_context(lambda);
            let _ = span.set_parent(lambda.clone());
            Some(lambda)
        }
        (None, None) => {
            let _ = span.set_parent(opentelemetry::Context::new());
            if let Some(trace_id) = root_trace {
                // Started now, on this thread, so that its trace id is the header's.
                crate::invocation::with_root_trace_id(trace_id, || span.context());
            }
            None
        }
    };
    (span, parent)
}

/// Whether `TRACEKIT_EXCLUDED_ROUTES` names this event's route or path.
fn excluded(config: &crate::Config, trigger: &Trigger) -> bool {
    !config.excluded_routes.is_empty()
        && config.excluded_routes.iter().any(|route| {
            route.matches(
                trigger.http_method.as_deref(),
                trigger.http_route.as_deref(),
                trigger.url_path.as_deref(),
            )
        })
}

/// `xray-lambda`: the parent the HTTP request's own trace headers name, when they name one in a
/// trace other than the invocation's. When they name the invocation's own trace (API Gateway with
/// active tracing passes its header on, and Lambda's segment already hangs under it), Lambda's
/// header is the nearer parent and wins. A malformed carrier, or a repeated `traceparent`, falls
/// back to Lambda's header, with one warning.
fn carrier_parent(
    trigger: &Trigger,
    lambda_parent: Option<&SpanContext>,
    request_id: &str,
) -> Option<opentelemetry::Context> {
    let headers = &trigger.carrier;
    if headers.is_empty() {
        return None;
    }
    let repeated = propagation::repeated_traceparent(headers);
    if repeated {
        // W3C: a request with more than one traceparent has none; any other format still counts.
        tracing::warn!(target: "tracekit", request_id, "the request carries more than one traceparent: none of them is read");
    }
    let carrier =
        opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(headers));
    let remote = carrier.span().span_context().clone();
    if !remote.is_valid() {
        // ALB and API Gateway send Root-only X-Ray headers (`Root=1-…`, no `Parent`): a trace id to
        // log by, not a parent, and nothing to warn about.
        let names_a_parent = !headers.traceparent.is_empty()
            || headers
                .xray
                .as_deref()
                .is_some_and(|header| header.contains("Parent="));
        if names_a_parent && !repeated {
            tracing::warn!(target: "tracekit", request_id, "the request's trace headers are malformed: the invocation's trace header is the parent");
        }
        return None;
    }
    if lambda_parent.is_some_and(|lambda| lambda.trace_id() == remote.trace_id()) {
        return None;
    }
    Some(carrier)
}

/// The caller's context in a client context's `custom` map, read as an SQS message's attributes
/// are: through every configured propagator, keys in any case, so a W3C `traceparent` (as tracekit
/// and OpenTelemetry JS write it on `Invoke`) or an `x-amzn-trace-id` alone (OpenTelemetry JS's
/// aws-sdk instrumentation with the X-Ray propagator); with both, the last configured format's.
/// `None` when it names the invocation's own trace: such a caller is already its ancestor through
/// Lambda's segment. A malformed context, or a repeated `traceparent`, is skipped with one warning.
fn caller_context(
    custom: &std::collections::HashMap<String, String>,
    lambda_parent: Option<&SpanContext>,
    request_id: &str,
) -> Option<opentelemetry::Context> {
    let fields = propagation::AnyCase::new(
        custom
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str())),
    );
    let repeated = propagation::repeated_traceparent(&fields);
    if repeated {
        // W3C: more than one traceparent is none; any other format still counts.
        tracing::warn!(target: "tracekit", request_id, "the client context carries more than one traceparent: none of them is read");
    }
    let caller = match propagation::extract_carried(&fields) {
        propagation::Carried::Context(caller) => caller,
        propagation::Carried::Refused => {
            if !repeated {
                tracing::warn!(target: "tracekit", request_id, "the client context's trace context is malformed: ignored");
            }
            return None;
        }
        propagation::Carried::Nothing => return None,
    };
    let remote = caller.span().span_context().trace_id();
    if lambda_parent.is_some_and(|lambda| lambda.trace_id() == remote) {
        return None;
    }
    Some(caller)
}

/// The function's ARN without an alias or version: `arn:aws:lambda:region:account:function:name`.
fn function_arn(invoked_arn: &str) -> &str {
    match colons(invoked_arn).nth(6) {
        Some(index) => &invoked_arn[..index],
        None => invoked_arn,
    }
}

/// Field 5 of the ARN, when it is a 12-digit account id.
fn account_id(arn: &str) -> Option<&str> {
    let mut colons = colons(arn).skip(3);
    let start = colons.next()? + 1;
    let end = colons.next().unwrap_or(arn.len());
    Some(&arn[start..end]).filter(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()))
}

/// Where the `:` of an ARN are (a byte scan: the ARN is read on every invocation).
fn colons(arn: &str) -> impl Iterator<Item = usize> + '_ {
    arn.bytes()
        .enumerate()
        .filter_map(|(index, byte)| (byte == b':').then_some(index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_bound_is_cut_to_the_deadline() {
        let now = 1_800_000_000_000;
        let timeout = Duration::from_millis(500);
        // (deadline, expected bound, reason)
        let cases = [
            (
                now + 60_000,
                timeout,
                "plenty of time: the configured timeout",
            ),
            (
                now + 110,
                Duration::from_millis(100),
                "cut to the time left, less the margin",
            ),
            (now + 5, Duration::ZERO, "inside the margin: no flush"),
            (now - 1_000, Duration::ZERO, "already past: no flush"),
            (
                600_000,
                timeout,
                "an emulator's fixed past deadline is not a real one",
            ),
        ];
        for (deadline, expected, reason) in cases {
            assert_eq!(flush_bound(timeout, deadline, now), expected, "{reason}");
        }
    }

    use crate::testing::{FakeInvocation, TestTelemetry};
    use opentelemetry::{
        Value,
        trace::{SpanId, SpanKind, Status as OtelStatus, TraceId},
    };
    use opentelemetry_sdk::trace::SpanData;
    use std::sync::Mutex;
    use tower::{ServiceExt, service_fn};

    const HEADER: &str =
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

    type BoxError = lambda_runtime::Error;

    fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }

    /// The runtime's side of an invocation, as far as the layer can tell: the inner service.
    fn ok_runtime() -> impl Service<
        LambdaInvocation,
        Response = (),
        Error = BoxError,
        Future = impl Future<Output = Result<(), BoxError>> + Send,
    > + Clone
    + Send
    + 'static {
        service_fn(|_: LambdaInvocation| async { Ok::<(), BoxError>(()) })
    }

    async fn invoke<S>(service: &mut S, invocation: FakeInvocation)
    where
        S: Service<LambdaInvocation, Response = (), Error = BoxError>,
    {
        invocation
            .send_to(service)
            .await
            .expect("invocation succeeds");
    }

    fn amortized(max_spans: usize, max_age: Duration) -> TestTelemetry {
        let mut config = crate::Config::from_lookup(|_| None).expect("defaults are valid");
        config.flush = crate::FlushStrategy::Amortized { max_spans, max_age };
        TestTelemetry::with_config(config)
    }

    #[tokio::test]
    async fn amortized_flush_waits_until_enough_spans_are_buffered() {
        let test = amortized(7, Duration::from_secs(3600));
        let runtime = service_fn(|_: LambdaInvocation| async {
            for _ in 0..2 {
                let _child = tracing::info_span!("child").entered();
            }
            Ok::<(), BoxError>(())
        });
        let mut service = test.layer().layer(runtime);
        // 3 spans per invocation: 3, then 6 are below the threshold of 7.
        for _ in 0..2 {
            invoke(&mut service, FakeInvocation::new(serde_json::json!({}))).await;
        }
        assert_eq!(test.flush_count(), 0, "no flush below the threshold");
        assert!(test.spans().is_empty());
        invoke(&mut service, FakeInvocation::new(serde_json::json!({}))).await;
        assert_eq!(test.flush_count(), 1, "9 spans buffered: one flush");
        assert_eq!(
            test.spans().len(),
            9,
            "every buffered span exported at once"
        );
        invoke(&mut service, FakeInvocation::new(serde_json::json!({}))).await;
        assert_eq!(test.flush_count(), 1, "the buffer starts filling again");
    }

    #[tokio::test]
    async fn amortized_flush_exports_spans_that_waited_too_long() {
        let test = amortized(1_000, Duration::from_millis(50));
        let mut service = test.layer().layer(ok_runtime());
        invoke(&mut service, FakeInvocation::new(serde_json::json!({}))).await;
        assert_eq!(test.flush_count(), 0, "the span is fresh");
        tokio::time::sleep(Duration::from_millis(60)).await;
        invoke(&mut service, FakeInvocation::new(serde_json::json!({}))).await;
        assert_eq!(test.flush_count(), 1, "the first span waited past 50 ms");
        assert_eq!(test.spans().len(), 2);
    }

    #[tokio::test]
    async fn amortized_without_its_extension_flushes_every_invocation() {
        let test = amortized(1_000, Duration::from_secs(3600));
        // As when the Extensions API refused the registration.
        test.telemetry().set_amortized(false);
        let mut service = test.layer().layer(ok_runtime());
        invoke(&mut service, FakeInvocation::new(serde_json::json!({}))).await;
        assert_eq!(test.flush_count(), 1);
        assert_eq!(test.spans().len(), 1);
    }

    #[tokio::test]
    async fn invocation_span_continues_the_lambda_trace_header() {
        let test = TestTelemetry::new();
        let mut service = test.layer().layer(ok_runtime());
        let invocation =
            FakeInvocation::new(serde_json::json!({"Records": [{"eventSource": "aws:sqs"}]}))
                .trace_header(HEADER)
                .request_id("req-1")
                .invoked_arn("arn:aws:lambda:us-east-1:123456789012:function:orders:live");
        invoke(&mut service, invocation).await;

        let spans = test.spans();
        assert_eq!(spans.len(), 1, "one span per invocation: {spans:#?}");
        let span = &spans[0];
        assert_eq!(span.span_kind, SpanKind::Server);
        assert_eq!(span.name, "test-function");
        assert_eq!(
            span.span_context.trace_id(),
            TraceId::from_hex("5759e988bd862e3fe1be46a994272793").expect("hex")
        );
        assert_eq!(
            span.parent_span_id,
            SpanId::from_hex("53995c3f42cd8ad8").expect("hex")
        );
        assert!(span.parent_span_is_remote);
        let expect = [
            ("faas.trigger", Value::from("pubsub")),
            ("faas.invocation_id", Value::from("req-1")),
            ("faas.coldstart", Value::from(true)),
            (
                "cloud.resource_id",
                Value::from("arn:aws:lambda:us-east-1:123456789012:function:orders"),
            ),
            (
                "aws.lambda.invoked_arn",
                Value::from("arn:aws:lambda:us-east-1:123456789012:function:orders:live"),
            ),
            ("cloud.account.id", Value::from("123456789012")),
        ];
        for (key, value) in expect {
            assert_eq!(attr(span, key), Some(&value), "{key}");
        }
        assert_eq!(span.status, OtelStatus::Unset);
        assert_eq!(test.flush_count(), 1, "flushed once, after the response");
    }

    /// The HTTP sample events in `events/`, one per event type Lambda's HTTP sources send:
    /// (file, span name, `http.route`, `url.path`: the path the handler sees).
    const HTTP_EVENTS: [(&str, &str, Option<&str>, &str); 4] = [
        (
            "apigw-v2-get-order.json",
            "GET /orders/{id}",
            Some("/orders/{id}"),
            "/orders/4f2d9a7e-order",
        ),
        (
            "apigw-v1-get-order.json",
            "GET /orders/{id}",
            Some("/orders/{id}"),
            "/prod/orders/4f2d9a7e-order",
        ),
        (
            "function-url-get-order.json",
            "GET",
            None,
            "/orders/4f2d9a7e-order",
        ),
        ("alb-get-order.json", "GET", None, "/orders/4f2d9a7e-order"),
    ];

    fn http_event(file: &str) -> String {
        let path = format!("{}/../events/{file}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
    }

    #[cfg(feature = "http")]
    #[test]
    fn http_sample_events_are_what_lambda_sends() {
        use lambda_http::aws_lambda_events::{alb, apigw};
        fn round_trips<
            T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + fmt::Debug,
        >(
            file: &str,
        ) {
            let typed: T = serde_json::from_str(&http_event(file)).expect(file);
            let again: T =
                serde_json::from_value(serde_json::to_value(&typed).expect(file)).expect(file);
            assert_eq!(typed, again, "{file} survives a serde round trip");
        }
        round_trips::<apigw::ApiGatewayV2httpRequest>("apigw-v2-get-order.json");
        round_trips::<apigw::ApiGatewayProxyRequest>("apigw-v1-get-order.json");
        round_trips::<apigw::ApiGatewayV2httpRequest>("function-url-get-order.json");
        round_trips::<alb::AlbTargetGroupRequest>("alb-get-order.json");
        for (file, _, _, path) in HTTP_EVENTS {
            let request: lambda_http::request::LambdaRequest =
                serde_json::from_str(&http_event(file)).expect(file);
            let request = lambda_http::Request::from(request);
            assert_eq!(request.uri().path(), path, "{file}: the span's url.path");
        }
    }

    #[tokio::test]
    async fn http_events_give_the_span_its_route_method_and_path() {
        for (file, name, route, path) in HTTP_EVENTS {
            let test = TestTelemetry::new();
            let mut service = test.layer().layer(ok_runtime());
            let event: serde_json::Value = serde_json::from_str(&http_event(file)).expect(file);
            invoke(
                &mut service,
                FakeInvocation::new(event).trace_header(HEADER),
            )
            .await;
            let spans = test.spans();
            let span = &spans[0];
            assert_eq!(span.name, name, "{file}");
            assert_eq!(
                attr(span, "faas.trigger"),
                Some(&Value::from("http")),
                "{file}"
            );
            assert_eq!(
                attr(span, "http.route"),
                route.map(Value::from).as_ref(),
                "{file}"
            );
            assert_eq!(
                attr(span, "http.request.method"),
                Some(&Value::from("GET")),
                "{file}"
            );
            assert_eq!(
                attr(span, "url.path"),
                Some(&Value::from(path)),
                "{file}: no query string"
            );
            // Nothing else of the request: no header, no query, no body.
            for kv in &span.attributes {
                let value = kv.value.to_string();
                assert!(
                    !value.contains("curl") && !value.contains("expand"),
                    "{file}: {} = {value}",
                    kv.key
                );
            }
        }
    }

    #[tokio::test]
    async fn coldstart_is_true_only_for_the_first_invocation_even_when_concurrent() {
        let test = TestTelemetry::new();
        let layer = test.layer();
        // Workers under run_concurrent each hold a clone of the service.
        let invocations = (0..8).map(|i| {
            let mut service = layer.layer(ok_runtime());
            async move {
                let invocation = FakeInvocation::new(serde_json::json!({}))
                    .trace_header(HEADER)
                    .request_id(format!("req-{i}"));
                invoke(&mut service, invocation).await;
            }
        });
        let handles: Vec<_> = invocations.map(tokio::spawn).collect();
        for handle in handles {
            handle.await.expect("task");
        }
        let spans = test.spans();
        assert_eq!(spans.len(), 8);
        let cold = spans
            .iter()
            .filter(|s| attr(s, "faas.coldstart") == Some(&Value::from(true)))
            .count();
        assert_eq!(cold, 1, "exactly one cold start");
    }

    #[tokio::test]
    async fn provisioned_concurrency_is_never_a_cold_start() {
        let mut config = crate::Config::from_lookup(|_| None).expect("defaults");
        config.provisioned = true;
        let test = TestTelemetry::with_config(config);
        let mut service = test.layer().layer(ok_runtime());
        invoke(
            &mut service,
            FakeInvocation::new(serde_json::json!({})).trace_header(HEADER),
        )
        .await;
        assert_eq!(
            attr(&test.spans()[0], "faas.coldstart"),
            Some(&Value::from(false))
        );
    }

    /// Root-only headers, as the X-Ray developer guide's examples and the X-Ray SDKs write them when
    /// no segment has been recorded yet: the trace is kept, the span is its root, nothing is warned.
    /// <https://docs.aws.amazon.com/xray/latest/devguide/xray-concepts.html#xray-concepts-tracingheader>
    #[tokio::test]
    async fn root_only_headers_keep_lambdas_trace_without_a_warning() {
        for header in [
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
            "Root=1-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=a87bd80c:1|68fd508a:5",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?;Self=1-67891234-12456789abcdef012345678",
        ] {
            let test = TestTelemetry::new();
            let runtime = service_fn(|_: LambdaInvocation| async {
                let child = tracing::info_span!("work");
                let _entered = child.enter();
                tracing::info!("working");
                Ok::<(), BoxError>(())
            });
            let mut service = test.layer().layer(runtime);
            invoke(
                &mut service,
                FakeInvocation::new(serde_json::json!({})).trace_header(header),
            )
            .await;
            let spans = test.spans();
            assert_eq!(spans.len(), 2, "{header}");
            for span in &spans {
                assert_eq!(
                    format!("{:032x}", span.span_context.trace_id()),
                    "5759e988bd862e3fe1be46a994272793",
                    "{header}: {} keeps Lambda's trace",
                    span.name
                );
            }
            let server = spans
                .iter()
                .find(|s| s.span_kind == SpanKind::Server)
                .expect("server");
            assert_eq!(
                server.parent_span_id,
                SpanId::INVALID,
                "{header}: the trace's root"
            );
            let lines = test.log_lines();
            assert!(
                !lines.iter().any(|line| line.contains(r#""level":"WARN""#)),
                "{header}: {lines:?}"
            );
            let line = lines
                .iter()
                .find(|l| l.contains("working"))
                .expect("log line");
            assert!(
                line.contains(r#""traceId":"1-5759e988-bd862e3fe1be46a994272793""#),
                "{line}"
            );
        }
    }

    #[tokio::test]
    async fn malformed_or_missing_header_starts_a_new_root_with_one_warning() {
        for header in [
            None,
            Some("Root=1-5759e988-bd86;Parent=53995c3f42cd8ad8"),
            Some("garbage"),
            Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=maybe"),
            Some("Root=2-5759e988-bd862e3fe1be46a994272793;Sampled=1"),
        ] {
            let test = TestTelemetry::new();
            let mut service = test.layer().layer(ok_runtime());
            let mut invocation = FakeInvocation::new(serde_json::json!({}));
            if let Some(header) = header {
                invocation = invocation.trace_header(header);
            }
            invoke(&mut service, invocation).await;
            let spans = test.spans();
            assert_eq!(spans.len(), 1, "{header:?}");
            assert_eq!(
                spans[0].parent_span_id,
                SpanId::INVALID,
                "{header:?}: new root"
            );
            let trace_id = format!("{:032x}", spans[0].span_context.trace_id());
            let epoch = u32::from_str_radix(&trace_id[..8], 16).expect("hex");
            assert!(
                epoch > 1_700_000_000,
                "{header:?}: X-Ray trace id starts with the time"
            );
            let warnings = test.warnings();
            assert_eq!(warnings.len(), 1, "{header:?}: {warnings:?}");
            assert!(warnings[0].contains("starting a new trace"), "{warnings:?}");
        }
    }

    /// The invocation's parent under `xray` (the default) and `xray-lambda`, for the carriers an
    /// event can bring.
    #[tokio::test]
    async fn xray_lambda_prefers_the_requests_own_trace_headers() {
        const LAMBDA_TRACE: &str = "5759e988bd862e3fe1be46a994272793";
        const LAMBDA_PARENT: &str = "53995c3f42cd8ad8";
        const CALLER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
        const CALLER_PARENT: &str = "b7ad6b7169203331";
        let traceparent = format!("00-{CALLER_TRACE}-{CALLER_PARENT}-01");
        let same_trace =
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=1111111111111111;Sampled=1";
        let http = |headers: serde_json::Value| {
            serde_json::json!({"version": "2.0", "routeKey": "GET /orders", "rawPath": "/orders",
                "headers": headers, "requestContext": {"http": {"method": "GET"}}})
        };
        #[derive(Debug, PartialEq)]
        enum Parent {
            Lambda,
            Caller,
            NewRoot,
        }
        let rest = |headers: serde_json::Value, multi: serde_json::Value| {
            serde_json::json!({"resource": "/orders", "path": "/orders", "httpMethod": "GET",
                "headers": headers, "multiValueHeaders": multi, "requestContext": {"stage": "prod"}})
        };
        let other_traceparent = "00-11111111111111111111111111111111-2222222222222222-01";
        let caller_xray =
            "Root=1-0af76519-16cd43dd8448eb211c80319c;Parent=b7ad6b7169203331;Sampled=1";
        // (propagator, event, Lambda header, expected parent, a link to Lambda's segment, WARN
        // lines, reason)
        let cases = [
            (
                Propagator::Xray,
                http(serde_json::json!({"traceparent": traceparent})),
                Some(HEADER),
                Parent::Lambda,
                false,
                0,
                "xray: Lambda's header only",
            ),
            (
                Propagator::XrayLambda,
                http(serde_json::json!({"traceparent": traceparent})),
                Some(HEADER),
                Parent::Caller,
                true,
                0,
                "xray-lambda: the caller's W3C trace wins, Lambda's segment is a link",
            ),
            (
                Propagator::XrayLambda,
                http(serde_json::json!({"X-Amzn-Trace-Id": same_trace})),
                Some(HEADER),
                Parent::Lambda,
                false,
                0,
                "the caller's header names Lambda's own trace: Lambda's segment is the nearer parent",
            ),
            (
                Propagator::XrayLambda,
                http(serde_json::json!({"traceparent": "00-zz"})),
                Some(HEADER),
                Parent::Lambda,
                false,
                1,
                "a malformed carrier: Lambda's header",
            ),
            (
                Propagator::XrayLambda,
                serde_json::json!({"traceparent": traceparent}),
                Some(HEADER),
                Parent::Lambda,
                false,
                0,
                "not an HTTP event: no carrier",
            ),
            (
                Propagator::XrayLambda,
                http(serde_json::json!({"traceparent": traceparent})),
                None,
                Parent::Caller,
                false,
                1,
                "no Lambda header (its warning): the caller, nothing to link",
            ),
            (
                Propagator::Xray,
                http(serde_json::json!({"traceparent": traceparent})),
                None,
                Parent::NewRoot,
                false,
                1,
                "xray without a Lambda header: a new trace",
            ),
            (
                Propagator::XrayLambda,
                http(
                    serde_json::json!({"traceparent": other_traceparent, "Traceparent": traceparent}),
                ),
                Some(HEADER),
                Parent::Lambda,
                false,
                1,
                "two keys differing in case: a repeated traceparent is no context, one warning",
            ),
            (
                Propagator::XrayLambda,
                http(serde_json::json!({"traceparent": traceparent, "TRACEPARENT": traceparent})),
                Some(HEADER),
                Parent::Lambda,
                false,
                1,
                "the same value twice is repeated too",
            ),
            (
                Propagator::XrayLambda,
                rest(
                    serde_json::json!({"traceparent": other_traceparent}),
                    serde_json::json!({"traceparent": [traceparent, other_traceparent]}),
                ),
                Some(HEADER),
                Parent::Lambda,
                false,
                1,
                "two values in multiValueHeaders (headers holding the last): repeated",
            ),
            (
                Propagator::XrayLambda,
                rest(
                    serde_json::json!({"traceparent": traceparent}),
                    serde_json::json!({"traceparent": [traceparent]}),
                ),
                Some(HEADER),
                Parent::Caller,
                true,
                0,
                "API Gateway REST gives one header in both maps: not a repetition",
            ),
            (
                Propagator::XrayLambda,
                rest(
                    serde_json::Value::Null,
                    serde_json::json!({"traceparent": [traceparent, other_traceparent], "X-Amzn-Trace-Id": [caller_xray]}),
                ),
                Some(HEADER),
                Parent::Caller,
                true,
                1,
                "a repeated traceparent (one warning) leaves the X-Ray header to name the parent",
            ),
        ];
        for (propagator, event, header, expected, linked, warnings, reason) in cases {
            let mut config = crate::Config::from_lookup(|_| None).expect("defaults");
            config.propagators = vec![Propagator::TraceContext, propagator];
            let test = TestTelemetry::with_config(config);
            let mut service = test.layer().layer(ok_runtime());
            let mut invocation = FakeInvocation::new(event);
            if let Some(header) = header {
                invocation = invocation.trace_header(header);
            }
            invoke(&mut service, invocation).await;
            let span = &test.spans()[0];
            let trace = format!("{:032x}", span.span_context.trace_id());
            let parent = format!("{:016x}", span.parent_span_id);
            let actual = match (trace.as_str(), parent.as_str()) {
                (LAMBDA_TRACE, LAMBDA_PARENT) => Parent::Lambda,
                (CALLER_TRACE, CALLER_PARENT) => Parent::Caller,
                (_, "0000000000000000") => Parent::NewRoot,
                other => panic!("{reason}: unexpected parent {other:?}"),
            };
            assert_eq!(actual, expected, "{reason}");
            let links: Vec<String> = span
                .links
                .iter()
                .map(|link| format!("{:016x}", link.span_context.span_id()))
                .collect();
            assert_eq!(links == [LAMBDA_PARENT], linked, "{reason}: {links:?}");
            assert!(links.len() <= 1, "{reason}: {links:?}");
            let warned = test.warnings();
            assert_eq!(warned.len(), warnings, "{reason}: {warned:#?}");
        }
    }

    /// The caller's context in an `Invoke`'s `ClientContext.custom`, read as an SQS message's
    /// attributes are: any configured format, keys in any case, a repeated `traceparent` refused.
    #[tokio::test]
    async fn an_invoke_callers_context_is_read_as_message_attributes_are() {
        const LAMBDA_TRACE: &str = "5759e988bd862e3fe1be46a994272793";
        const LAMBDA_PARENT: &str = "53995c3f42cd8ad8";
        const CALLER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
        const CALLER_PARENT: &str = "b7ad6b7169203331";
        let traceparent = format!("00-{CALLER_TRACE}-{CALLER_PARENT}-01");
        let other_traceparent = "00-11111111111111111111111111111111-2222222222222222-01";
        let caller_xray =
            "Root=1-0af76519-16cd43dd8448eb211c80319c;Parent=b7ad6b7169203331;Sampled=1";
        let own_trace = format!("00-{LAMBDA_TRACE}-1111111111111111-01");
        #[derive(Debug, PartialEq)]
        enum Parent {
            Lambda,
            Caller,
        }
        // (propagator, custom, expected parent, links (span ids), WARN lines, reason)
        type Case<'a> = (
            Propagator,
            serde_json::Value,
            Parent,
            Vec<&'a str>,
            usize,
            &'a str,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                Propagator::XrayLambda,
                serde_json::json!({"x-amzn-trace-id": caller_xray}),
                Parent::Caller,
                vec![LAMBDA_PARENT],
                0,
                "xray-lambda: an x-amzn-trace-id alone (OpenTelemetry JS) is the parent",
            ),
            (
                Propagator::Xray,
                serde_json::json!({"x-amzn-trace-id": caller_xray}),
                Parent::Lambda,
                vec![CALLER_PARENT],
                0,
                "xray: an x-amzn-trace-id alone is linked",
            ),
            (
                Propagator::XrayLambda,
                serde_json::json!({"X-Amzn-Trace-Id": caller_xray, "tenant": "a"}),
                Parent::Caller,
                vec![LAMBDA_PARENT],
                0,
                "keys in any case, as message attributes",
            ),
            (
                Propagator::XrayLambda,
                serde_json::json!({"Traceparent": traceparent}),
                Parent::Caller,
                vec![LAMBDA_PARENT],
                0,
                "a traceparent in any case",
            ),
            (
                Propagator::XrayLambda,
                serde_json::json!({"traceparent": other_traceparent, "x-amzn-trace-id": caller_xray}),
                Parent::Caller,
                vec![LAMBDA_PARENT],
                0,
                "both: the last configured format's (xray-lambda after tracecontext), as SQS",
            ),
            (
                Propagator::XrayLambda,
                serde_json::json!({"traceparent": traceparent, "Traceparent": other_traceparent}),
                Parent::Lambda,
                vec![],
                1,
                "a repeated traceparent is no context, one warning",
            ),
            (
                Propagator::XrayLambda,
                serde_json::json!({"traceparent": traceparent, "TraceParent": other_traceparent, "x-amzn-trace-id": caller_xray}),
                Parent::Caller,
                vec![LAMBDA_PARENT],
                1,
                "a repeated traceparent (one warning) leaves the X-Ray header to name the caller",
            ),
            (
                Propagator::XrayLambda,
                serde_json::json!({"x-amzn-trace-id": "Root=1-0af76519-16cd43dd8448eb211c80319c;Sampled=1"}),
                Parent::Lambda,
                vec![],
                1,
                "a Root-only header names no caller: a warning, as on a message",
            ),
            (
                Propagator::XrayLambda,
                serde_json::json!({"traceparent": "00-zz", "tenant": "a"}),
                Parent::Lambda,
                vec![],
                1,
                "a malformed traceparent: one warning",
            ),
            (
                Propagator::XrayLambda,
                serde_json::json!({"tracestate": "a=b", "baggage": "k=v", "tenant": "a"}),
                Parent::Lambda,
                vec![],
                0,
                "no field that names a context: nothing, no warning",
            ),
            (
                Propagator::XrayLambda,
                serde_json::json!({"traceparent": own_trace}),
                Parent::Lambda,
                vec![],
                0,
                "a caller in the invocation's own trace is its ancestor already",
            ),
        ];
        for (propagator, custom, expected, links, warnings, reason) in cases {
            let mut config = crate::Config::from_lookup(|_| None).expect("defaults");
            config.propagators = vec![Propagator::TraceContext, propagator];
            let test = TestTelemetry::with_config(config);
            let mut service = test.layer().layer(ok_runtime());
            let mut invocation = FakeInvocation::new(serde_json::json!({"children": 0}))
                .trace_header(HEADER)
                .into_invocation();
            invocation.context.client_context = Some(
                serde_json::from_value(serde_json::json!({"custom": custom}))
                    .expect("a client context"),
            );
            service
                .ready()
                .await
                .expect("ready")
                .call(invocation)
                .await
                .expect("invocation succeeds");
            let span = &test.spans()[0];
            let actual = match (
                format!("{:032x}", span.span_context.trace_id()).as_str(),
                format!("{:016x}", span.parent_span_id).as_str(),
            ) {
                (LAMBDA_TRACE, LAMBDA_PARENT) => Parent::Lambda,
                (CALLER_TRACE, CALLER_PARENT) => Parent::Caller,
                other => panic!("{reason}: unexpected parent {other:?}"),
            };
            assert_eq!(actual, expected, "{reason}");
            let linked: Vec<String> = span
                .links
                .iter()
                .map(|link| format!("{:016x}", link.span_context.span_id()))
                .collect();
            assert_eq!(linked, links, "{reason}");
            let warned = test.warnings();
            assert_eq!(warned.len(), warnings, "{reason}: {warned:#?}");
        }
    }

    #[tokio::test]
    async fn sampled_zero_header_is_recorded_by_default() {
        let test = TestTelemetry::new();
        let mut service = test.layer().layer(ok_runtime());
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0";
        invoke(
            &mut service,
            FakeInvocation::new(serde_json::json!({})).trace_header(header),
        )
        .await;
        let spans = test.spans();
        assert_eq!(
            spans.len(),
            1,
            "defer: the local sampler (always on) decides"
        );
        assert_eq!(
            spans[0].parent_span_id,
            SpanId::from_hex("53995c3f42cd8ad8").expect("hex")
        );

        let mut config = crate::Config::from_lookup(|_| None).expect("defaults");
        config.sampled_zero = crate::config::SampledZeroPolicy::Honor;
        let honor = TestTelemetry::with_config(config);
        let mut service = honor.layer().layer(ok_runtime());
        invoke(
            &mut service,
            FakeInvocation::new(serde_json::json!({})).trace_header(header),
        )
        .await;
        assert!(honor.spans().is_empty(), "honor: nothing recorded");
    }

    /// An HTTP handler's answer, run the way `run_http` runs it: its status on the invocation span,
    /// and a 5xx (only) as an error.
    #[cfg(feature = "http")]
    #[tokio::test]
    async fn http_status_is_recorded_and_a_5xx_is_an_error() {
        // (status the handler answers, span status is an error, reason)
        let cases = [
            (200, false, "OK"),
            (201, false, "created"),
            (404, false, "a 4xx is the client's error, not the server's"),
            (500, true, "a 5xx is the server's"),
            (503, true, "unavailable"),
        ];
        for ((code, is_error, reason), (file, ..)) in cases
            .into_iter()
            .flat_map(|case| HTTP_EVENTS.into_iter().map(move |event| (case, event)))
        {
            let reason = format!("{file}: {reason}");
            let test = TestTelemetry::new();
            let runtime = service_fn(move |invocation: LambdaInvocation| async move {
                let handler = service_fn(move |_: lambda_http::Request| async move {
                    lambda_http::Response::builder()
                        .status(code)
                        .body(lambda_http::Body::from("{}"))
                        .map_err(|e| Box::new(e) as BoxError)
                });
                let request: lambda_http::request::LambdaRequest =
                    serde_json::from_str(&http_event(file)).expect(file);
                let event = LambdaEvent::new(request, invocation.context);
                let adapter = lambda_http::Adapter::from(http_status::Recorded::new(handler));
                traced(adapter).oneshot(event).await.expect("an answer");
                Ok::<(), BoxError>(())
            });
            let mut service = test.layer().layer(runtime);
            invoke(
                &mut service,
                FakeInvocation::new(serde_json::json!({})).trace_header(HEADER),
            )
            .await;
            let span = &test.spans()[0];
            let attribute = |key: &str| {
                span.attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == key)
                    .map(|kv| kv.value.clone())
            };
            assert_eq!(
                attribute("http.response.status_code"),
                Some(Value::I64(i64::from(code))),
                "{reason}"
            );
            assert_eq!(
                matches!(span.status, OtelStatus::Error { .. }),
                is_error,
                "{reason}"
            );
            assert_eq!(
                attribute("error.type"),
                is_error.then(|| Value::from(code.to_string())),
                "{reason}"
            );
        }
    }

    /// A handler that fails, run the way the runtime runs it: its error becomes the `/error` post.
    #[tokio::test]
    async fn handler_error_is_recorded_and_passed_through_unchanged() {
        #[derive(Debug, thiserror::Error)]
        #[error("order 42 not found")]
        struct NotFound;

        let test = TestTelemetry::new();
        let posted: Arc<Mutex<Option<Diagnostic>>> = Arc::default();
        let posted_by_runtime = posted.clone();
        let runtime = service_fn(move |invocation: LambdaInvocation| {
            let posted = posted_by_runtime.clone();
            async move {
                let handler = service_fn(|_: LambdaEvent<serde_json::Value>| async {
                    Err::<serde_json::Value, BoxError>(Box::new(NotFound))
                });
                let event = LambdaEvent::new(serde_json::json!({}), invocation.context);
                let result = traced(handler).oneshot(event).await;
                *posted.lock().expect("lock") = result.err();
                Ok::<(), BoxError>(())
            }
        });
        let mut service = test.layer().layer(runtime);
        invoke(
            &mut service,
            FakeInvocation::new(serde_json::json!({})).trace_header(HEADER),
        )
        .await;

        let expected = Diagnostic::from(Box::new(NotFound) as BoxError);
        let posted = posted
            .lock()
            .expect("lock")
            .take()
            .expect("an error was posted");
        assert_eq!(posted.error_type, expected.error_type);
        assert_eq!(posted.error_message, "order 42 not found");

        // Lambda gets the runtime's own diagnostic; the span a name to group by (`error_type`).
        let span = &test.spans()[0];
        assert_eq!(span.status, OtelStatus::error("order 42 not found"));
        assert_eq!(attr(span, "error.type"), Some(&Value::from("NotFound")));
        let exception = span
            .events
            .iter()
            .find(|e| e.name == "exception")
            .expect("exception event");
        let exception_type = exception
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "exception.type")
            .map(|kv| kv.value.to_string());
        assert_eq!(exception_type.as_deref(), Some("NotFound"));
    }

    #[tokio::test]
    async fn a_handler_that_never_finishes_is_recorded_as_a_panic() {
        let test = TestTelemetry::new();
        // The runtime catches a panic below the layer; the handler future then never completes.
        let runtime = service_fn(|invocation: LambdaInvocation| async move {
            let handler = service_fn(|_: LambdaEvent<serde_json::Value>| async {
                Ok::<serde_json::Value, BoxError>(serde_json::json!({}))
            });
            let started =
                traced(handler).call(LambdaEvent::new(serde_json::json!({}), invocation.context));
            drop(started);
            Ok::<(), BoxError>(())
        });
        let mut service = test.layer().layer(runtime);
        invoke(
            &mut service,
            FakeInvocation::new(serde_json::json!({})).trace_header(HEADER),
        )
        .await;
        let span = &test.spans()[0];
        assert_eq!(attr(span, "error.type"), Some(&Value::from("panic")));
    }

    fn api_event(method: &str, path: &str) -> serde_json::Value {
        serde_json::json!({
            "version": "2.0",
            "routeKey": format!("{method} {path}"),
            "rawPath": path,
            "headers": {},
            "requestContext": {"http": {"method": method, "path": path}, "routeKey": format!("{method} {path}")},
            "isBase64Encoded": false
        })
    }

    #[tokio::test]
    async fn an_excluded_route_records_no_span_at_all() {
        let mut config = crate::Config::from_lookup(|name| {
            (name == "TRACEKIT_EXCLUDED_ROUTES").then(|| "GET /health,/internal/*".to_owned())
        })
        .expect("valid");
        config.invocation_annotations = false;
        let test = TestTelemetry::with_config(config);
        let runtime = service_fn(|_: LambdaInvocation| async {
            let _child = tracing::info_span!("check the table").entered();
            Ok::<(), BoxError>(())
        });
        let mut service = test.layer().layer(runtime);
        for (method, path) in [("GET", "/health"), ("POST", "/internal/reindex")] {
            invoke(
                &mut service,
                FakeInvocation::new(api_event(method, path)).trace_header(HEADER),
            )
            .await;
        }
        assert!(test.spans().is_empty(), "{:#?}", test.spans());
        invoke(
            &mut service,
            FakeInvocation::new(api_event("POST", "/health")).trace_header(HEADER),
        )
        .await;
        assert_eq!(
            test.spans().len(),
            2,
            "another method on the route is traced"
        );
    }

    /// A stand-in for the runtime whose handler fails when the event says so, as the handler
    /// wrapper would note it, after logging at DEBUG.
    fn logging_runtime() -> impl Service<
        LambdaInvocation,
        Response = (),
        Error = BoxError,
        Future = impl Future<Output = Result<(), BoxError>> + Send,
    > + Clone
    + Send
    + 'static {
        service_fn(|invocation: LambdaInvocation| async move {
            let event: serde_json::Value =
                serde_json::from_slice(&invocation.body).expect("JSON event");
            let name = event["name"].as_str().unwrap_or_default().to_owned();
            tracing::debug!(name, "detail of {name}");
            tokio::task::yield_now().await;
            tracing::info!(name, "written of {name}");
            if event["fail"] == true {
                INVOCATION.with(|state| {
                    *state.error.lock().expect("lock") =
                        Some(("OrderError".to_owned(), "no such order".to_owned()));
                });
            }
            Ok::<(), BoxError>(())
        })
    }

    #[tokio::test]
    async fn kept_log_lines_are_written_for_the_failing_invocation_only() {
        let mut config = crate::Config::from_lookup(|name| match name {
            "TRACEKIT_LOG_BUFFER" => Some("debug".to_owned()),
            "TRACEKIT_CAPTURE_ERROR" => Some("true".to_owned()),
            "OTEL_SERVICE_NAME" => Some("orders.api".to_owned()),
            _ => None,
        })
        .expect("valid");
        config.flush = crate::FlushStrategy::EndOfInvocation;
        let test = TestTelemetry::with_config(config);
        let service = test.layer().layer(logging_runtime());
        // Two invocations at once on one task's executor: each keeps its own lines.
        let (mut first, mut second) = (service.clone(), service);
        tokio::join!(
            invoke(
                &mut first,
                FakeInvocation::new(serde_json::json!({"name": "ok"})).request_id("req-ok"),
            ),
            invoke(
                &mut second,
                FakeInvocation::new(serde_json::json!({"name": "bad", "fail": true}))
                    .request_id("req-bad"),
            ),
        );
        let lines: Vec<serde_json::Value> = test
            .log_lines()
            .iter()
            .map(|line| serde_json::from_str(line).expect("JSON line"))
            .collect();
        let detail: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|line| line["level"] == "DEBUG")
            .collect();
        assert_eq!(detail.len(), 1, "{lines:#?}");
        assert_eq!(detail[0]["requestId"], "req-bad");
        assert_eq!(detail[0]["message"], "detail of bad");
        assert!(
            lines
                .iter()
                .any(|line| line["level"] == "INFO" && line["requestId"] == "req-ok"),
            "lines at the log level are written as ever"
        );

        let spans = test.spans();
        let failed = spans
            .iter()
            .find(|span| attr(span, attr::FAAS_INVOCATION_ID) == Some(&Value::from("req-bad")))
            .expect("the failed invocation's span");
        let captured = attr(failed, "metadata_json.orders_api.error").expect("error captured");
        let captured: serde_json::Value =
            serde_json::from_str(captured.as_str().as_ref()).expect("JSON");
        assert_eq!(captured["errorType"], "OrderError");
        let ok = spans
            .iter()
            .find(|span| attr(span, attr::FAAS_INVOCATION_ID) == Some(&Value::from("req-ok")))
            .expect("the other invocation's span");
        assert!(attr(ok, "metadata_json.orders_api.error").is_none());
    }

    #[tokio::test]
    async fn an_error_line_writes_what_was_kept_before_it() {
        let test = TestTelemetry::with_config(
            crate::Config::from_lookup(|name| {
                (name == "TRACEKIT_LOG_BUFFER").then(|| "debug".to_owned())
            })
            .expect("valid"),
        );
        let runtime = service_fn(|_: LambdaInvocation| async {
            tracing::debug!("step one");
            tracing::error!("it broke");
            tracing::debug!("after the error, kept again");
            Ok::<(), BoxError>(())
        });
        let mut service = test.layer().layer(runtime);
        invoke(
            &mut service,
            FakeInvocation::new(serde_json::json!({})).trace_header(HEADER),
        )
        .await;
        let messages: Vec<String> = test
            .log_lines()
            .iter()
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line).expect("JSON")["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert_eq!(messages, ["step one", "it broke"]);
    }

    #[tokio::test]
    async fn child_spans_and_logs_carry_the_invocation_trace() {
        let test = TestTelemetry::new();
        let runtime = service_fn(|_: LambdaInvocation| async {
            let child = tracing::info_span!("load order");
            let _entered = child.enter();
            tracing::info!(order_id = 42, "loaded");
            Ok::<(), BoxError>(())
        });
        let mut service = test.layer().layer(runtime);
        invoke(
            &mut service,
            FakeInvocation::new(serde_json::json!({}))
                .trace_header(HEADER)
                .request_id("req-logs"),
        )
        .await;
        let spans = test.spans();
        assert_eq!(spans.len(), 2);
        let server = spans
            .iter()
            .find(|s| s.span_kind == SpanKind::Server)
            .expect("server span");
        let child = spans
            .iter()
            .find(|s| s.name == "load order")
            .expect("child span");
        assert_eq!(child.parent_span_id, server.span_context.span_id());
        assert_eq!(
            child.span_context.trace_id(),
            server.span_context.trace_id()
        );

        let line = test
            .log_lines()
            .into_iter()
            .find(|l| l.contains("loaded"))
            .expect("log line");
        let json: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        assert_eq!(json["traceId"], "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(json["spanId"], child.span_context.span_id().to_string());
        assert_eq!(json["fields"]["order_id"], 42);
        assert_eq!(json["level"], "INFO");
        assert_eq!(json["requestId"], "req-logs", "Lambda's JSON log field");
    }

    #[tokio::test]
    async fn flush_is_cut_short_by_the_deadline() {
        // A collector that accepts connections and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let endpoint = format!("http://{address}");
        let config = crate::Config::from_lookup(|name| match name {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
            "TRACEKIT_FLUSH_TIMEOUT_MS" => Some("20000".to_owned()),
            _ => None,
        })
        .expect("config");
        let resource = crate::telemetry::resource(&config);
        let (flusher, processor) =
            crate::flush::Flusher::new(&config, &resource).expect("exporter");
        let parts = crate::telemetry::Parts::new(config, resource, flusher, processor);
        let _guard = tracing::dispatcher::set_default(&parts.dispatch(std::io::sink));
        let mut service = invocation_layer(&parts.telemetry).layer(ok_runtime());

        let deadline = now_ms() + 300;
        let invocation = FakeInvocation::new(serde_json::json!({}))
            .trace_header(HEADER)
            .deadline_ms(deadline);
        // The flush timeout is 20 s; only the deadline can end this invocation within 5 s. (How the
        // bound is cut to the deadline, margin included, is `flush_bound_is_cut_to_the_deadline`'s:
        // a wall clock read here would only measure how busy the machine is.)
        tokio::time::timeout(Duration::from_secs(5), invoke(&mut service, invocation))
            .await
            .expect("the flush stops at the deadline, not at the flush timeout");
    }

    #[test]
    fn arns_give_resource_id_and_account() {
        let alias = "arn:aws:lambda:us-east-1:123456789012:function:orders-api:live";
        assert_eq!(
            function_arn(alias),
            "arn:aws:lambda:us-east-1:123456789012:function:orders-api"
        );
        let plain = "arn:aws:lambda:us-east-1:123456789012:function:orders-api";
        assert_eq!(function_arn(plain), plain);
        assert_eq!(account_id(alias), Some("123456789012"));
        assert_eq!(account_id("arn:aws:lambda:us-east-1:abc:function:x"), None);
        assert_eq!(account_id("not-an-arn"), None);
        assert_eq!(
            account_id("arn:aws:lambda:us-east-1:123456789012"),
            Some("123456789012")
        );
        assert_eq!(account_id("arn:aws:lambda:::function"), None);
    }
}
