//! A stand-in endpoint that answers from a script: the responses a test chooses (500, 429, a
//! modeled error, then success…), in order, the last one repeated. It records the headers of every
//! request, so a test can read what a client put on the wire (`X-Amzn-Trace-Id`, `traceparent`,
//! `Authorization`).
//!
//! It stands in for an AWS service (speaking whatever protocol the test writes in the bodies;
//! DynamoDB's JSON protocol is the simplest) or for any HTTP service a function calls, such as the
//! example api's payment provider.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use crate::Result;
use crate::http::{Server, read_body, respond};
use crate::util::lock;

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Scripted {
    status: StatusCode,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
}

impl Scripted {
    /// A response with `status` and a JSON `body`.
    pub fn json(status: u16, body: impl Into<String>) -> Scripted {
        Scripted {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            headers: vec![("content-type", "application/x-amz-json-1.0".to_owned())],
            body: Bytes::from(body.into()),
        }
    }

    /// A DynamoDB-style modeled error: `status` with `{"__type": "…#code", "message": …}`.
    pub fn dynamodb_error(status: u16, code: &str) -> Scripted {
        Scripted::json(
            status,
            format!(
                r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"scripted {code}"}}"#
            ),
        )
    }

    /// Adds a response header (for example `x-amzn-requestid`).
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Scripted {
        self.headers.push((name, value.into()));
        self
    }
}

/// What the endpoint received.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// Request path.
    pub path: String,
    /// Request headers.
    pub headers: HeaderMap,
    /// Request body.
    pub body: Bytes,
}

impl ReceivedRequest {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

#[derive(Debug)]
struct State {
    script: Vec<Scripted>,
    received: Vec<ReceivedRequest>,
}

/// The scripted endpoint. Stops when dropped.
#[derive(Debug)]
pub struct ScriptedEndpoint {
    state: Arc<Mutex<State>>,
    server: Server,
}

impl ScriptedEndpoint {
    /// Starts on 127.0.0.1 and a free port; request N gets `script[N]`, or the last entry once the
    /// script runs out. Must be called inside a Tokio runtime.
    pub fn start(script: Vec<Scripted>) -> Result<ScriptedEndpoint> {
        let state = Arc::new(Mutex::new(State {
            script,
            received: Vec::new(),
        }));
        let server = Server::start("scripted AWS endpoint", {
            let state = Arc::clone(&state);
            move |request: hyper::Request<hyper::body::Incoming>| {
                let state = Arc::clone(&state);
                async move {
                    let path = request.uri().path().to_owned();
                    let headers = request.headers().clone();
                    let body = read_body(request).await.unwrap_or_default();
                    let mut state = lock(&state);
                    let index = state
                        .received
                        .len()
                        .min(state.script.len().saturating_sub(1));
                    state.received.push(ReceivedRequest {
                        path,
                        headers,
                        body,
                    });
                    let Some(scripted) = state.script.get(index).cloned() else {
                        return respond(StatusCode::NOT_IMPLEMENTED, "empty script");
                    };
                    let mut response = respond(scripted.status, scripted.body);
                    for (name, value) in scripted.headers {
                        if let Ok(value) = http::HeaderValue::try_from(value) {
                            response.headers_mut().insert(name, value);
                        }
                    }
                    response
                }
            }
        })?;
        Ok(ScriptedEndpoint { state, server })
    }

    /// `http://127.0.0.1:PORT`, for a client's `endpoint_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        lock(&self.state).received.clone()
    }
}
