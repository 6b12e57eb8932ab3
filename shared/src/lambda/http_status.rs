//! The response status of a `lambda_http` handler, for the invocation span: the handler's answer
//! is turned into the `http::Response` lambda_http would make of it, and its status noted on the
//! invocation's state before the adapter serialises it.

use crate::invocation::INVOCATION;
use bytes::Bytes;
use futures_core::Stream;
use http::{HeaderValue, header::SET_COOKIE};
use http_body::Body;
use lambda_http::{IntoResponse, Request, RequestExt, Response, request::LambdaRequest};
use lambda_runtime::{LambdaEvent, MetadataPrelude, StreamResponse};
use pin_project_lite::pin_project;
use std::{
    future::Future,
    marker::PhantomData,
    pin::Pin,
    sync::atomic::Ordering,
    task::{Context, Poll, ready},
};
use tower::Service;

/// Notes the response's status on the invocation's state, for the invocation span.
fn note_status(status: u16) {
    let _ = INVOCATION.try_with(|state| state.http_status.store(status, Ordering::Release));
}

/// The header lambda_http gives a request the invocation's trace header in.
const XRAY_TRACE_HEADER: http::HeaderName = http::HeaderName::from_static("x-amzn-trace-id");

/// Wraps a `lambda_http` handler; see the module docs. `'a` is how long the handler's future may
/// borrow, as in lambda_http's own adapter.
#[derive(Debug, Clone)]
pub(super) struct Recorded<'a, S> {
    inner: S,
    borrow: PhantomData<&'a ()>,
}

impl<S> Recorded<'_, S> {
    pub(super) fn new(inner: S) -> Self {
        Recorded {
            inner,
            borrow: PhantomData,
        }
    }
}

impl<'a, S, R, E> Service<Request> for Recorded<'a, S>
where
    S: Service<Request, Response = R, Error = E>,
    S::Future: Send + 'a,
    R: IntoResponse,
{
    type Response = Response<lambda_http::Body>;
    type Error = E;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, E>> + Send + 'a>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = match answer.await {
                Ok(answer) => answer.into_response(),
                Err(error) => return Err(error),
            };
            let response = response.await;
            note_status(response.status().as_u16());
            Ok(response)
        })
    }
}

/// A streaming `lambda_http` handler as the runtime calls it, as lambda_http's own stream
/// adapter makes one (the request from the event with the Lambda context and the
/// `x-amzn-trace-id` header, `set-cookie` headers moved to the prelude's cookies), noting the
/// status the response starts with. tracekit's own because lambda_http's adapter is `Send`
/// only for `Sync` bodies, which streaming bodies seldom are, and managed concurrency needs it
/// `Send`.
#[derive(Debug, Clone)]
pub(super) struct Streaming<'a, S> {
    inner: S,
    borrow: PhantomData<&'a ()>,
}

impl<S> Streaming<'_, S> {
    pub(super) fn new(inner: S) -> Self {
        Streaming {
            inner,
            borrow: PhantomData,
        }
    }
}

impl<'a, S, B, E> Service<LambdaEvent<LambdaRequest>> for Streaming<'a, S>
where
    S: Service<Request, Response = Response<B>, Error = E>,
    S::Future: Send + 'a,
    B: Body + Unpin + Send + 'static,
    B::Data: Into<Bytes> + Send,
    B::Error: Into<lambda_runtime::Error> + Send + std::fmt::Debug,
{
    type Response = StreamResponse<BodyFrames<B>>;
    type Error = E;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, E>> + Send + 'a>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, event: LambdaEvent<LambdaRequest>) -> Self::Future {
        let LambdaEvent { payload, context } = event;
        let mut request = Request::from(payload);
        if let Some(header) = context
            .xray_trace_id
            .as_deref()
            .and_then(|id| HeaderValue::from_str(id).ok())
        {
            request.headers_mut().insert(XRAY_TRACE_HEADER, header);
        }
        let answer = self.inner.call(request.with_lambda_context(context));
        Box::pin(async move {
            let response = answer.await?;
            let status = response.status();
            note_status(status.as_u16());
            let (parts, body) = response.into_parts();
            let mut headers = parts.headers;
            let cookies = headers
                .get_all(SET_COOKIE)
                .iter()
                .map(|cookie| String::from_utf8_lossy(cookie.as_bytes()).into_owned())
                .collect();
            headers.remove(SET_COOKIE);
            Ok(StreamResponse {
                metadata_prelude: MetadataPrelude {
                    headers,
                    status_code: status,
                    cookies,
                },
                stream: BodyFrames { body },
            })
        })
    }
}

pin_project! {
    /// A response body as the stream of data frames the runtime sends; trailers end it.
    #[derive(Debug)]
    pub(super) struct BodyFrames<B> {
        #[pin]
        body: B,
    }
}

impl<B: Body> Stream for BodyFrames<B> {
    type Item = Result<B::Data, B::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match ready!(self.project().body.poll_frame(cx)) {
            Some(Ok(frame)) => Poll::Ready(frame.into_data().ok().map(Ok)),
            Some(Err(error)) => Poll::Ready(Some(Err(error))),
            None => Poll::Ready(None),
        }
    }
}
