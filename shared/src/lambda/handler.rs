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
