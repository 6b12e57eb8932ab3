//! {{ project_name }}-api: `POST /messages` sends the request's JSON body to the queue
//! (`QUEUE_URL`); `GET /` answers with the service's name. Every invocation is a span under the
//! trace Lambda hands over; the SQS call is a PRODUCER span under it, and the message carries the
//! trace on to {{ project_name }}-worker.

use aws_sdk_sqs::Client;
use serde_json::{Value, json};
use tracekit::lambda_http::{Body, Error, Request, Response, service_fn};

/// What every invocation shares: made once, before the first.
struct App {
    sqs: Client,
    queue_url: String,
}

async fn handle(app: &App, request: Request) -> Result<Response<Body>, Error> {
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
                .await?;
            json_response(202, json!({ "message_id": sent.message_id }))
        }
        _ => json_response(404, json!({ "error": "no such route" })),
    }
}

fn json_response(status: u16, body: Value) -> Result<Response<Body>, Error> {
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
        sqs: Client::from_conf(tracekit::aws::traced(aws_sdk_sqs::config::Builder::from(&sdk)).build()),
        queue_url: std::env::var("QUEUE_URL").map_err(|_| "QUEUE_URL must be set")?,
    };
    let app = &app;
    tracekit::run_http(&telemetry, service_fn(move |request| handle(app, request))).await
}
