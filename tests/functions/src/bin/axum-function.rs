//! An `axum::Router` run by `tracekit::run_http`, with `tracekit::axum::route_layer`:
//!
//! - `GET /orders/{id}` answers 200 with `order {id}`, or 500 for the id `boom`;
//! - `POST /orders` answers 201;
//! - anything else is the router's 404 (no route matched).

use axum::{Router, extract::Path, http::StatusCode, routing::get};

async fn order(Path(id): Path<String>) -> (StatusCode, String) {
    let _render = tracing::info_span!("render").entered();
    if id == "boom" {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the order store failed".to_owned(),
        )
    } else {
        (StatusCode::OK, format!("order {id}"))
    }
}

#[tokio::main]
async fn main() -> Result<(), tracekit::lambda_runtime::Error> {
    let telemetry = tracekit::init()?;
    let app = Router::new()
        .route("/orders/{id}", get(order))
        .route(
            "/orders",
            axum::routing::post(|| async { StatusCode::CREATED }),
        )
        .route_layer(tracekit::axum::route_layer());
    tracekit::run_http(&telemetry, app).await
}
