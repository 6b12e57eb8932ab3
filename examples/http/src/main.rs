//! An HTTP function behind API Gateway (REST or HTTP API), an ALB or a function URL. `run_http` adds
//! the method, the route, the path and the response's status to the invocation span; a 5xx marks it
//! as an error.

use tracekit::lambda_http::{Body, Error, Request, RequestExt, Response, service_fn};

async fn handler(request: Request) -> Result<Response<Body>, Error> {
    let Some(name) = request
        .query_string_parameters_ref()
        .and_then(|query| query.first("name"))
        .map(str::to_owned)
    else {
        return Ok(Response::builder()
            .status(400)
            .body(Body::from("a `name` query parameter is needed"))?);
    };
    tracekit::tracing::info!(name_length = name.len(), "greeting");
    Ok(Response::builder()
        .header("content-type", "text/plain")
        .body(Body::from(format!("hello, {name}")))?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = tracekit::init()?;
    tracekit::run_http(&telemetry, service_fn(handler)).await
}
