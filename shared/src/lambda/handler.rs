//! The handler wrapper: a handler's errors (and panics) reach the invocation span; the runtime
//! gets the same `Diagnostic` it would have made of them.

use super::*;

/// Wraps a handler so that its errors (and panics) are recorded on the invocation span. The error
/// reaches the runtime as the same [`Diagnostic`] it would have made of it.
pub(crate) fn traced<S>(handler: S) -> TracedHandler<S> {
    TracedHandler { inner: handler }
}

/// A handler wrapped so that its errors reach the invocation span (tracekit's entry points wrap
/// every handler; tests get one from `TestTelemetry::traced`).
#[derive(Debug, Clone)]
pub struct TracedHandler<S> {
    inner: S,
}

impl<S, T> Service<LambdaEvent<T>> for TracedHandler<S>
where
    S: Service<LambdaEvent<T>>,
    S::Error: Into<Diagnostic> + 'static,
{
    type Response = S::Response;
    type Error = Diagnostic;
    type Future = TracedHandlerFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, event: LambdaEvent<T>) -> Self::Future {
        let _ = INVOCATION.try_with(|state| state.handler_started.store(true, Ordering::Release));
        TracedHandlerFuture {
            inner: self.inner.call(event),
        }
    }
}

pin_project! {
    /// Future of [`TracedHandler`].
    #[derive(Debug)]
    pub struct TracedHandlerFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F, R, E> Future for TracedHandlerFuture<F>
where
    F: Future<Output = Result<R, E>>,
    E: Into<Diagnostic> + 'static,
{
    type Output = Result<R, Diagnostic>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let result = ready!(self.project().inner.poll(cx));
        let result = match result {
            Ok(response) => Ok(response),
            Err(error) => {
                let (diagnostic, error_type) = error::diagnose(error);
                let _ = INVOCATION.try_with(|state| {
                    let mut error = state
                        .error
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    *error = Some((error_type, diagnostic.error_message.clone()));
                });
                Err(diagnostic)
            }
        };
        let _ = INVOCATION.try_with(|state| state.handler_finished.store(true, Ordering::Release));
        Poll::Ready(result)
    }
}

/// Wraps a handler so that its response is kept in the invocation span's metadata when
/// `TRACEKIT_CAPTURE_RESPONSE` asks for it (see [`Capture`](crate::config::Capture)). The response
/// reaches the runtime unchanged; a streamed response is never captured, and the values of an HTTP
/// response's credential headers (`Authorization`, `Cookie`, `Set-Cookie`, …) are kept as `REDACTED`.
pub(crate) fn captured<S, B, St>(telemetry: &Telemetry, handler: S) -> Captured<S, B, St> {
    let config = telemetry.config();
    Captured {
        inner: handler,
        capture: config.capture.response.then(|| CaptureTo {
            namespace: crate::metadata::namespace_of(&config.service_name).into(),
            max_bytes: config.capture.max_bytes,
        }),
        _response: std::marker::PhantomData,
    }
}

/// Where a captured value goes: the service's metadata namespace, cut to `max_bytes`.
#[derive(Debug, Clone)]
pub(crate) struct CaptureTo {
    namespace: Arc<str>,
    max_bytes: usize,
}

/// A handler whose response [`captured`] keeps.
pub(crate) struct Captured<S, B, St> {
    inner: S,
    capture: Option<CaptureTo>,
    _response: std::marker::PhantomData<fn() -> (B, St)>,
}

impl<S: Clone, B, St> Clone for Captured<S, B, St> {
    fn clone(&self) -> Self {
        Captured {
            inner: self.inner.clone(),
            capture: self.capture.clone(),
            _response: std::marker::PhantomData,
        }
    }
}

impl<S, T, B, St> Service<LambdaEvent<T>> for Captured<S, B, St>
where
    S: Service<LambdaEvent<T>>,
    S::Response: lambda_runtime::IntoFunctionResponse<B, St>,
    B: serde::Serialize,
{
    type Response = lambda_runtime::FunctionResponse<B, St>;
    type Error = S::Error;
    type Future = CapturedFuture<S::Future, B, St>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, event: LambdaEvent<T>) -> Self::Future {
        CapturedFuture {
            inner: self.inner.call(event),
            capture: self.capture.clone(),
            _response: std::marker::PhantomData,
        }
    }
}

pin_project! {
    /// Future of [`Captured`].
    pub(crate) struct CapturedFuture<F, B, St> {
        #[pin]
        inner: F,
        capture: Option<CaptureTo>,
        _response: std::marker::PhantomData<fn() -> (B, St)>,
    }
}

impl<F, R, E, B, St> Future for CapturedFuture<F, B, St>
where
    F: Future<Output = Result<R, E>>,
    R: lambda_runtime::IntoFunctionResponse<B, St>,
    B: serde::Serialize,
{
    type Output = Result<lambda_runtime::FunctionResponse<B, St>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?.into_response();
        if let (Some(capture), lambda_runtime::FunctionResponse::BufferedResponse(body)) =
            (this.capture.as_ref(), &response)
        {
            // Polled inside the invocation span, the handler's own spans closed: the current span
            // is the invocation's.
            crate::metadata::capture_response(&capture.namespace, body, capture.max_bytes);
        }
        Poll::Ready(Ok(response))
    }
}
