//! A tracekit HTTP function for each of tracekit's `lambda_http` entry points, chosen by
//! `TRACED_FUNCTION_ENTRY`: `run_http` (the default), `run_http_concurrent`, `run_http_streaming`,
//! `run_http_streaming_concurrent`. It needs nothing but the re-exports of tracekit.
//!
//! - `GET /status/{code}` answers that status, with the body `status {code}` (streamed in three
//!   chunks, 20 ms apart, by the streaming entry points);
//! - `GET /fail` returns an error of type `Refused`;
//! - each request opens one child span, `render`;
//! - every answer sets the cookie `session=1`, and a request's `Authorization` header is answered
//!   back in the response's own (as a token endpoint answers a credential).

use bytes::Bytes;
use http_body_util::StreamBody;
use std::{convert::Infallible, time::Duration};
use tracekit::lambda_http::{Body, Request, Response, http::StatusCode, service_fn};
use tracekit::lambda_runtime::{Diagnostic, Error};

/// The error `GET /fail` answers with.
#[derive(Debug)]
struct Refused;

impl From<Refused> for Diagnostic {
    fn from(_: Refused) -> Diagnostic {
        Diagnostic {
            error_type: "Refused".to_owned(),
            error_message: "the request was refused".to_owned(),
        }
    }
}

/// The status the path asks for, or the refusal.
fn status_of(request: &Request) -> Result<StatusCode, Refused> {
    let _render = tracing::info_span!("render").entered();
    let path = request.uri().path();
    if path == "/fail" {
        return Err(Refused);
    }
    let code = path
        .strip_prefix("/status/")
        .and_then(|code| code.parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::OK);
    Ok(code)
}

async fn buffered(request: Request) -> Result<Response<Body>, Refused> {
    let status = status_of(&request)?;
    let mut response = Response::builder()
        .status(status)
        .header("set-cookie", "session=1");
    if let Some(credential) = request.headers().get("authorization") {
        response = response.header("authorization", credential);
    }
    Ok(response
        .body(Body::from(format!("status {}", status.as_u16())))
        .unwrap_or_default())
}

type Chunks = StreamBody<
    futures_util::stream::BoxStream<'static, Result<http_body::Frame<Bytes>, Infallible>>,
>;

async fn streamed(request: Request) -> Result<Response<Chunks>, Refused> {
    let status = status_of(&request)?;
    let chunks = ["status", " ", status.as_str()]
        .map(|chunk| Bytes::copy_from_slice(chunk.as_bytes()))
        .to_vec();
    let frames = futures_util::stream::unfold(chunks.into_iter(), |mut chunks| async move {
        let chunk = chunks.next()?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        Some((Ok(http_body::Frame::data(chunk)), chunks))
    });
    let body = StreamBody::new(Box::pin(frames) as futures_util::stream::BoxStream<'static, _>);
    Ok(Response::builder()
        .status(status)
        .header("set-cookie", "session=1")
        .body(body)
        .unwrap_or_else(|_| unreachable!("a valid response")))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = tracekit::init()?;
    let entry = std::env::var("TRACED_FUNCTION_ENTRY").unwrap_or_default();
    match entry.as_str() {
        "run_http_concurrent" => {
            tracekit::run_http_concurrent(&telemetry, service_fn(buffered)).await
        }
        "run_http_streaming" => {
            tracekit::run_http_streaming(&telemetry, service_fn(streamed)).await
        }
        "run_http_streaming_concurrent" => {
            tracekit::run_http_streaming_concurrent(&telemetry, service_fn(streamed)).await
        }
        _ => tracekit::run_http(&telemetry, service_fn(buffered)).await,
    }
}
