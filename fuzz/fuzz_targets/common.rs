//! What several targets share: the runtime they block on, and, for the targets that drive an
//! invocation through tracekit's layer, Lambda's own trace header and the run that returns the
//! invocation span. Each target takes it with `#[path = "common.rs"] mod common;`.
#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;
use tower::{Layer, Service, ServiceExt, service_fn};
use tracekit::lambda_runtime::{self, LambdaInvocation};
use tracekit::opentelemetry::trace::{SpanId, SpanKind};
use tracekit::opentelemetry_sdk::trace::SpanData;
use tracekit::testing::TestTelemetry;

/// The invocation's `Lambda-Runtime-Trace-Id`, valid, and what it names.
pub const LAMBDA_HEADER: &str =
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
pub const LAMBDA_TRACE: &str = "5759e988bd862e3fe1be46a994272793";
pub const LAMBDA_PARENT: &str = "53995c3f42cd8ad8";

/// One current-thread runtime for every input.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime")
    })
}

/// Runs `invocation` through `test`'s invocation layer (the handler does nothing) and returns its
/// one invocation span, checked to have a parent: a valid Lambda header always gives one.
pub fn invocation_span(test: &TestTelemetry, invocation: LambdaInvocation) -> SpanData {
    let mut service = test.layer().layer(service_fn(|_: LambdaInvocation| async {
        Ok::<(), lambda_runtime::Error>(())
    }));
    runtime().block_on(async {
        let ready = service.ready().await.expect("the layer is ready");
        let _ = ready.call(invocation).await;
        test.telemetry().force_flush(Duration::from_secs(1)).await;
    });
    let mut servers: Vec<SpanData> = test
        .spans()
        .into_iter()
        .filter(|span| span.span_kind == SpanKind::Server)
        .collect();
    assert_eq!(servers.len(), 1, "one invocation span");
    let span = servers.remove(0);
    assert_ne!(
        span.parent_span_id,
        SpanId::INVALID,
        "a valid Lambda header always gives a parent"
    );
    span
}

/// Every span id `values` could name: the 16-hex-digit runs in them, lowercase.
pub fn span_ids<'a>(values: impl IntoIterator<Item = &'a str>) -> HashSet<String> {
    values
        .into_iter()
        .flat_map(|value| value.split(|c: char| !c.is_ascii_hexdigit()))
        .filter(|run| run.len() == 16)
        .map(str::to_ascii_lowercase)
        .collect()
}
