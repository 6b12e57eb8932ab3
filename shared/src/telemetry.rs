//! The tracer provider, the `tracing` subscriber, and the handle that flushes them.
//!
//! [`init`] builds everything from the environment ([`Config::from_env`]) and does no network I/O: the
//! exporter connects at the first flush, after the first response.

use crate::{
    app_signals::{self, AlwaysRecord},
    config::{Config, ConfigError, FlushStrategy, LogFormat, RootSampler, SamplerConfig},
    flush::{ExporterError, FlushReport, Flusher},
    lambda::InvocationLayer,
    log_format::JsonFormat,
    propagation,
};
use opentelemetry::{KeyValue, trace::TracerProvider as _};
use opentelemetry_aws::{detector::LambdaResourceDetector, trace::XrayIdGenerator};
use opentelemetry_sdk::{
    Resource,
    trace::{Sampler, SdkTracerProvider},
};
use opentelemetry_semantic_conventions::resource as semres;
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tracing::{Subscriber, level_filters::LevelFilter};
use tracing_subscriber::{Layer as _, filter::Targets, layer::SubscriberExt, registry::LookupSpan};

mod one_filter;
mod quiet;

use one_filter::{Gate, SpansAndLogs};

/// Instrumentation scope of tracekit's spans.
pub(crate) const SCOPE: &str = "tracekit";

/// `cloud.platform` for Lambda: X-Ray's translators need it for the origin `AWS::Lambda::Function`.
const CLOUD_PLATFORM_AWS_LAMBDA: &str = "aws_lambda";
const CLOUD_PROVIDER_AWS: &str = "aws";

/// Why [`init`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// A setting is present but not understood.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The exporter could not be built.
    #[error(transparent)]
    Exporter(#[from] ExporterError),
    /// Another global `tracing` subscriber is already installed.
    #[error("a global tracing subscriber is already installed: {0}")]
    Subscriber(#[source] tracing::subscriber::SetGlobalDefaultError),
}

/// Builds tracing from the environment and installs it globally (the `tracing` subscriber, the
/// OpenTelemetry tracer provider and the text-map propagator).
///
/// Call it once in `main`, before the runtime starts.
pub fn init() -> Result<Telemetry, InitError> {
    init_with(Config::from_env()?)
}

/// [`init`] with a configuration built in code.
pub fn init_with(config: Config) -> Result<Telemetry, InitError> {
    let resource = resource(&config);
    let (flusher, processor) = Flusher::new(&config, &resource)?;
    let parts = Parts::new(config, resource, flusher, processor);
    let subscriber = parts.subscriber();
    tracing::subscriber::set_global_default(subscriber).map_err(InitError::Subscriber)?;
    parts.install_globals();
    Ok(parts.telemetry)
}

/// What an init builds, before it is installed (shared with the `testing` module).
pub(crate) struct Parts {
    pub(crate) telemetry: Telemetry,
    log_filter: String,
    log_format: LogFormat,
}

impl Parts {
    pub(crate) fn new(
        config: Config,
        resource: Resource,
        flusher: Flusher,
        processor: crate::flush::LambdaSpanProcessor,
    ) -> Self {
        let builder = SdkTracerProvider::builder().with_id_generator(XrayIdGenerator::default());
        let builder = if app_signals::records_unsampled(&config) {
            builder.with_sampler(AlwaysRecord(sampler(&config.sampler)))
        } else {
            builder.with_sampler(sampler(&config.sampler))
        };
        let provider = builder
            .with_resource(resource)
            .with_span_processor(processor)
            .build();
        let telemetry = Telemetry {
            inner: Arc::new(Inner {
                provider,
                flusher,
                config: config.clone(),
                amortize: AtomicBool::new(false),
            }),
        };
        Parts {
            telemetry,
            log_filter: config.log_filter,
            log_format: config.log_format,
        }
    }

    pub(crate) fn install_globals(&self) {
        opentelemetry::global::set_tracer_provider(self.telemetry.inner.provider.clone());
        self.install_propagator();
    }

    /// The global text-map propagator, through which SDK calls and [`propagation::inject`] go.
    pub(crate) fn install_propagator(&self) {
        propagation::install(&self.telemetry.inner.config.propagators);
    }

    /// The subscriber: spans to OpenTelemetry, log lines to stdout, each with its own filter so that
    /// a quiet log level never silences the trace.
    pub(crate) fn subscriber(&self) -> impl Subscriber + Send + Sync + for<'a> LookupSpan<'a> {
        self.subscriber_with_writer(std::io::stdout)
    }

    pub(crate) fn subscriber_with_writer<W>(
        &self,
        writer: W,
    ) -> impl Subscriber + Send + Sync + for<'a> LookupSpan<'a>
    where
        W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
    {
        let tracer = self.telemetry.inner.provider.tracer(SCOPE);
        let otel = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            .with_level(false)
            .with_target(false);
        let log_filter = quiet::log_targets(&self.log_filter);
        let layers = match self.log_format {
            // JSON lines carry the trace and span ids, not span fields: the log layer needs no span,
            // so both layers share one filter and spans pay for one (see `one_filter`).
            LogFormat::Json => {
                let logs = tracing_subscriber::fmt::layer()
                    .event_format(JsonFormat)
                    .with_writer(writer);
                let spans = span_filter();
                Gate::spans_and_events(otel, spans.clone())
                    .and_then(Gate::events_only(logs, log_filter.clone()))
                    .with_filter(SpansAndLogs {
                        spans,
                        logs: log_filter,
                    })
                    .boxed()
            }
            // Text lines print the spans they are in, so the log layer sees spans through its own
            // filter.
            LogFormat::Text => {
                let logs = tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(writer);
                otel.with_filter(span_filter())
                    .and_then(
                        Gate::events_and_spans(logs, log_filter.clone()).with_filter(log_filter),
                    )
                    .boxed()
            }
        };
        tracing_subscriber::registry().with(layers)
    }
}

/// Which `tracing` spans become OpenTelemetry spans: INFO and above, except the runtime's and the
/// SDK's own plumbing spans, which would otherwise appear as duplicate or orphan spans.
fn span_filter() -> Targets {
    Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("lambda_runtime", LevelFilter::OFF)
        .with_target("lambda_runtime_api_client", LevelFilter::OFF)
        .with_target("lambda_http", LevelFilter::OFF)
        .with_target("aws_smithy_runtime", LevelFilter::OFF)
        .with_target("aws_smithy_runtime_api", LevelFilter::OFF)
        .with_target("aws_config", LevelFilter::OFF)
        .with_target("hyper", LevelFilter::OFF)
        .with_target("hyper_util", LevelFilter::OFF)
        .with_target("opentelemetry", LevelFilter::OFF)
        .with_target("opentelemetry_sdk", LevelFilter::OFF)
        .with_target("opentelemetry_aws", LevelFilter::OFF)
        .with_target("opentelemetry_otlp", LevelFilter::OFF)
}

/// The Lambda resource: the opentelemetry-aws detector, `service.name`, and
/// `OTEL_RESOURCE_ATTRIBUTES`.
pub(crate) fn resource(config: &Config) -> Resource {
    let attributes = config
        .resource_attributes
        .iter()
        .map(|(key, value)| KeyValue::new(key.clone(), value.clone()));
    // Later attributes win: the detector over the defaults, the user's over the detector's, and
    // `service.name` (already resolved from OTEL_SERVICE_NAME) over everything.
    Resource::builder_empty()
        .with_attributes([
            KeyValue::new(semres::CLOUD_PROVIDER, CLOUD_PROVIDER_AWS),
            KeyValue::new(semres::CLOUD_PLATFORM, CLOUD_PLATFORM_AWS_LAMBDA),
        ])
        .with_detector(Box::new(LambdaResourceDetector))
        .with_attributes(attributes)
        .with_service_name(config.service_name.clone())
        .build()
}

fn sampler(config: &SamplerConfig) -> Sampler {
    let root = |root: &RootSampler| match root {
        RootSampler::AlwaysOn => Sampler::AlwaysOn,
        RootSampler::AlwaysOff => Sampler::AlwaysOff,
        RootSampler::TraceIdRatio(ratio) => Sampler::TraceIdRatioBased(*ratio),
    };
    match config {
        SamplerConfig::AlwaysOn => Sampler::AlwaysOn,
        SamplerConfig::AlwaysOff => Sampler::AlwaysOff,
        SamplerConfig::TraceIdRatio(ratio) => Sampler::TraceIdRatioBased(*ratio),
        SamplerConfig::ParentBased(inner) => Sampler::ParentBased(Box::new(root(inner))),
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) provider: SdkTracerProvider,
    pub(crate) flusher: Flusher,
    pub(crate) config: Config,
    /// The `amortized` strategy is in force: configured, and its extension registered.
    pub(crate) amortize: AtomicBool,
}

/// Handle on tracekit's tracing: the invocation layer, flush and shutdown. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Telemetry {
    pub(crate) inner: Arc<Inner>,
}

impl Telemetry {
    /// The tower layer that traces each invocation (see [`InvocationLayer`]).
    pub fn layer(&self) -> InvocationLayer {
        InvocationLayer::new(self.clone())
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Whether the invocation that just ended should flush: always under `end-of-invocation`; under
    /// `amortized`, only past a threshold.
    pub(crate) fn flush_due(&self) -> bool {
        match self.inner.config.flush {
            FlushStrategy::Amortized { max_spans, max_age }
                if self.inner.amortize.load(Ordering::Acquire) =>
            {
                self.inner.flusher.is_due(max_spans, max_age)
            }
            _ => true,
        }
    }

    /// Exports every buffered span, waiting at most `timeout`. Never fails: what could not be
    /// exported is counted in the report.
    pub async fn force_flush(&self, timeout: Duration) -> FlushReport {
        self.inner.flusher.flush(timeout).await
    }

    /// Flushes within `timeout` and shuts the provider down; spans ended afterwards are discarded.
    pub async fn shutdown(&self, timeout: Duration) -> FlushReport {
        let report = self.force_flush(timeout).await;
        // Our processor and exporter hold no thread; shutting down only marks the provider closed.
        let _ = self.inner.provider.shutdown();
        report
    }
}
