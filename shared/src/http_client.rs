//! Outbound HTTP beyond the AWS SDK: every request a CLIENT span, with the trace context in its
//! headers.
//!
//! Two ways in, one span: `reqwest_client` (feature `reqwest`) builds a reqwest client through
//! reqwest-middleware, and `TraceMiddleware` joins a client that has other middleware; [`layer`]
//! wraps any tower service of `http::Request`s (hyper-util's client, a tower stack of the user's
//! own). Each request gets a CLIENT span named after its method, with the HTTP client
//! conventions' attributes (`http.request.method`, `server.address`, `server.port`, `url.scheme`,
//! `url.full` with every query value replaced by `REDACTED` and no user info,
//! `http.response.status_code`, `http.request.resend_count` for a retried attempt); a 4xx or 5xx
//! answer, or a failed request, is an error with `error.type` (the status code, or the error's
//! type). X-Ray draws a 4xx as an error, a 429 as a throttle and a 5xx as a fault, as for SDK
//! calls.
//!
//! The request carries the span's context in the headers the propagators of `OTEL_PROPAGATORS`
//! write (by default `traceparent`, `tracestate`, `baggage` and `X-Amzn-Trace-Id`, so X-Ray draws
//! the edge); a header the request already has is never overwritten. Bodies are never recorded.
//!
//! ```no_run
//! use http_body_util::Empty;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
//! let mut client = ServiceBuilder::new()
//!     .layer(tracekit::http_client::layer())
//!     .service(client);
//! let request = http::Request::get("http://payments.internal/charges/42").body(Empty::new())?;
//! let response = client.ready().await?.call(request).await?;
//! # let _ = response;
//! # Ok(())
//! # }
//! ```

use crate::OpenTelemetrySpanExt;
use opentelemetry::propagation::Injector;
use opentelemetry_semantic_conventions::attribute as semconv;
use pin_project_lite::pin_project;
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tracing::Span;

#[cfg(feature = "reqwest")]
mod reqwest;
#[cfg(feature = "reqwest")]
pub use self::reqwest::{TraceMiddleware, reqwest_client};
#[cfg(feature = "reqwest")]
pub use reqwest_middleware::ClientWithMiddleware;

/// What replaces every query value in `url.full`, as the HTTP conventions suggest for values that
/// may be secrets.
pub use crate::redaction::REDACTED;

/// The layer: [`Traced`] around the service it wraps.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer {
    _private: (),
}

/// The layer every outbound request should go through; see the module docs.
pub fn layer() -> TraceLayer {
    TraceLayer::default()
}

impl<S> tower::Layer<S> for TraceLayer {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Traced<S> {
        Traced { inner }
    }
}

/// A service of `http::Request`s whose every call is a CLIENT span with the context in its headers.
#[derive(Debug, Clone)]
pub struct Traced<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for Traced<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Error: Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TracedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if crate::telemetry::disabled() {
            return TracedFuture {
                inner: self.inner.call(request),
                span: Span::none(),
            };
        }
        let span = client_span(request.method(), Target::of_uri(request.uri()));
        let cx = span.context();
        crate::propagation::inject(&cx, &mut KeepUserHeaders(request.headers_mut()));
        let inner = span.in_scope(|| self.inner.call(request));
        TracedFuture { inner, span }
    }
}

pin_project! {
    /// The response future of [`Traced`]: the span ends when the response head arrives (or the
    /// request fails).
    pub struct TracedFuture<F> {
        #[pin]
        inner: F,
        span: Span,
    }
}

impl<F, R, E> Future for TracedFuture<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
    E: Display,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let outcome = {
            let _entered = this.span.enter();
            ready!(this.inner.poll(cx))
        };
        let span = std::mem::replace(this.span, Span::none());
        match &outcome {
            Ok(response) => record_status(&span, response.status().as_u16()),
            Err(error) => {
                let error_type = error_type_name::<E>();
                crate::error::record(&span, error_type, &error.to_string());
            }
        }
        Poll::Ready(outcome)
    }
}

/// Where a request goes, as the span records it: from an `http::Uri` or (with reqwest) a `Url`.
pub(crate) struct Target<'a> {
    pub(crate) scheme: Option<&'a str>,
    pub(crate) host: Option<&'a str>,
    /// The port, explicit or the scheme's default.
    pub(crate) port: Option<u16>,
    /// `url.full`, already redacted.
    pub(crate) url_full: String,
}

impl<'a> Target<'a> {
    fn of_uri(uri: &'a http::Uri) -> Target<'a> {
        let scheme = uri.scheme_str();
        Target {
            scheme,
            host: uri.host(),
            port: uri.port_u16().or(match scheme {
                Some("https") => Some(443),
                Some("http") => Some(80),
                _ => None,
            }),
            url_full: redacted_url(uri),
        }
    }
}

/// The CLIENT span of a request to `target`, before it is sent.
pub(crate) fn client_span(method: &http::Method, target: Target<'_>) -> Span {
    let (method, original) = known_method(method);
    let span = tracing::info_span!(
        target: "tracekit::http_client",
        "http_client",
        otel.name = if method == OTHER { "HTTP" } else { method },
        otel.kind = "client",
        { semconv::HTTP_REQUEST_METHOD } = method,
        { semconv::URL_FULL } = target.url_full,
    );
    if let Some(original) = original {
        span.set_attribute(semconv::HTTP_REQUEST_METHOD_ORIGINAL, original.to_owned());
    }
    if let Some(host) = target.host {
        span.set_attribute(semconv::SERVER_ADDRESS, host.to_owned());
    }
    if let Some(scheme) = target.scheme {
        span.set_attribute(semconv::URL_SCHEME, scheme.to_owned());
    }
    if let Some(port) = target.port {
        span.set_attribute(semconv::SERVER_PORT, i64::from(port));
    }
    span
}

/// `http.response.status_code`, and for a 4xx or 5xx the error the client conventions make of it.
pub(crate) fn record_status(span: &Span, status: u16) {
    span.set_attribute(semconv::HTTP_RESPONSE_STATUS_CODE, i64::from(status));
    if status >= 400 {
        let code = status.to_string();
        crate::error::record(span, &code, &format!("HTTP {status}"));
    }
}

/// `http.request.method` for the conventions' known methods; `_OTHER` and the original otherwise.
const OTHER: &str = "_OTHER";

fn known_method(method: &http::Method) -> (&'static str, Option<&str>) {
    let known = match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::PATCH => "PATCH",
        http::Method::CONNECT => "CONNECT",
        http::Method::TRACE => "TRACE",
        _ => return (OTHER, Some(method.as_str())),
    };
    (known, None)
}

/// `url.full`: scheme, host, port and path as sent; no user info; each query value `REDACTED`
/// (the keys stay, so the span still says what was asked).
pub fn redacted_url(uri: &http::Uri) -> String {
    let host_port = uri.authority().map(|authority| {
        authority
            .as_str()
            .rsplit_once('@')
            .map_or(authority.as_str(), |(_, host)| host)
    });
    redacted(uri.scheme_str(), host_port, uri.path(), uri.query())
}

/// [`redacted_url`] from a URL's parts.
pub(crate) fn redacted(
    scheme: Option<&str>,
    host_port: Option<&str>,
    path: &str,
    query: Option<&str>,
) -> String {
    let mut url = String::with_capacity(
        scheme.map_or(0, |s| s.len() + 3)
            + host_port.map_or(0, str::len)
            + path.len()
            + query.map_or(0, |q| q.len() + 1),
    );
    if let Some(scheme) = scheme {
        url.push_str(scheme);
        url.push_str("://");
    }
    if let Some(host_port) = host_port {
        url.push_str(host_port);
    }
    url.push_str(path);
    if let Some(query) = query {
        url.push('?');
        for (index, pair) in query.split('&').enumerate() {
            if index > 0 {
                url.push('&');
            }
            match pair.split_once('=') {
                Some((key, _)) => {
                    url.push_str(key);
                    url.push('=');
                    url.push_str(REDACTED);
                }
                None => url.push_str(pair),
            }
        }
    }
    url
}

/// `E`'s path without its generic arguments (`hyper_util::client::legacy::Error`): the
/// `error.type` of a request that failed before an answer, a fully qualified name as the
/// conventions ask.
pub(crate) fn error_type_name<E>() -> &'static str {
    let name = std::any::type_name::<E>();
    name.split('<').next().unwrap_or(name)
}

/// Writes the propagators' headers, leaving every header the request already has as it is.
pub(crate) struct KeepUserHeaders<'a>(pub(crate) &'a mut http::HeaderMap);

impl Injector for KeepUserHeaders<'_> {
    fn set(&mut self, key: &str, value: String) {
        let Ok(name) = http::HeaderName::try_from(key) else {
            return;
        };
        if self.0.contains_key(&name) {
            return;
        }
        if let Ok(value) = http::HeaderValue::try_from(value) {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_full_keeps_the_query_keys_and_drops_their_values_and_the_user_info() {
        // (uri, url.full)
        let cases = [
            (
                "https://user:secret@pay.example.com:8443/charges?card=4242&amount=9&flag",
                "https://pay.example.com:8443/charges?card=REDACTED&amount=REDACTED&flag",
            ),
            ("http://127.0.0.1/", "http://127.0.0.1/"),
            ("http://h/p?=x", "http://h/p?=REDACTED"),
            ("/relative?a=1", "/relative?a=REDACTED"),
        ];
        for (uri, expected) in cases {
            let uri: http::Uri = uri.parse().expect("a URI");
            assert_eq!(redacted_url(&uri), expected);
        }
    }

    #[test]
    fn unknown_methods_are_other_with_the_original_kept() {
        assert_eq!(known_method(&http::Method::PATCH), ("PATCH", None));
        let purge = http::Method::from_bytes(b"PURGE").expect("a method");
        assert_eq!(known_method(&purge), (OTHER, Some("PURGE")));
    }

    #[test]
    fn a_users_header_is_never_overwritten() {
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", http::HeaderValue::from_static("mine"));
        let mut injector = KeepUserHeaders(&mut headers);
        injector.set("traceparent", "00-theirs".into());
        injector.set("x-amzn-trace-id", "Root=1-x".into());
        injector.set("bad header", "x".into());
        assert_eq!(headers["traceparent"], "mine");
        assert_eq!(headers["x-amzn-trace-id"], "Root=1-x");
        assert_eq!(headers.len(), 2);
    }

    #[test]
    fn the_error_type_of_a_failed_request_is_its_errors_type_name() {
        assert_eq!(error_type_name::<std::io::Error>(), "std::io::error::Error");
        assert_eq!(
            error_type_name::<Box<dyn std::error::Error>>(),
            "alloc::boxed::Box"
        );
    }
}
