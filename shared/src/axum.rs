//! axum on `lambda_http`: the route the router matched names the invocation span.
//!
//! An `axum::Router` run by [`run_http`](crate::run_http) sees every request through one
//! API Gateway route (often `ANY /{proxy+}`) or none at all (a function URL), so the event alone
//! names the invocation span `GET` or `ANY /{proxy+}`. With [`route_layer`] on the router, the
//! invocation span takes the route the router matched instead: `http.route` = `/orders/{id}` and
//! the name `GET /orders/{id}`, as the HTTP server conventions name a span. A request no route
//! matches keeps the event's name. A handler's 5xx answer is an error on the invocation span, as for
//! every `lambda_http` handler.
//!
//! ```no_run
//! use axum::{Router, extract::Path, routing::get};
//!
//! async fn order(Path(id): Path<String>) -> String {
//!     format!("order {id}")
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), lambda_runtime::Error> {
//!     let telemetry = tracekit::init()?;
//!     let app = Router::new()
//!         .route("/orders/{id}", get(order))
//!         .route_layer(tracekit::axum::route_layer());
//!     tracekit::run_http(&telemetry, app).await
//! }
//! ```

use crate::invocation::{INVOCATION, MatchedRoute};
use axum::extract::MatchedPath;
use std::task::{Context, Poll};

/// The layer for `Router::route_layer`: it runs after routing, where the matched route is known.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteLayer {
    _private: (),
}

/// The layer that notes the matched route for the invocation span; see the module docs.
pub fn route_layer() -> RouteLayer {
    RouteLayer::default()
}

impl<S> tower::Layer<S> for RouteLayer {
    type Service = Routed<S>;

    fn layer(&self, inner: S) -> Routed<S> {
        Routed { inner }
    }
}

/// A routed service that notes its request's matched route, then calls it.
#[derive(Debug, Clone)]
pub struct Routed<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for Routed<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> S::Future {
        if let Some(path) = request.extensions().get::<MatchedPath>() {
            note(request.method(), path.as_str());
        }
        self.inner.call(request)
    }
}

/// Notes `route` for the invocation span (nothing outside an invocation).
fn note(method: &http::Method, route: &str) {
    let matched = MatchedRoute {
        route: route.to_owned(),
        name: format!("{method} {route}"),
    };
    let _ = INVOCATION.try_with(|state| {
        *state
            .http_route
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(matched);
    });
}
