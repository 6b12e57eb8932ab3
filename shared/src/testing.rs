//! Test doubles for handlers traced with tracekit (feature `testing`).
//!
//! [`TestTelemetry`] installs tracekit's subscriber for the current thread with an in-memory exporter,
//! and [`FakeInvocation`] builds what the Lambda runtime would hand a handler or the invocation layer:
//! a chosen trace header, deadline and ARN. Use them with `#[tokio::test]` (a current-thread runtime),
//! since the subscriber is installed for the calling thread only.
//!
//! ```
//! use tower::{Layer, Service, ServiceExt, service_fn};
//! use tracekit::testing::{FakeInvocation, TestTelemetry};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let test = TestTelemetry::new();
//! let mut service = test.layer().layer(service_fn(
//!     |_: lambda_runtime::LambdaInvocation| async { Ok::<(), lambda_runtime::Error>(()) },
//! ));
//! let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
//! let invocation = FakeInvocation::new(serde_json::json!({})).trace_header(header);
//! service.ready().await.unwrap().call(invocation.into_invocation()).await.unwrap();
//! let spans = test.spans();
//! assert_eq!(spans.len(), 1);
//! assert_eq!(spans[0].parent_span_id.to_string(), "53995c3f42cd8ad8");
//! # }
//! ```

use crate::{
    InvocationLayer,
    config::{Config, ExporterConfig},
    flush::{
        Flusher,
        pack::{self, EncodedResource, Limits, Request},
    },
    future::TracedHandler,
    telemetry::{Parts, Telemetry, resource},
};
use lambda_runtime::{Context, LambdaEvent, LambdaInvocation};
use opentelemetry_sdk::{
    Resource,
    trace::{InMemorySpanExporter, SpanData},
};
use serde::{Serialize, de::DeserializeOwned};
use std::{
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

/// tracekit's subscriber with an in-memory exporter, installed for the current thread until dropped.
#[derive(Debug)]
pub struct TestTelemetry {
    telemetry: Telemetry,
    exporter: InMemorySpanExporter,
    /// With [`TestTelemetry::encoding`]: the OTLP requests, in place of `exporter`'s spans.
    requests: Option<Arc<Mutex<Vec<Vec<u8>>>>>,
    logs: CapturedLogs,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Default for TestTelemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl TestTelemetry {
    /// Default configuration, whatever the process environment says.
    pub fn new() -> Self {
        let config =
            Config::from_lookup(|_| None).unwrap_or_else(|_| unreachable!("defaults are valid"));
        Self::with_config(config)
    }

    /// A chosen configuration; its exporter is replaced by the in-memory one. An `amortized` flush
    /// strategy is in force as in a sandbox where tracekit's extension has registered.
    pub fn with_config(config: Config) -> Self {
        Self::build(config, false)
    }

    /// A chosen configuration, exported as the agent and OTLP/HTTP paths export (spans encoded as
    /// they end, into OTLP requests kept in memory): read them back with
    /// [`otlp_spans`](Self::otlp_spans); [`spans`](Self::spans) has none.
    pub fn encoding(config: Config) -> Self {
        Self::build(config, true)
    }

    fn build(mut config: Config, encoding: bool) -> Self {
        config.exporter = ExporterConfig::None;
        let exporter = InMemorySpanExporter::default();
        let resource = resource(&config);
        let requests = encoding.then(Arc::default);
        let (flusher, processor) = match &requests {
            Some(requests) => Flusher::in_memory_otlp(Arc::clone(requests), &resource),
            None => Flusher::in_memory(exporter.clone(), &resource),
        };
        let parts = Parts::new(config, resource, flusher, processor);
        // The propagator is process-wide (SDK calls inject through it); the subscriber stays per thread.
        parts.install_propagator();
        parts.telemetry.set_amortized(true);
        let logs = CapturedLogs::default();
        let guard = tracing::dispatcher::set_default(&parts.dispatch(logs.clone()));
        TestTelemetry {
            telemetry: parts.telemetry,
            exporter,
            requests,
            logs,
            _guard: guard,
        }
    }

    /// The handle on this test's tracing (flush, configuration).
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// The invocation layer, to wrap a stand-in for the runtime's invocation service (see the
    /// module example); in a function, [`run`](crate::run) and [`runtime`](crate::runtime) add it.
    pub fn layer(&self) -> InvocationLayer {
        crate::lambda::invocation_layer(&self.telemetry)
    }

    /// A handler wrapped as tracekit wraps it, so that its errors reach the invocation span of
    /// [`layer`](Self::layer).
    pub fn traced<S>(&self, handler: S) -> TracedHandler<S> {
        crate::lambda::traced(handler)
    }

    /// Every span exported so far (the invocation layer flushes after each invocation).
    pub fn spans(&self) -> Vec<SpanData> {
        self.exporter.get_finished_spans().unwrap_or_default()
    }

    /// Every span exported so far as OTLP (with [`encoding`](Self::encoding)), decoded from the
    /// requests.
    pub fn otlp_spans(&self) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use prost::Message as _;
        let Some(requests) = &self.requests else {
            return Vec::new();
        };
        let requests = requests.lock().unwrap_or_else(|p| p.into_inner());
        requests
            .iter()
            .flat_map(|request| {
                ExportTraceServiceRequest::decode(request.as_slice())
                    .expect("tracekit's requests decode")
                    .resource_spans
            })
            .flat_map(|resource| resource.scope_spans)
            .flat_map(|scope| scope.spans)
            .collect()
    }

    /// Forgets the spans exported so far.
    pub fn reset(&self) {
        self.exporter.reset();
        if let Some(requests) = &self.requests {
            requests.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }

    /// The log lines written so far (JSON by default, as in Lambda).
    pub fn log_lines(&self) -> Vec<String> {
        let bytes = self
            .logs
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The log lines written at WARN so far: what tracekit's own tests count its warnings by.
    #[cfg(test)]
    pub(crate) fn warnings(&self) -> Vec<String> {
        self.log_lines()
            .into_iter()
            .filter(|line| line.contains(r#""level":"WARN""#))
            .collect()
    }

    /// How many flushes have started.
    pub fn flush_count(&self) -> u64 {
        self.telemetry.flush_count()
    }
}

/// Log output kept in memory.
#[derive(Debug, Clone, Default)]
pub(crate) struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Everything written so far.
    #[cfg(test)]
    pub(crate) fn text(&self) -> String {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A fake invocation: the payload and the headers Lambda's Runtime API would send with it.
#[derive(Debug, Clone)]
pub struct FakeInvocation {
    payload: Vec<u8>,
    request_id: String,
    trace_header: Option<String>,
    deadline_ms: u64,
    invoked_arn: String,
    function_name: String,
}

impl FakeInvocation {
    /// An invocation of function `test-function` with `payload`, 30 s before its deadline.
    pub fn new(payload: impl Serialize) -> Self {
        Self::raw(serde_json::to_vec(&payload).unwrap_or_default())
    }

    /// An invocation with a raw (possibly malformed) payload.
    pub fn raw(payload: impl Into<Vec<u8>>) -> Self {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        FakeInvocation {
            payload: payload.into(),
            request_id: "8476a536-e9f4-11e8-9739-2dfe598c3fcd".to_owned(),
            trace_header: None,
            deadline_ms: now_ms + 30_000,
            invoked_arn: "arn:aws:lambda:us-east-1:123456789012:function:test-function".to_owned(),
            function_name: "test-function".to_owned(),
        }
    }

    /// The `Lambda-Runtime-Trace-Id` header.
    pub fn trace_header(mut self, header: impl Into<String>) -> Self {
        self.trace_header = Some(header.into());
        self
    }

    /// The deadline, in milliseconds since the epoch.
    pub fn deadline_ms(mut self, deadline_ms: u64) -> Self {
        self.deadline_ms = deadline_ms;
        self
    }

    /// The invoked ARN (may carry an alias).
    pub fn invoked_arn(mut self, arn: impl Into<String>) -> Self {
        self.invoked_arn = arn.into();
        self
    }

    /// The request id.
    pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = request_id.into();
        self
    }

    /// The function name (`AWS_LAMBDA_FUNCTION_NAME`).
    pub fn function_name(mut self, name: impl Into<String>) -> Self {
        self.function_name = name.into();
        self
    }

    /// The invocation context a handler receives.
    pub fn context(&self) -> Context {
        let env_config = lambda_runtime::Config {
            function_name: self.function_name.clone(),
            memory: 128,
            version: "$LATEST".to_owned(),
            ..Default::default()
        };
        let mut context = Context::default();
        context.request_id = self.request_id.clone();
        context.deadline = self.deadline_ms;
        context.invoked_function_arn = self.invoked_arn.clone();
        context.xray_trace_id = self.trace_header.clone();
        context.env_config = Arc::new(env_config);
        context
    }

    /// What the invocation layer receives from the runtime.
    pub fn into_invocation(self) -> LambdaInvocation {
        let (parts, ()) = http::Response::new(()).into_parts();
        LambdaInvocation {
            parts,
            context: self.context(),
            body: self.payload.into(),
        }
    }

    /// Sends the invocation to `service` (the runtime's service stack, e.g. wrapped in
    /// [`TestTelemetry::layer`]) once it is ready, and waits for its answer.
    pub async fn send_to<S>(self, service: &mut S) -> Result<S::Response, S::Error>
    where
        S: tower::Service<LambdaInvocation>,
    {
        use tower::ServiceExt as _;
        service.ready().await?.call(self.into_invocation()).await
    }

    /// What a handler receives, or the payload's deserialization error.
    pub fn into_event<T: DeserializeOwned>(self) -> Result<LambdaEvent<T>, serde_json::Error> {
        let payload = serde_json::from_slice(&self.payload)?;
        Ok(LambdaEvent::new(payload, self.context()))
    }
}

/// tracekit's OTLP protobuf encoder as its exporters run it, for the benchmarks
/// (`shared/benches/spans.rs`): the resource encoded once, as the exporters' `set_resource` does,
/// then each batch packed and encoded as the OTLP exporter's `http/protobuf` path does.
#[doc(hidden)]
#[derive(Debug)]
pub struct OtlpEncoder(EncodedResource);

impl OtlpEncoder {
    /// Encodes `resource`'s part of every request.
    pub fn new(resource: &Resource) -> Self {
        OtlpEncoder(EncodedResource::new(resource))
    }

    /// `spans` as one `ExportTraceServiceRequest`, as opentelemetry-otlp sends a batch: without
    /// limits, so that the packer makes one request whatever its size.
    pub fn encode(&self, spans: &[SpanData]) -> Vec<u8> {
        const ONE_REQUEST: Limits = Limits {
            max_bytes: usize::MAX,
            max_spans: usize::MAX,
            max_span_bytes: usize::MAX,
        };
        pack::pack(spans, &self.0, ONE_REQUEST)
            .requests
            .first()
            .map(Request::protobuf)
            .unwrap_or_default()
    }
}

/// What the interceptor adds to an SNS `Publish`'s message attributes: the current span's W3C
/// context, as `tracekit::sqs::inject` does for SQS. For the benchmarks (`shared/benches/aws_sdk.rs`).
#[doc(hidden)]
#[cfg(feature = "sns")]
pub fn sns_inject(
    attributes: &mut std::collections::HashMap<String, aws_sdk_sns::types::MessageAttributeValue>,
) {
    use crate::OpenTelemetrySpanExt as _;
    let w3c = crate::aws::w3c_context(&tracing::Span::current().context());
    crate::aws::sns::inject(attributes, &w3c);
}

/// What the interceptor does to a `PutEvents`'s entries (`aws::eventbridge::record_and_inject`,
/// without the span's attributes): the current span's X-Ray header in each entry's `TraceHeader`,
/// unless the user set one. For the benchmarks (`shared/benches/aws_sdk.rs`).
#[doc(hidden)]
#[cfg(feature = "eventbridge")]
pub fn eventbridge_inject(entries: &mut [aws_sdk_eventbridge::types::PutEventsRequestEntry]) {
    use crate::OpenTelemetrySpanExt as _;
    use opentelemetry::trace::TraceContextExt as _;
    let cx = tracing::Span::current().context();
    let header = crate::propagation::xray_header_value(cx.span().span_context());
    if let Some(header) = header.as_deref() {
        crate::aws::eventbridge::inject(entries, header);
    }
}
