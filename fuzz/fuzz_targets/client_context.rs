//! A Lambda `Invoke`'s `ClientContext`, read on both sides: the input is the client context's JSON.
//!
//! The called function: lambda_runtime decodes the `Lambda-Runtime-Client-Context` header (what it
//! refuses never reaches tracekit), and the invocation layer reads `custom` under
//! `OTEL_PROPAGATORS=xray-lambda`. The parent is Lambda's segment or the span `custom` names, never
//! one made up; without a context key in `custom` it is Lambda's; a caller is the parent only from
//! another trace, and Lambda's segment is then a link; a malformed one costs at most one warning.
//!
//! The caller: the SDK interceptor adds the W3C context to a user's own `ClientContext` (the input
//! base64-encoded, and the input as it is) on an `Invoke` through a traced client. What it sends is
//! the user's context unchanged, or that context with W3C keys added to `custom` and every key of
//! the user's kept as it was, within Lambda's 3,583 bytes.
#![no_main]

#[path = "common.rs"]
mod common;

use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::base64;
use aws_smithy_types::body::SdkBody;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use common::{LAMBDA_HEADER, LAMBDA_PARENT, LAMBDA_TRACE, invocation_span, runtime, span_ids};
use std::sync::{Arc, Mutex, OnceLock};
use tracekit::Config;
use tracekit::lambda_runtime;
use tracekit::opentelemetry::trace::{SpanId, TraceId};
use tracekit::testing::{FakeInvocation, TestTelemetry};

/// Lambda's bound on the encoded client context.
const MAX_CLIENT_CONTEXT_BYTES: usize = 3_583;
const W3C_KEYS: [&str; 3] = ["traceparent", "tracestate", "baggage"];

#[derive(Debug, Clone, Default)]
struct Capture(Arc<Mutex<Option<Option<String>>>>);

impl HttpConnector for Capture {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let header = request
            .headers()
            .get("x-amz-client-context")
            .map(str::to_owned);
        *self.0.lock().expect("lock") = Some(header);
        let status = StatusCode::try_from(200u16).expect("a status");
        HttpConnectorFuture::ready(Ok(HttpResponse::new(status, SdkBody::from("{}"))))
    }
}

impl HttpClient for Capture {
    fn http_connector(
        &self,
        _: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

fn client() -> &'static (aws_sdk_lambda::Client, Capture) {
    static CLIENT: OnceLock<(aws_sdk_lambda::Client, Capture)> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let capture = Capture::default();
        let config = aws_sdk_lambda::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDFUZZ", "fuzz", None, None, "fuzz"))
            .http_client(capture.clone())
            .interceptor(tracekit::aws::TracingInterceptor::default())
            .build();
        (aws_sdk_lambda::Client::from_conf(config), capture)
    })
}

/// A base64 client context's JSON object, as Lambda reads it.
fn decode(encoded: &str) -> Option<Map<String, Value>> {
    let bytes = base64::decode(encoded).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// The called function's side: `header` is `Lambda-Runtime-Client-Context`.
fn invoked(test: &TestTelemetry, header: &[u8]) {
    // lambda_runtime's own reading of the header (its type is not exported: inferred here).
    let Ok(value) = http::HeaderValue::from_bytes(header) else {
        return;
    };
    let headers = http::HeaderMap::from_iter([
        (
            http::HeaderName::from_static("lambda-runtime-client-context"),
            value,
        ),
        (
            http::HeaderName::from_static("lambda-runtime-deadline-ms"),
            http::HeaderValue::from_static("4102444800000"),
        ),
    ]);
    let Ok(context) = lambda_runtime::Context::new("fuzz", Default::default(), &headers) else {
        return;
    };
    let Some(custom) = context
        .client_context
        .as_ref()
        .map(|client| client.custom.clone())
    else {
        return;
    };
    let mut invocation = FakeInvocation::new(serde_json::json!({}))
        .trace_header(LAMBDA_HEADER)
        .into_invocation();
    invocation.context.client_context = context.client_context;
    let span = invocation_span(test, invocation);
    let lambda_parent = SpanId::from_hex(LAMBDA_PARENT).expect("hex");
    let parent = span.parent_span_id.to_string();
    let named = span_ids(custom.values().map(String::as_str));
    assert!(
        parent == LAMBDA_PARENT || named.contains(&parent),
        "parent {parent} is neither Lambda's nor one the client context names"
    );
    let carries_context = custom.keys().any(|key| {
        key.eq_ignore_ascii_case("traceparent") || key.eq_ignore_ascii_case("x-amzn-trace-id")
    });
    if !carries_context {
        assert_eq!(
            parent, LAMBDA_PARENT,
            "a client context without a trace context key named a parent"
        );
    }
    if span.parent_span_id != lambda_parent {
        let lambda_trace = TraceId::from_hex(LAMBDA_TRACE).expect("hex");
        assert_ne!(
            span.span_context.trace_id(),
            lambda_trace,
            "a caller in Lambda's own trace is not the parent"
        );
        assert!(
            span.links
                .iter()
                .any(|link| link.span_context.span_id() == lambda_parent),
            "Lambda's segment is a link when the caller is the parent"
        );
    }
    let warnings = test
        .log_lines()
        .iter()
        .filter(|line| line.contains("\"level\":\"WARN\""))
        .count();
    assert!(warnings <= 1, "{warnings} warnings for one client context");
}

/// The caller's side: an `Invoke` with the user's own `ClientContext`.
fn invoke(user: &str) {
    let (client, capture) = client();
    *capture.0.lock().expect("lock") = None;
    let _ = runtime().block_on(
        client
            .invoke()
            .function_name("orders")
            .client_context(user)
            .send(),
    );
    let Some(sent) = capture.0.lock().expect("lock").take() else {
        // The SDK refused the request (a header value it cannot send): what tracekit writes is
        // base64, so this is the user's own value, left as it was.
        return;
    };
    let Some(sent) = sent.filter(|sent| sent != user) else {
        return;
    };
    assert!(
        sent.len() <= MAX_CLIENT_CONTEXT_BYTES,
        "{} bytes: over Lambda's bound",
        sent.len()
    );
    let mut ours = decode(&sent).expect("what tracekit writes is a base64 JSON object");
    let mut theirs =
        decode(user).expect("tracekit changed a client context that is not a base64 JSON object");
    let Some(Value::Object(our_custom)) = ours.remove("custom") else {
        panic!("tracekit's client context has no `custom` object");
    };
    let their_custom = match theirs.remove("custom") {
        None => Map::new(),
        Some(Value::Object(custom)) => custom,
        Some(other) => panic!("tracekit replaced a `custom` that is not an object: {other}"),
    };
    assert_eq!(ours, theirs, "a key of the user's client context changed");
    for (key, value) in &their_custom {
        assert_eq!(
            our_custom.get(key),
            Some(value),
            "the user's `custom.{key}` changed"
        );
    }
    for key in our_custom
        .keys()
        .filter(|key| !their_custom.contains_key(*key))
    {
        assert!(
            W3C_KEYS.contains(&key.as_str()),
            "tracekit added `custom.{key}`"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let config = Config::from_lookup(|name| match name {
        "OTEL_PROPAGATORS" => Some("tracecontext,baggage,xray-lambda".to_owned()),
        // Every invocation recorded, whatever the caller's sampled flag, so its parent is seen.
        "OTEL_TRACES_SAMPLER" => Some("always_on".to_owned()),
        _ => None,
    })
    .expect("a valid configuration");
    let test = TestTelemetry::with_config(config);
    invoked(&test, data);
    invoke(&base64::encode(data));
    if let Ok(raw) = std::str::from_utf8(data) {
        invoke(raw);
    }
});
