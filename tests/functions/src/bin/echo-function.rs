//! A plain `lambda_runtime` function (no tracekit) for testing the harness itself.
//!
//! - `{"fail": "message"}` returns an error of type `EchoError` with that message;
//! - `{"panic": true}` panics inside the handler;
//! - `{"context": true}` returns the invocation context the runtime built from the `/next` headers;
//! - anything else is echoed back.
//!
//! Each invocation logs `echo request_id=<id>` to stdout.

use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn, tracing};
use serde_json::{Value, json};

/// The error a `{"fail": ...}` payload asks for.
#[derive(Debug)]
struct EchoError(String);

impl From<EchoError> for Diagnostic {
    fn from(error: EchoError) -> Diagnostic {
        Diagnostic {
            error_type: "EchoError".to_owned(),
            error_message: error.0,
        }
    }
}

async fn handler(event: LambdaEvent<Value>) -> Result<Value, EchoError> {
    let (payload, context) = event.into_parts();
    tracing::info!(request_id = %context.request_id, "echo");
    if let Some(message) = payload.get("fail").and_then(Value::as_str) {
        return Err(EchoError(message.to_owned()));
    }
    if payload.get("panic") == Some(&Value::Bool(true)) {
        panic!("echo-function was asked to panic");
    }
    if payload.get("context") == Some(&Value::Bool(true)) {
        return Ok(json!({
            "request_id": context.request_id,
            "deadline": context.deadline,
            "invoked_function_arn": context.invoked_function_arn,
            "xray_trace_id": context.xray_trace_id,
            "function_name": context.env_config.function_name,
        }));
    }
    Ok(payload)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(handler)).await
}
