//! The tracer provider, the `tracing` subscriber, and the handle that flushes them.
//!
//! [`init`] builds everything from the environment ([`Config::from_env`]) and does no network I/O: the
//! exporter connects at the first flush, after the first response.

use crate::{
    app_signals::{self, AlwaysRecord},
    config::{
        Config, ConfigError, ExporterConfig, FlushStrategy, LogFormat, SampledZeroPolicy, SpanPath,
    },
    flush::{ExporterError, FlushReport, Flusher},
    log_format::JsonFormat,
    propagation,
};
use opentelemetry::{
    KeyValue,
    trace::{SpanId, TraceId, TracerProvider as _},
};
use opentelemetry_aws::detector::LambdaResourceDetector;
use opentelemetry_sdk::{
    Resource,
    trace::{IdGenerator, SdkTracerProvider, ShouldSample},
};
use opentelemetry_semantic_conventions::resource as semres;
use std::{
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tracing::{Subscriber, level_filters::LevelFilter};
use tracing_subscriber::{
    Layer as _, Registry,
    filter::Targets,
    fmt::{MakeWriter, writer::BoxMakeWriter},
    layer::SubscriberExt,
    registry::LookupSpan,
};

mod one_filter;

use crate::{log_buffer, quiet};

use crate::init_span::InitTimes;
use one_filter::{Gate, SpansAndLogs};

/// Instrumentation scope of tracekit's spans.
pub(crate) const SCOPE: &str = "tracekit";

/// `cloud.platform` for Lambda: X-Ray's translators need it for the origin `AWS::Lambda::Function`.
const CLOUD_PLATFORM_AWS_LAMBDA: &str = "aws_lambda";
const CLOUD_PROVIDER_AWS: &str = "aws";

/// Why [`init`] failed.
///
/// Its `Debug` form is its message, as `anyhow::Error`'s is: a `main` that returns
/// `Result<(), lambda_runtime::Error>` prints a returned error with `Debug`, and
/// `tracekit::init()?` there should say what to change (`OTEL_TRACES_EXPORTER=console needs
/// tracekit's `console` feature ...`), not `Exporter(ConsoleNotBuilt)`. `{:#?}` gives the variant.
#[derive(thiserror::Error)]
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
    Subscriber(#[source] tracing::dispatcher::SetGlobalDefaultError),
}

impl fmt::Debug for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !f.alternate() {
            return fmt::Display::fmt(self, f);
        }
        match self {
            InitError::Config(error) => f.debug_tuple("Config").field(error).finish(),
            InitError::Exporter(error) => f.debug_tuple("Exporter").field(error).finish(),
            InitError::Subscriber(error) => f.debug_tuple("Subscriber").field(error).finish(),
        }
    }
}

/// Builds tracing from the environment and installs it globally (the `tracing` subscriber, the
/// OpenTelemetry tracer provider and the text-map propagator).
///
/// Call it once in `main`, before the runtime starts. [`builder`] does the same with parts chosen
/// in code.
pub fn init() -> Result<Telemetry, InitError> {
    builder().init()
}

/// [`init`] with a configuration built in code.
pub fn init_with(config: Config) -> Result<Telemetry, InitError> {
    builder().config(config).init()
}

/// A [`Builder`]: [`init`] with parts chosen in code.
pub fn builder() -> Builder {
    Builder::default()
}

/// [`init`] with parts chosen in code: the configuration or just its exporter, a sampler, resource
/// attributes, an ID generator, more `tracing_subscriber` layers, and where log lines go. What is
/// not chosen comes from the environment, as [`init`] reads it.
///
/// ```no_run
/// use tracekit::{opentelemetry::KeyValue, opentelemetry_sdk::trace::Sampler};
///
/// # fn main() -> Result<(), tracekit::InitError> {
/// let telemetry = tracekit::builder()
///     .sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(0.1))))
///     .resource_attributes([KeyValue::new("deployment.environment.name", "prod")])
///     .writer(std::io::stderr)
///     .init()?;
/// # Ok(()) }
/// ```
#[derive(Default)]
#[must_use = "a builder does nothing until `init` is called"]
pub struct Builder {
    config: Option<Config>,
    exporter: Option<ExporterConfig>,
    sampler: Option<Box<dyn ShouldSample>>,
    resource: Vec<KeyValue>,
    id_generator: Option<Box<dyn IdGenerator>>,
    layers: Vec<Box<dyn tracing_subscriber::Layer<Registry> + Send + Sync>>,
    writer: Option<BoxMakeWriter>,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .field("exporter", &self.exporter)
            .field("sampler", &self.sampler)
            .field("resource", &self.resource)
            .field("id_generator", &self.id_generator)
            .field("layers", &self.layers.len())
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// The whole configuration, instead of reading it from the environment.
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// The exporter, instead of `OTEL_TRACES_EXPORTER` and the endpoint variables. The `Sampled=0`
    /// policy follows it as it follows the variables, unless `TRACEKIT_SAMPLED_ZERO` (or the
    /// [`config`](Self::config) given) says otherwise.
    pub fn exporter(mut self, exporter: ExporterConfig) -> Self {
        self.exporter = Some(exporter);
        self
    }

    /// The sampler, instead of `OTEL_TRACES_SAMPLER`. Invocations whose Lambda trace header leaves
    /// the decision open (`Sampled=?`) are still decided by the configured sampler, before this one
    /// sees the span.
    pub fn sampler(mut self, sampler: impl ShouldSample + 'static) -> Self {
        self.sampler = Some(Box::new(sampler));
        self
    }

    /// Resource attributes, over the Lambda detector's and `OTEL_RESOURCE_ATTRIBUTES`' (a
    /// `service.name` here wins over `OTEL_SERVICE_NAME`).
    pub fn resource_attributes(mut self, attributes: impl IntoIterator<Item = KeyValue>) -> Self {
        self.resource.extend(attributes);
        self
    }

    /// The ID generator, instead of X-Ray's. X-Ray's segment documents (`OTEL_TRACES_EXPORTER=xray`)
    /// need X-Ray trace ids, whose first 8 hex digits are the epoch seconds; the agent and OTLP
    /// paths take any.
    pub fn id_generator(mut self, id_generator: impl IdGenerator + 'static) -> Self {
        self.id_generator = Some(Box::new(id_generator));
        self
    }

    /// One more `tracing_subscriber` layer beside tracekit's. It sees every span and event its own
    /// filter lets through: give it one (`layer.with_filter(LevelFilter::INFO)`), or it enables
    /// every callsite, the SDK's DEBUG ones included.
    ///
    /// Layers need tracing-subscriber's Registry: a builder given one records spans on the
    /// compatibility path ([`SpanPath::TracingOpentelemetry`]), whatever `TRACEKIT_SPAN_PATH` says.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: tracing_subscriber::Layer<Registry> + Send + Sync + 'static,
    {
        self.layers.push(Box::new(layer));
        self
    }

    /// Where log lines go, instead of stdout (which is where Lambda reads them).
    pub fn writer<W>(mut self, writer: W) -> Self
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        self.writer = Some(BoxMakeWriter::new(writer));
        self
    }

    /// Builds everything and installs it globally, as [`init`] does.
    pub fn init(self) -> Result<Telemetry, InitError> {
        let (parts, dispatch) = self.build()?;
        tracing::dispatcher::set_global_default(dispatch).map_err(InitError::Subscriber)?;
        parts.install_globals();
        crate::config::warn_if_every_route_is_excluded(parts.telemetry.config());
        Ok(parts.telemetry)
    }

    /// Everything [`init`](Self::init) installs, not installed yet.
    fn build(self) -> Result<(Parts, tracing::Dispatch), InitError> {
        let Builder {
            config,
            exporter,
            sampler,
            resource: attributes,
            id_generator,
            layers,
            writer,
        } = self;
        let (mut config, sampled_zero_chosen) = match config {
            Some(config) => (config, true),
            None => (
                Config::from_env()?,
                std::env::var_os(crate::config::env::TRACEKIT_SAMPLED_ZERO).is_some(),
            ),
        };
        if let Some(exporter) = exporter {
            if !sampled_zero_chosen {
                config.sampled_zero = SampledZeroPolicy::default_for(&exporter);
            }
            config.exporter = exporter;
        }
        let began = std::time::SystemTime::now();
        DISABLED.store(config.disabled, Ordering::Relaxed);
        let resource = resource_with(&config, attributes);
        let (flusher, processor) = Flusher::new(&config, &resource)?;
        let parts = Parts::with(config, resource, flusher, processor, sampler, id_generator);
        let config = parts.telemetry.config();
        if config.init_span && !config.disabled && !config.provisioned {
            *parts.telemetry.init_times() = Some(InitTimes::tracekit_init(began));
            parts.telemetry.inner.flusher.hold_until_init();
        }
        let writer = writer.unwrap_or_else(|| BoxMakeWriter::new(std::io::stdout));
        let dispatch = if layers.is_empty() {
            parts.dispatch(writer)
        } else {
            tracing::Dispatch::new(parts.subscriber_with_layers(writer, layers))
        };
        Ok((parts, dispatch))
    }
}

/// `OTEL_SDK_DISABLED=true` at init: read by the SDK interceptor, which a client's config carries
/// without a handle on [`Telemetry`]. One init per process sets it.
static DISABLED: AtomicBool = AtomicBool::new(false);

/// Whether tracing is off (`OTEL_SDK_DISABLED=true`).
pub(crate) fn disabled() -> bool {
    DISABLED.load(Ordering::Relaxed)
}

/// What an init builds, before it is installed (shared with the `testing` module).
pub(crate) struct Parts {
    pub(crate) telemetry: Telemetry,
    log_filter: String,
    log_format: LogFormat,
    /// What tracekit's own subscriber records spans with: the provider's sampler, ID generator and
    /// span processor.
    sampler: Box<dyn ShouldSample>,
    ids: Arc<dyn IdGenerator>,
    processor: crate::flush::LambdaSpanProcessor,
}

impl Parts {
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn new(
        config: Config,
        resource: Resource,
        flusher: Flusher,
        processor: crate::flush::LambdaSpanProcessor,
    ) -> Self {
        Self::with(config, resource, flusher, processor, None, None)
    }

    /// [`Parts::new`] with a sampler and an ID generator of the user's.
    pub(crate) fn with(
        config: Config,
        resource: Resource,
        flusher: Flusher,
        processor: crate::flush::LambdaSpanProcessor,
        chosen_sampler: Option<Box<dyn ShouldSample>>,
        id_generator: Option<Box<dyn IdGenerator>>,
    ) -> Self {
        let builder = SdkTracerProvider::builder();
        let ids: Arc<dyn IdGenerator> = Arc::new(Ids(
            id_generator.unwrap_or_else(|| Box::new(XrayIds::default()))
        ));
        let builder = builder.with_id_generator(SharedIds(Arc::clone(&ids)));
        let chosen_sampler =
            chosen_sampler.unwrap_or_else(|| Box::new(config.sampler.sdk_sampler()));
        let sampler: Box<dyn ShouldSample> = if app_signals::records_unsampled(&config) {
            Box::new(AlwaysRecord(chosen_sampler))
        } else {
            chosen_sampler
        };
        let provider = builder
            .with_sampler(sampler.box_clone())
            .with_resource(resource)
            .with_span_processor(processor.clone())
            .build();
        let telemetry = Telemetry {
            inner: Arc::new(Inner {
                provider,
                flusher,
                config: config.clone(),
                amortize: AtomicBool::new(false),
                background: AtomicBool::new(false),
                wake: tokio::sync::Notify::new(),
                in_flight: InFlight::default(),
                init: Mutex::new(None),
                log_sink: std::sync::OnceLock::new(),
            }),
        };
        Parts {
            telemetry,
            log_filter: config.log_filter,
            log_format: config.log_format,
            sampler,
            ids,
            processor,
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

    /// The subscriber the configuration names ([`SpanPath`]): spans to OpenTelemetry, log lines
    /// to `writer`, each with its own filter so that a quiet log level never silences the trace.
    pub(crate) fn dispatch<W>(&self, writer: W) -> tracing::Dispatch
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        match self.telemetry.inner.config.span_path {
            SpanPath::Tracekit => tracing::Dispatch::new(self.recorder(writer)),
            SpanPath::TracingOpentelemetry => {
                tracing::Dispatch::new(tracing_subscriber::registry().with(self.layers(writer)))
            }
        }
    }

    /// The Registry path with more layers of the user's beside tracekit's (see [`Builder::layer`]).
    fn subscriber_with_layers<W>(
        &self,
        writer: W,
        mut layers: Vec<Box<dyn tracing_subscriber::Layer<Registry> + Send + Sync>>,
    ) -> impl Subscriber + Send + Sync + for<'a> LookupSpan<'a>
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        layers.insert(0, self.layers(writer));
        tracing_subscriber::registry().with(layers)
    }

    /// Where log lines go, and log buffering's layer with the lines it keeps, if it is on.
    fn log_sinks<W>(
        &self,
        writer: W,
    ) -> (
        log_buffer::SharedWriter<W>,
        Option<(log_buffer::BufferLayer, Targets)>,
    )
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        let writer = log_buffer::SharedWriter(Arc::new(writer));
        // Metric lines go where log lines go.
        let sink = line_sink(writer.clone());
        let _ = self.telemetry.inner.log_sink.set(sink.clone());
        *OUTSIDE_INVOCATIONS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((
            self.telemetry.inner.config.metrics.namespace.clone(),
            self.telemetry.inner.config.service_name.clone(),
            sink.clone(),
        ));
        let buffer = self
            .telemetry
            .inner
            .config
            .log_buffer
            .as_ref()
            .map(|buffer| {
                let layer = log_buffer::BufferLayer {
                    format: self.log_format,
                    written: quiet::log_targets(&self.log_filter),
                    max_bytes: buffer.max_bytes,
                    flush_on_error_log: buffer.flush_on_error_log,
                    sink,
                };
                (layer, buffer_targets(&buffer.directives))
            });
        (writer, buffer)
    }

    /// Which spans become OpenTelemetry spans: none when tracing is off (log lines are written as
    /// ever).
    fn span_filter(&self) -> Targets {
        if self.telemetry.inner.config.disabled {
            Targets::new()
        } else {
            span_filter()
        }
    }

    /// tracekit's own subscriber (`SpanPath::Tracekit`).
    fn recorder<W>(&self, writer: W) -> crate::recorder::Recorder
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        let (writer, buffer) = self.log_sinks(writer);
        let logs = quiet::log_targets(&self.log_filter);
        use crate::recorder::Directives;
        let filters = crate::recorder::Filters {
            spans: Directives::new(self.span_filter()),
            logs: Directives::new(logs.clone()),
            kept: buffer
                .as_ref()
                .map(|(_, kept)| Directives::new(kept.clone())),
            text: self.log_format == LogFormat::Text,
        };
        let tracing = crate::recorder::Tracing {
            sampler: self.sampler.box_clone(),
            ids: Arc::clone(&self.ids),
            processor: self.processor.clone(),
            attach: true,
            scope: opentelemetry::InstrumentationScope::builder(SCOPE).build(),
        };
        let logs = crate::recorder::Logs {
            format: self.log_format,
            written: Directives::new(logs),
            sink: line_sink(writer),
            buffer: buffer.map(|(layer, kept)| (layer, Directives::new(kept))),
        };
        crate::recorder::Recorder::new(tracing, filters, logs)
    }

    /// tracekit's layers on the Registry path: spans to OpenTelemetry, log lines to `writer`.
    fn layers<W>(&self, writer: W) -> Box<dyn tracing_subscriber::Layer<Registry> + Send + Sync>
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
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
        let (writer, buffer) = self.log_sinks(writer);
        let span_filter = self.span_filter();
        match self.log_format {
            // JSON lines carry the trace and span ids, not span fields: the log layer needs no span,
            // so both layers share one filter and spans pay for one (see `one_filter`).
            LogFormat::Json => {
                let logs = tracing_subscriber::fmt::layer()
                    .event_format(JsonFormat)
                    .with_writer(writer);
                let spans = span_filter;
                let (buffer, kept) = match buffer {
                    Some((layer, kept)) => {
                        (Some(Gate::events_only(layer, kept.clone())), Some(kept))
                    }
                    None => (None, None),
                };
                // The buffer before the log layer: on an error line, what it kept is written first.
                Gate::spans_and_events(otel, spans.clone())
                    .and_then(buffer)
                    .and_then(Gate::events_only(logs, log_filter.clone()))
                    .with_filter(SpansAndLogs {
                        spans,
                        logs: log_filter,
                        kept,
                    })
                    .boxed()
            }
            // Text lines print the spans they are in, so the log layer sees spans through its own
            // filter.
            LogFormat::Text => {
                let logs = tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(writer);
                let buffer = buffer.map(|(layer, kept)| layer.with_filter(kept));
                otel.with_filter(span_filter)
                    .and_then(buffer)
                    .and_then(
                        Gate::events_and_spans(logs, log_filter.clone()).with_filter(log_filter),
                    )
                    .boxed()
            }
        }
    }
}

/// Writes whole lines to `writer`, one `write_all` each.
/// Where metrics added outside an invocation go: the last installed subscriber's writer.
static OUTSIDE_INVOCATIONS: std::sync::Mutex<
    Option<(Option<String>, String, log_buffer::LineSink)>,
> = std::sync::Mutex::new(None);

/// Writes `set`, added outside any invocation, at once.
pub(crate) fn write_metrics_now(set: crate::metrics::emf::MetricSet) {
    let outside = OUTSIDE_INVOCATIONS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    let Some((namespace, service, sink)) = outside else {
        return;
    };
    let emitter = crate::metrics::emf::Emitter {
        namespace: namespace.as_deref(),
        service: &service,
    };
    let context = crate::metrics::emf::LineContext {
        timestamp_ms: now_ms(),
        ..Default::default()
    };
    for line in emitter.lines(&set, context) {
        (sink.0)(line.as_bytes());
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

fn line_sink<W>(writer: log_buffer::SharedWriter<W>) -> log_buffer::LineSink
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    log_buffer::LineSink(Arc::new(move |line: &[u8]| {
        use std::io::Write;
        let _ = writer.make_writer().write_all(line);
    }))
}

/// The runtime's, the SDK's and the exporters' own targets: their spans would appear as duplicate
/// or orphan spans, and their debug lines are plumbing, not the function's story.
const PLUMBING: &[&str] = &[
    "lambda_runtime",
    "lambda_runtime_api_client",
    "lambda_http",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_config",
    "hyper",
    "hyper_util",
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_aws",
    "aws_sigv4",
    "aws_credential_types",
];

/// Which `tracing` spans become OpenTelemetry spans: INFO and above, except the plumbing's.
fn span_filter() -> Targets {
    PLUMBING.iter().fold(
        Targets::new().with_default(LevelFilter::INFO),
        |targets, target| targets.with_target(*target, LevelFilter::OFF),
    )
}

/// The clients' own debug lines, which an SDK call inside the handler writes by the dozen: not
/// kept unless log buffering's directives name them.
const CLIENT_PLUMBING: &[&str] = &["aws_sdk_", "aws_runtime", "rustls", "h2", "tower"];

/// Which lines log buffering keeps: its directives (validated at init), without the plumbing's
/// unless they name it.
fn buffer_targets(directives: &str) -> Targets {
    let targets = directives
        .parse::<Targets>()
        .unwrap_or_else(|_| Targets::new().with_default(LevelFilter::DEBUG));
    let quiet = PLUMBING.iter().chain(CLIENT_PLUMBING);
    quiet.fold(targets.clone(), |kept, target| {
        if targets.iter().any(|(named, _)| named.starts_with(target)) {
            kept
        } else {
            kept.with_target(*target, LevelFilter::OFF)
        }
    })
}

/// The Lambda resource: the opentelemetry-aws detector, `service.name`, and
/// `OTEL_RESOURCE_ATTRIBUTES`.
#[cfg(any(test, feature = "testing"))]
pub(crate) fn resource(config: &Config) -> Resource {
    resource_with(config, Vec::new())
}

/// [`resource`] with attributes chosen in code, which win over all the others.
fn resource_with(config: &Config, chosen: Vec<KeyValue>) -> Resource {
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
        .with_attributes(chosen)
        .build()
}

/// The ID generator: X-Ray's or the user's ([`Builder::id_generator`]), except for the root span
/// of an invocation whose Lambda header names only a trace (`invocation::with_root_trace_id`).
#[derive(Debug)]
struct Ids(Box<dyn IdGenerator>);

/// X-Ray trace ids, as opentelemetry-aws's `XrayIdGenerator` makes them (the epoch seconds in the
/// first 8 hex digits, then the first 24 of a random id's hex) without formatting and parsing hex:
/// that round trip cost about 2,400 instructions per trace. Held equal to its formula by a property test.
#[derive(Debug, Default)]
struct XrayIds(opentelemetry_sdk::trace::RandomIdGenerator);

impl XrayIds {
    /// The X-Ray trace id for `epoch_seconds` and a random id: none past 2106, when the seconds no
    /// longer fit in 8 hex digits (opentelemetry-aws's hex then fails to parse).
    fn trace_id(epoch_seconds: u64, random: TraceId) -> TraceId {
        match u32::try_from(epoch_seconds) {
            Ok(seconds) => {
                // The random id's hex, padded to 24 digits, cut to its first 24: its top 96 bits
                // when it has 32 digits, all of it when it has 24 or fewer.
                let random = u128::from_be_bytes(random.to_bytes());
                let digits = (128 - random.leading_zeros()).div_ceil(4);
                let kept = random >> (4 * digits.saturating_sub(24));
                TraceId::from((u128::from(seconds) << 96) | kept)
            }
            Err(_) => TraceId::INVALID,
        }
    }
}

impl IdGenerator for XrayIds {
    fn new_trace_id(&self) -> TraceId {
        let seconds = opentelemetry::time::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        XrayIds::trace_id(seconds, self.0.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        self.0.new_span_id()
    }
}

/// One ID generator for the provider and tracekit's own subscriber.
#[derive(Debug)]
struct SharedIds(Arc<dyn IdGenerator>);

impl IdGenerator for SharedIds {
    fn new_trace_id(&self) -> TraceId {
        self.0.new_trace_id()
    }

    fn new_span_id(&self) -> SpanId {
        self.0.new_span_id()
    }
}

impl IdGenerator for Ids {
    fn new_trace_id(&self) -> TraceId {
        crate::invocation::take_root_trace_id().unwrap_or_else(|| self.0.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        self.0.new_span_id()
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) provider: SdkTracerProvider,
    pub(crate) flusher: Flusher,
    pub(crate) config: Config,
    /// The `amortized` strategy is in force: configured, and its extension registered.
    pub(crate) amortize: AtomicBool,
    /// A background task flushes (managed concurrency): invocations wake it instead of flushing.
    pub(crate) background: AtomicBool,
    /// Wakes the background flush when an invocation finds a flush due.
    pub(crate) wake: tokio::sync::Notify,
    /// The invocations under way, and the word that cuts them short at shutdown.
    pub(crate) in_flight: InFlight,
    /// How long init took, until the first invocation makes its span of it.
    pub(crate) init: Mutex<Option<InitTimes>>,
    /// Where kept log lines are written (`TRACEKIT_LOG_BUFFER`): the log layer's writer.
    pub(crate) log_sink: std::sync::OnceLock<log_buffer::LineSink>,
}

/// The invocations under way. At shutdown every one is cut short (its span ends as an error naming
/// the shutdown) before the last flush, so none is exported headless: under managed concurrency
/// lambda_runtime's workers are tasks of their own, which outlive the runtime's future and would
/// end their spans after the process had flushed.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    count: std::sync::atomic::AtomicUsize,
    /// Why invocations are cut short, once shutdown has begun.
    cut: std::sync::OnceLock<&'static str>,
    /// Wakes the invocations under way when shutdown begins.
    cut_now: Arc<tokio::sync::Notify>,
    /// Wakes the shutdown when the last invocation under way has ended its span.
    settled: tokio::sync::Notify,
}

/// One invocation under way, from the layer's `call` until its span has ended.
#[derive(Debug)]
pub(crate) struct Underway {
    telemetry: Telemetry,
}

impl Drop for Underway {
    fn drop(&mut self) {
        let in_flight = &self.telemetry.inner.in_flight;
        if in_flight.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            in_flight.settled.notify_waiters();
        }
    }
}

/// Handle on tracekit's tracing: the invocation layer, flush and shutdown. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Telemetry {
    pub(crate) inner: Arc<Inner>,
}

impl Telemetry {
    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    fn init_times(&self) -> std::sync::MutexGuard<'_, Option<InitTimes>> {
        self.inner
            .init
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Init is over: the runtime is about to ask for the first invocation.
    pub(crate) fn init_done(&self) {
        if let Some(times) = self.init_times().as_mut() {
            times.ready.get_or_insert_with(std::time::SystemTime::now);
        }
    }

    /// What the metric lines say besides their metrics.
    fn metrics_emitter(&self) -> crate::metrics::emf::Emitter<'_> {
        crate::metrics::emf::Emitter {
            namespace: self.inner.config.metrics.namespace.as_deref(),
            service: &self.inner.config.service_name,
        }
    }

    /// Writes the metrics `state`'s invocation added, if any, as EMF lines beside its log lines;
    /// `trace_id` is the invocation's X-Ray trace id.
    pub(crate) fn write_metrics(
        &self,
        state: &crate::invocation::InvocationState,
        trace_id: impl FnOnce() -> Option<String>,
    ) {
        let Some(set) = state
            .metrics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
        else {
            return;
        };
        let Some(sink) = self.inner.log_sink.get() else {
            return;
        };
        let trace_id = trace_id();
        let context = crate::metrics::emf::LineContext {
            request_id: Some(state.request_id.as_str()),
            trace_id: trace_id.as_deref(),
            timestamp_ms: now_ms(),
        };
        for line in self.metrics_emitter().lines(&set, context) {
            (sink.0)(line.as_bytes());
        }
    }

    /// Writes the log lines `state`'s invocation kept (`TRACEKIT_LOG_BUFFER`): it failed.
    pub(crate) fn write_kept_logs(&self, state: &crate::invocation::InvocationState) {
        if let Some(sink) = self.inner.log_sink.get() {
            log_buffer::write_kept(state, self.inner.config.log_format, sink);
        }
    }

    /// The cold start's `init` span, under `parent`, once per process (see `init_span`).
    pub(crate) fn record_init(&self, parent: &opentelemetry::Context) {
        let Some(times) = self.init_times().take() else {
            return;
        };
        if let Some((init, ready)) = crate::init_span::record(&self.inner.provider, times, parent) {
            self.inner
                .flusher
                .rework_buffered(|ended| crate::init_span::adopt(ended, &init, ready));
        }
        self.inner.flusher.encode_from_now();
    }

    /// Whether the invocation that just ended should flush: always under `end-of-invocation`; under
    /// `amortized`, only past a threshold.
    pub(crate) fn flush_due(&self) -> bool {
        match self.inner.config.flush {
            FlushStrategy::Amortized { max_spans, max_age } if self.is_amortized() => {
                self.inner.flusher.is_due(max_spans, max_age)
            }
            _ => true,
        }
    }

    /// Whether the `amortized` strategy is in force from now on: it is once its extension has
    /// registered.
    pub(crate) fn set_amortized(&self, on: bool) {
        self.inner.amortize.store(on, Ordering::Release);
    }

    /// Whether the `amortized` strategy is in force.
    pub(crate) fn is_amortized(&self) -> bool {
        self.inner.amortize.load(Ordering::Acquire)
    }

    /// From now on a background task flushes: invocations [`wake_background`](Self::wake_background)
    /// it instead of flushing.
    pub(crate) fn flush_in_background(&self) {
        self.inner.background.store(true, Ordering::Release);
    }

    /// Whether a background task flushes.
    pub(crate) fn flushes_in_background(&self) -> bool {
        self.inner.background.load(Ordering::Acquire)
    }

    /// Wakes the background flush (a flush is due).
    pub(crate) fn wake_background(&self) {
        self.inner.wake.notify_one();
    }

    /// Resolves when an invocation wakes the background flush.
    pub(crate) async fn background_woken(&self) {
        self.inner.wake.notified().await;
    }

    /// An invocation starts: it is under way until the guard is dropped, after its span ended.
    pub(crate) fn invocation_underway(&self) -> Underway {
        self.inner.in_flight.count.fetch_add(1, Ordering::AcqRel);
        Underway {
            telemetry: self.clone(),
        }
    }

    /// Resolves when shutdown begins: the invocation under way is to be cut short now. Taken before
    /// the invocation's first poll, so that no shutdown can slip between its check and its wait.
    pub(crate) fn cut_signal(&self) -> tokio::sync::futures::OwnedNotified {
        Arc::clone(&self.inner.in_flight.cut_now).notified_owned()
    }

    /// Why invocations are cut short, once shutdown has begun.
    pub(crate) fn cut_reason(&self) -> Option<&'static str> {
        self.inner.in_flight.cut.get().copied()
    }

    /// Shutdown begins for `reason`: every invocation under way is cut short (when next polled, or
    /// when dropped). Returns how many were under way.
    pub(crate) fn cut_invocations(&self, reason: &'static str) -> usize {
        let in_flight = &self.inner.in_flight;
        let _ = in_flight.cut.set(reason);
        // Counted before they are told: each stops being under way as soon as it is.
        let underway = in_flight.count.load(Ordering::Acquire);
        in_flight.cut_now.notify_waiters();
        underway
    }

    /// Resolves when no invocation is under way, or after `bound`.
    pub(crate) async fn invocations_settled(&self, bound: Duration) {
        let in_flight = &self.inner.in_flight;
        let settled = async {
            loop {
                let notified = in_flight.settled.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if in_flight.count.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(bound, settled).await;
    }

    /// How many flushes have started.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn flush_count(&self) -> u64 {
        self.inner.flusher.flush_count()
    }

    /// Whether an `amortized` flush is due (see `Flusher::is_due`).
    pub(crate) fn is_due(&self, max_spans: usize, max_age: Duration) -> bool {
        self.inner.flusher.is_due(max_spans, max_age)
    }

    /// Exports every buffered span, waiting at most `timeout`. Never fails: what could not be
    /// exported is counted in the report.
    pub async fn force_flush(&self, timeout: Duration) -> FlushReport {
        self.inner.flusher.flush(timeout).await
    }

    /// Every flush's report since the process started, added up (`deferred` is the last one's).
    pub fn flush_totals(&self) -> FlushReport {
        self.inner.flusher.totals()
    }

    /// Flushes within `timeout` and shuts the provider down; spans ended afterwards are discarded.
    pub async fn shutdown(&self, timeout: Duration) -> FlushReport {
        let report = self.force_flush(timeout).await;
        // Our processor and exporter hold no thread; shutting down only marks the provider closed.
        let _ = self.inner.provider.shutdown();
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OpenTelemetrySpanExt;
    use crate::testing::CapturedLogs;
    use opentelemetry::trace::TraceContextExt;
    use opentelemetry_sdk::trace::Sampler;
    use std::sync::{Arc, Mutex};

    /// Trace ids that say where they came from.
    #[derive(Debug)]
    struct FixedIds;

    impl IdGenerator for FixedIds {
        fn new_trace_id(&self) -> TraceId {
            TraceId::from(0x5eed_u128)
        }

        fn new_span_id(&self) -> SpanId {
            SpanId::from(0x5eed_u64)
        }
    }

    /// A layer of the user's: the names of the events it saw.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> tracing_subscriber::Layer<S> for Seen {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            self.0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(event.metadata().target().to_owned());
        }
    }

    #[test]
    fn an_init_error_from_main_says_what_to_add_to_cargo_toml() {
        // (error, what `main` must print after "Error: ", reason)
        let cases: [(InitError, &str, &str); 6] = [
            (
                ExporterError::ConsoleNotBuilt.into(),
                "OTEL_TRACES_EXPORTER=console needs tracekit's `console` feature, which this build \
                 leaves out: add it to tracekit's features in Cargo.toml, e.g. \
                 `tracekit = { version = \"0.1\", features = [\"console\"] }`",
                "the console exporter, left out",
            ),
            (
                ExporterError::XrayNotBuilt.into(),
                "OTEL_TRACES_EXPORTER=xray needs tracekit's `xray` feature, which this build \
                 leaves out: add it to tracekit's features in Cargo.toml, e.g. \
                 `tracekit = { version = \"0.1\", features = [\"xray\"] }`",
                "the segment exporter, left out",
            ),
            (
                ExporterError::SigV4NotBuilt.into(),
                "X-Ray's OTLP endpoint needs SigV4 signing, tracekit's `sigv4` feature, which this \
                 build leaves out: add it to tracekit's features in Cargo.toml, e.g. \
                 `tracekit = { version = \"0.1\", features = [\"sigv4\"] }`; or an X-Ray API key \
                 in OTEL_EXPORTER_OTLP_TRACES_HEADERS (Authorization=...)",
                "SigV4, left out: the API key is the other way",
            ),
            (
                ExporterError::CredentialsChainNotBuilt.into(),
                "X-Ray's OTLP endpoint is signed with the credentials in AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY, which hold none (unset or blank); profiles, web identity, \
                 container and instance credentials need tracekit's `sigv4-chain` feature, which \
                 this build leaves out: add it to tracekit's features in Cargo.toml, e.g. \
                 `tracekit = { version = \"0.1\", features = [\"sigv4-chain\"] }`",
                "SigV4 outside Lambda's environment, the SDK's chain left out",
            ),
            (
                ConfigError::NotBuilt {
                    variable: "OTEL_EXPORTER_OTLP_ENDPOINT",
                    value: "https://collector.example.com".into(),
                    feature: "https",
                }
                .into(),
                "OTEL_EXPORTER_OTLP_ENDPOINT=\"https://collector.example.com\" needs tracekit's \
                 `https` feature, which this build leaves out: add it to tracekit's features in \
                 Cargo.toml, e.g. `tracekit = { version = \"0.1\", features = [\"https\"] }`",
                "an https:// endpoint from the environment, TLS left out",
            ),
            (
                ExporterError::HttpsNotBuilt("https://collector.example.com".into()).into(),
                "OTLP endpoint \"https://collector.example.com\" needs tracekit's `https` feature, \
                 which this build leaves out: add it to tracekit's features in Cargo.toml, e.g. \
                 `tracekit = { version = \"0.1\", features = [\"https\"] }`",
                "an https:// endpoint in a Config built in code, TLS left out",
            ),
        ];
        for (error, expected, reason) in cases {
            assert_eq!(error.to_string(), expected, "{reason}: Display");
            // What `fn main() -> Result<(), lambda_runtime::Error>` prints after `init()?`.
            let boxed: lambda_runtime::Error = error.into();
            assert_eq!(
                format!("Error: {boxed:?}"),
                format!("Error: {expected}"),
                "{reason}: Debug"
            );
        }
        assert_eq!(
            format!("{:#?}", InitError::from(ExporterError::ConsoleNotBuilt)),
            "Exporter(\n    ConsoleNotBuilt,\n)",
            "the alternate form keeps the variant"
        );
    }

    #[cfg(not(feature = "console"))]
    #[test]
    fn the_console_exporter_in_a_build_without_it_is_an_init_error() {
        let error = builder()
            .config(quiet_config())
            .exporter(ExporterConfig::Console)
            .build()
            .err()
            .expect("refused at init");
        assert!(
            matches!(error, InitError::Exporter(ExporterError::ConsoleNotBuilt)),
            "{error:#?}"
        );
    }

    fn quiet_config() -> Config {
        let mut config = Config::from_lookup(|_| None).expect("defaults");
        config.exporter = ExporterConfig::None;
        config
    }

    #[test]
    fn the_builders_parts_are_the_ones_in_force() {
        let seen = Seen::default();
        let logs = CapturedLogs::default();
        let (_parts, dispatch) = builder()
            .config(quiet_config())
            .sampler(Sampler::AlwaysOff)
            .id_generator(FixedIds)
            .layer(
                seen.clone()
                    .with_filter(tracing::level_filters::LevelFilter::INFO),
            )
            .writer(logs.clone())
            .build()
            .expect("built");
        let span_context = tracing::dispatcher::with_default(&dispatch, || {
            let span = tracing::info_span!("work");
            let _entered = span.enter();
            tracing::info!(target: "users_code", "working");
            span.context().span().span_context().clone()
        });
        assert_eq!(
            span_context.trace_id(),
            TraceId::from(0x5eed_u128),
            "the ID generator"
        );
        assert!(!span_context.is_sampled(), "the sampler");
        let seen = seen.0.lock().expect("lock").clone();
        assert_eq!(seen, ["users_code"], "the extra layer");
        assert!(
            logs.text().contains("working"),
            "the writer: {}",
            logs.text()
        );
    }

    proptest::proptest! {
        #[test]
        fn x_ray_trace_ids_are_opentelemetry_aws_ones(
            random in proptest::strategy::Strategy::prop_map(
                (proptest::prelude::any::<u128>(), 0u32..128),
                |(r, shift)| r >> shift,
            ),
            seconds in 0u64..(1 << 33),
        ) {
            // opentelemetry-aws's `XrayIdGenerator::new_trace_id`, with its clock and its random
            // id given.
            let mut hex = format!("{:024x}", TraceId::from(random));
            hex.truncate(24);
            let theirs = TraceId::from_hex(&format!("{seconds:08x}{hex}")).unwrap_or(TraceId::INVALID);
            proptest::prop_assert_eq!(XrayIds::trace_id(seconds, TraceId::from(random)), theirs);
        }
    }

    #[test]
    fn the_default_trace_ids_start_with_the_epoch_seconds() {
        let before = opentelemetry::time::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let id = XrayIds::default().new_trace_id().to_string();
        let seconds = u64::from_str_radix(&id[..8], 16).expect("hex");
        assert!(seconds >= before && seconds <= before + 5, "{id}");
    }

    #[test]
    fn layers_of_the_users_choose_the_compatibility_path() {
        let (_, own) = builder().config(quiet_config()).build().expect("built");
        assert!(
            own.is::<crate::recorder::Recorder>(),
            "tracekit's subscriber"
        );
        let (_, layered) = builder()
            .config(quiet_config())
            .layer(Seen::default().with_filter(tracing::level_filters::LevelFilter::INFO))
            .build()
            .expect("built");
        assert!(
            !layered.is::<crate::recorder::Recorder>(),
            "tracing-subscriber's Registry, which layers need"
        );
        let mut config = quiet_config();
        config.span_path = SpanPath::TracingOpentelemetry;
        let (_, chosen) = builder().config(config).build().expect("built");
        assert!(!chosen.is::<crate::recorder::Recorder>(), "chosen by name");
    }

    #[test]
    fn an_exporter_chosen_in_code_brings_its_sampled_zero_default() {
        let (parts, _) = builder()
            .config(quiet_config())
            .exporter(ExporterConfig::None)
            .build()
            .expect("built");
        assert_eq!(
            parts.telemetry.config().sampled_zero,
            SampledZeroPolicy::Defer,
            "a given configuration keeps its own policy"
        );
        assert_eq!(
            SampledZeroPolicy::default_for(&ExporterConfig::OtlpUdp {
                agent_address: "127.0.0.1:2000".into()
            }),
            SampledZeroPolicy::Honor
        );
    }

    #[test]
    fn resource_attributes_chosen_in_code_win() {
        let mut config = quiet_config();
        config.service_name = "from-env".into();
        config.resource_attributes = vec![("team".into(), "orders".into())];
        let resource = resource_with(
            &config,
            vec![
                KeyValue::new("service.name", "from-code"),
                KeyValue::new("deployment.environment.name", "prod"),
            ],
        );
        let get = |key: &'static str| resource.get(&opentelemetry::Key::from_static_str(key));
        assert_eq!(get("service.name"), Some("from-code".into()));
        assert_eq!(get("deployment.environment.name"), Some("prod".into()));
        assert_eq!(get("team"), Some("orders".into()), "the environment's stay");
        assert_eq!(get("cloud.provider"), Some("aws".into()));
    }
}
