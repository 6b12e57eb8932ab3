//! {{ project_name }}-api: `POST /messages` sends the request's JSON body to the queue
//! (`QUEUE_URL`); `GET /` answers with the service's name. Every invocation is a span under the
//! trace Lambda hands over; the SQS call is a PRODUCER span under it, and the message carries the
//! trace on to {{ project_name }}-worker.

use aws_sdk_sqs::Client;
use serde_json::{Value, json};
use tracekit::lambda_http::{Body, Error, Request, Response, service_fn};
use tracekit::lambda_runtime::Diagnostic;

/// What every invocation shares: made once, before the first.
struct App {
    sqs: Client,
    queue_url: String,
}

/// Why an invocation failed. Lambda is told each variant's name as the `errorType` (its console
/// and logs show it), rather than the Rust type's path.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    /// Sending to the queue failed.
    #[error("sending to the queue failed: {0}")]
    QueueFailed(String),
    /// The response could not be built.
    #[error("the response could not be built: {0}")]
    ResponseFailed(#[from] tracekit::lambda_http::http::Error),
}

impl From<ApiError> for Diagnostic {
    fn from(error: ApiError) -> Diagnostic {
        let error_type = match &error {
            ApiError::QueueFailed(_) => "QueueFailed",
            ApiError::ResponseFailed(_) => "ResponseFailed",
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

async fn handle(app: &App, request: Request) -> Result<Response<Body>, ApiError> {
    match (request.method().as_str(), request.uri().path()) {
        ("GET", "/") => json_response(200, json!({ "service": "{{ project_name }}" })),
        ("POST", "/messages") => {
            let Ok(message) = serde_json::from_slice::<Value>(request.body()) else {
                return json_response(400, json!({ "error": "the body must be JSON" }));
            };
            let sent = app
                .sqs
                .send_message()
                .queue_url(&app.queue_url)
                .message_body(message.to_string())
                .send()
                .await
                .map_err(|error| {
                    ApiError::QueueFailed(
                        aws_sdk_sqs::error::DisplayErrorContext(error).to_string(),
                    )
                })?;
            json_response(202, json!({ "message_id": sent.message_id }))
        }
        _ => json_response(404, json!({ "error": "no such route" })),
    }
}

fn json_response(status: u16, body: Value) -> Result<Response<Body>, ApiError> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let telemetry = tracekit::init()?;
    let sdk = aws_config::load_from_env().await;
    let app = App {
        // One call traces every SDK request this client makes.
        sqs: Client::from_conf(
            tracekit::aws::traced(aws_sdk_sqs::config::Builder::from(&sdk)).build(),
        ),
        queue_url: std::env::var("QUEUE_URL").map_err(|_| "QUEUE_URL must be set")?,
    };
    let app = &app;
    tracekit::run_http(&telemetry, service_fn(move |request| handle(app, request))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_is_told_each_failures_name() {
        let response_failed = Response::builder()
            .status(1000)
            .body(())
            .expect_err("not a status");
        let cases = [
            (ApiError::QueueFailed("no such queue".into()), "QueueFailed"),
            (ApiError::from(response_failed), "ResponseFailed"),
        ];
        for (error, error_type) in cases {
            let message = error.to_string();
            let diagnostic = Diagnostic::from(error);
            assert_eq!(diagnostic.error_type, error_type);
            assert_eq!(diagnostic.error_message, message);
        }
    }
}
