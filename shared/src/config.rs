//! Configuration, read and validated once at init.
//!
//! tracekit reads the standard `OTEL_*` variables first and its own `TRACEKIT_*` variables only where
//! OpenTelemetry has no name. A value that is set but not understood is an [`ConfigError`] naming the
//! variable, the value and what is accepted: a typo must fail the init, not silently export nothing.
//!
//! | variable | accepted | default |
//! |---|---|---|
//! | `OTEL_SERVICE_NAME` (else Powertools' `POWERTOOLS_SERVICE_NAME`) | any non-empty string | `AWS_LAMBDA_FUNCTION_NAME`, else `unknown_service` |
//! | `OTEL_RESOURCE_ATTRIBUTES` | `key=value,...` (values percent-decoded) | none |
//! | `OTEL_PROPAGATORS` | `tracecontext`, `baggage`, `xray`, `xray-lambda`, `none` | `tracecontext,baggage,xray` |
//! | `OTEL_TRACES_SAMPLER` | `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, `parentbased_always_off`, `parentbased_traceidratio` | `parentbased_always_on` |
//! | `OTEL_TRACES_SAMPLER_ARG` | a ratio in `[0, 1]` (ratio samplers only) | `1.0` |
//! | `OTEL_TRACES_EXPORTER` | `otlp`, `xray` (feature `xray`), `console` (feature `console`), `none` | `otlp` |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | an `http://` or `https://` URL; `/v1/traces` is appended | in Lambda: none (the agent, below); elsewhere `http://localhost:4318` |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | an `http://` or `https://` URL, used as is | from the above |
//! | `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL` | `http/protobuf`, `http/json` | `http/protobuf` |
//! | `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS` | `key=value,...` (values percent-decoded) | none |
//! | `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT` | milliseconds | `10000` |
//! | `OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION` | `gzip`, `none` | `none` |
//! | `OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE` | a PEM file of the roots trusted for an `https://` endpoint, instead of the system's | the system's roots |
//! | `TRACEKIT_OTLP_XRAY_REGION` | a region: the endpoint is X-Ray's OTLP endpoint behind a name that does not say so (a VPC endpoint, a proxy) | from the host `xray.<region>.amazonaws.com` |
//! | `OTEL_BSP_MAX_QUEUE_SIZE` | spans buffered at most, 128 to 1000000 | `2048` |
//! | `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | spans handed to the exporter at once, 1 to the queue size | `512` |
//! | `AWS_XRAY_DAEMON_ADDRESS` | `host:port` | `127.0.0.1:2000` |
//! | `OTEL_AWS_APPLICATION_SIGNALS_ENABLED` | `true`, `false` | `false` |
//! | `OTEL_SDK_DISABLED` | `true`, `false`: `true` turns tracing off while the function runs as ever (logs included) | `false` |
//! | `TRACEKIT_INVOCATION_ANNOTATIONS` | `true`, `false`: the X-Ray annotations `ColdStart` and `Service` on every invocation span, as Powertools' Tracer adds them | `true` |
//! | `TRACEKIT_CAPTURE_RESPONSE` | `true`, `false`: the handler's response, as JSON, in the invocation span's metadata, an HTTP response's credential headers' values `REDACTED` ([`Capture`]) | `false` |
//! | `TRACEKIT_CAPTURE_ERROR` | `true`, `false`: the handler's error (`errorType`, `errorMessage`) in the invocation span's metadata | `false` |
//! | `TRACEKIT_CAPTURE_MAX_BYTES` | bytes of captured JSON kept, 1 to 32768 (longer is cut and marked) | `4096` |
//! | `TRACEKIT_INIT_SPAN` | `true`, `false`: an `init` span for the cold start (what init did inside, beside Lambda's own `Initialization` subsegment), in the first invocation's trace | `false` |
//! | `TRACEKIT_SPAN_PATH` | `tracekit` (tracekit's own subscriber), `tracing-opentelemetry` (tracing-subscriber's Registry and tracing-opentelemetry's layer, for functions that need tracing-opentelemetry itself; [`SpanPath`]) | `tracekit` |
//! | `TRACEKIT_EXCLUDED_ROUTES` | comma-separated `[METHOD ]/path` entries never traced ([`ExcludedRoute`]): the method without regard to case, the path with it; repeated and trailing slashes ignored; a `*` only last (`/internal/*`: `/internal` and below); an entry that cannot match (a `*` elsewhere, a `?`, a space) refused; `/*` warned about | none |
//! | `TRACEKIT_LOG_BUFFER` | `off`, a level (`debug`), or `target=level` directives (`orders=debug`): the lines it enables that the log level does not are kept per invocation and written only if it fails ([`LogBuffer`]) | `off` |
//! | `TRACEKIT_LOG_BUFFER_MAX_BYTES` | bytes kept per invocation, 1024 to 1048576 (the oldest lines go first) | `20480` |
//! | `TRACEKIT_LOG_BUFFER_FLUSH_ON_ERROR_LOG` | `true`, `false`: an `error!` line also writes what is buffered | `true` |
//! | `OTEL_RESOURCE_ATTRIBUTES`' `deployment.environment.name` (or `deployment.environment`) | the Application Signals environment | `lambda:default` |
//! | `TRACEKIT_FLUSH_TIMEOUT_MS` | milliseconds, at most the time left before the invocation deadline | `500` |
//! | `TRACEKIT_FLUSH` | `end-of-invocation`, `amortized` ([`FlushStrategy`]) | `amortized` under managed concurrency (`AWS_LAMBDA_MAX_CONCURRENCY` > 1), else `end-of-invocation` |
//! | `TRACEKIT_FLUSH_MAX_SPANS` | spans buffered before an `amortized` flush, 1 to the queue size less 64 (1984 by default) | `128` |
//! | `TRACEKIT_FLUSH_MAX_AGE_MS` | milliseconds the oldest span may wait under `amortized` | `10000` |
//! | `TRACEKIT_SAMPLED_ZERO` | `defer`, `honor`, `sample` | `honor` when X-Ray is the backend (the agent, `xray`), else `defer` |
//! | `TRACEKIT_SQS_PARENT` | `parent-if-single`, `link` | `parent-if-single` |
//! | `TRACEKIT_SQS_SPANS` | `per-message`, `batch` ([`SqsSpans`]) | `per-message` |
//! | `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG` | `TRACE`..`FATAL` / `level` and `target=level` directives, comma-separated | `INFO` |
//! | `AWS_LAMBDA_LOG_FORMAT` | `JSON`, `Text` | `JSON` |
//! | `TRACEKIT_METRICS_NAMESPACE` (else Powertools' `POWERTOOLS_METRICS_NAMESPACE`) | a CloudWatch namespace: 1 to 255 of `0-9A-Za-z . - _ / # :` and space, not only spaces ([`crate::metrics`]) | none: metrics added are dropped, said once |
//! | `TRACEKIT_METRICS_COLD_START` | `true`, `false`: the metric `ColdStart` on a cold start (not under provisioned concurrency), as Powertools' `capture_cold_start_metric` | `false` |
//!
//! The signal-specific `OTEL_EXPORTER_OTLP_TRACES_*` variable wins over the generic one, as the
//! [OTLP exporter specification](https://opentelemetry.io/docs/specs/otel/protocol/exporter/) says.
//!
//! ## Where `otlp` sends spans
//! Inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` is set) with neither `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
//! nor `OTEL_EXPORTER_OTLP_ENDPOINT` set, `otlp` means OTLP over UDP to Lambda's embedded X-Ray agent
//! at `AWS_XRAY_DAEMON_ADDRESS` ([`ExporterConfig::OtlpUdp`]): no layer, no collector, no HTTP round
//! trip. This is the rule AWS's own distributions follow (aws-otel-python-instrumentation's
//! `_customize_span_exporter`). An endpoint, either of the two, means OTLP/HTTP to that collector; outside
//! Lambda the default endpoint is `http://localhost:4318`. The OTLP/HTTP variables are validated on
//! either path, so a typo fails the init before someone switches to a collector.
//!
//! ## X-Ray's OTLP endpoint
//! When the traces endpoint is `https://xray.<region>.amazonaws.com/v1/traces` (or
//! `TRACEKIT_OTLP_XRAY_REGION` says the endpoint is X-Ray's), requests are signed with SigV4 for
//! service `xray` in that region, with credentials from the AWS SDK's default chain, and split to
//! the endpoint's limits ([`XrayEndpoint`]). An `Authorization` header in
//! `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS` (an X-Ray API key) is sent instead of a signature, as AWS
//! documents it.
//!
//! `xray` sends X-Ray segment documents to the same address instead: the compatibility path for the
//! X-Ray daemon, which cannot carry span links (an SQS message's link to its producer is lost).

use std::time::Duration;

/// The service name when neither `OTEL_SERVICE_NAME` nor `AWS_LAMBDA_FUNCTION_NAME` is set, as the
/// [resource semantic conventions](https://opentelemetry.io/docs/specs/semconv/resource/#service) name it.
const UNKNOWN_SERVICE: &str = "unknown_service";

/// Env var names. [OTel SDK configuration](https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/),
/// [Lambda reserved variables](https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html).
pub mod env {
    /// `service.name` of the resource.
    pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
    /// Extra resource attributes, `key=value,...`.
    pub const OTEL_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
    /// Propagators, comma separated.
    pub const OTEL_PROPAGATORS: &str = "OTEL_PROPAGATORS";
    /// Sampler name.
    pub const OTEL_TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
    /// Sampler argument (the ratio).
    pub const OTEL_TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
    /// Exporter name.
    pub const OTEL_TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";
    /// OTLP base endpoint; `/v1/traces` is appended.
    pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
    /// OTLP traces endpoint, used as is.
    pub const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
    /// OTLP protocol.
    pub const OTEL_EXPORTER_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
    /// OTLP protocol for traces.
    pub const OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
    /// OTLP request headers.
    pub const OTEL_EXPORTER_OTLP_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
    /// OTLP request headers for traces.
    pub const OTEL_EXPORTER_OTLP_TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
    /// OTLP export timeout in milliseconds.
    pub const OTEL_EXPORTER_OTLP_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
    /// OTLP export timeout for traces in milliseconds.
    pub const OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT";
    /// OTLP request compression.
    pub const OTEL_EXPORTER_OTLP_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_COMPRESSION";
    /// OTLP request compression for traces.
    pub const OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION";
    /// PEM file of the roots trusted for an `https://` OTLP endpoint.
    pub const OTEL_EXPORTER_OTLP_CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_CERTIFICATE";
    /// PEM file of the roots trusted for an `https://` OTLP traces endpoint.
    pub const OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE";
    /// `true` turns tracing off: no span is recorded or exported, no extension registers, the SDK
    /// interceptor does nothing; logs are written as ever.
    pub const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
    /// `ColdStart` and `Service` annotations on every invocation span (Powertools' names).
    pub const TRACEKIT_INVOCATION_ANNOTATIONS: &str = "TRACEKIT_INVOCATION_ANNOTATIONS";
    /// The handler's response in the invocation span's metadata.
    pub const TRACEKIT_CAPTURE_RESPONSE: &str = "TRACEKIT_CAPTURE_RESPONSE";
    /// The handler's error in the invocation span's metadata.
    pub const TRACEKIT_CAPTURE_ERROR: &str = "TRACEKIT_CAPTURE_ERROR";
    /// Bytes of captured JSON kept.
    pub const TRACEKIT_CAPTURE_MAX_BYTES: &str = "TRACEKIT_CAPTURE_MAX_BYTES";
    /// The `init` span of a cold start.
    pub const TRACEKIT_INIT_SPAN: &str = "TRACEKIT_INIT_SPAN";
    /// Which subscriber records spans.
    pub const TRACEKIT_SPAN_PATH: &str = "TRACEKIT_SPAN_PATH";
    /// HTTP routes never traced.
    pub const TRACEKIT_EXCLUDED_ROUTES: &str = "TRACEKIT_EXCLUDED_ROUTES";
    /// Which log lines are kept per invocation (a level or directives), or `off`.
    pub const TRACEKIT_LOG_BUFFER: &str = "TRACEKIT_LOG_BUFFER";
    /// Bytes of log lines kept per invocation.
    pub const TRACEKIT_LOG_BUFFER_MAX_BYTES: &str = "TRACEKIT_LOG_BUFFER_MAX_BYTES";
    /// Whether an `error!` line writes what is buffered.
    pub const TRACEKIT_LOG_BUFFER_FLUSH_ON_ERROR_LOG: &str =
        "TRACEKIT_LOG_BUFFER_FLUSH_ON_ERROR_LOG";
    /// The CloudWatch namespace of the metrics.
    pub const TRACEKIT_METRICS_NAMESPACE: &str = "TRACEKIT_METRICS_NAMESPACE";
    /// Powertools' name for the namespace, honoured when tracekit's is unset.
    pub const POWERTOOLS_METRICS_NAMESPACE: &str = "POWERTOOLS_METRICS_NAMESPACE";
    /// Powertools' name for the service, honoured when `OTEL_SERVICE_NAME` is unset.
    pub const POWERTOOLS_SERVICE_NAME: &str = "POWERTOOLS_SERVICE_NAME";
    /// The `ColdStart` metric on a cold start.
    pub const TRACEKIT_METRICS_COLD_START: &str = "TRACEKIT_METRICS_COLD_START";
    /// The OTLP endpoint is X-Ray's, in this region, behind a host name that does not say so.
    pub const TRACEKIT_OTLP_XRAY_REGION: &str = "TRACEKIT_OTLP_XRAY_REGION";
    /// Spans buffered at most (the batch span processor's queue size).
    pub const OTEL_BSP_MAX_QUEUE_SIZE: &str = "OTEL_BSP_MAX_QUEUE_SIZE";
    /// Spans handed to the exporter at once (the batch span processor's batch size).
    pub const OTEL_BSP_MAX_EXPORT_BATCH_SIZE: &str = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE";
    /// The X-Ray daemon's UDP address, set by Lambda when tracing is active.
    pub const AWS_XRAY_DAEMON_ADDRESS: &str = "AWS_XRAY_DAEMON_ADDRESS";
    /// Upper bound of the end-of-invocation flush.
    pub const TRACEKIT_FLUSH_TIMEOUT_MS: &str = "TRACEKIT_FLUSH_TIMEOUT_MS";
    /// When spans are exported: `end-of-invocation` or `amortized`.
    pub const TRACEKIT_FLUSH: &str = "TRACEKIT_FLUSH";
    /// Spans buffered before an `amortized` flush.
    pub const TRACEKIT_FLUSH_MAX_SPANS: &str = "TRACEKIT_FLUSH_MAX_SPANS";
    /// How long the oldest buffered span may wait under `amortized`, in milliseconds.
    pub const TRACEKIT_FLUSH_MAX_AGE_MS: &str = "TRACEKIT_FLUSH_MAX_AGE_MS";
    /// What `Sampled=0` in the invocation's trace header means.
    pub const TRACEKIT_SAMPLED_ZERO: &str = "TRACEKIT_SAMPLED_ZERO";
    /// Whether an SQS message's `process` span continues the producer's trace
    /// ([`SqsParentPolicy`](super::SqsParentPolicy)).
    pub const TRACEKIT_SQS_PARENT: &str = "TRACEKIT_SQS_PARENT";
    /// Whether an SQS batch also gets one CONSUMER span that holds the producers' links
    /// ([`SqsSpans`](super::SqsSpans)).
    pub const TRACEKIT_SQS_SPANS: &str = "TRACEKIT_SQS_SPANS";
    /// `tracing` filter for log lines (`level` and `target=level` directives).
    pub const RUST_LOG: &str = "RUST_LOG";
    /// Lambda's advanced logging control level.
    pub const AWS_LAMBDA_LOG_LEVEL: &str = "AWS_LAMBDA_LOG_LEVEL";
    /// Lambda's advanced logging control format.
    pub const AWS_LAMBDA_LOG_FORMAT: &str = "AWS_LAMBDA_LOG_FORMAT";
    /// The function's name; set, it also means "running in Lambda".
    pub const AWS_LAMBDA_FUNCTION_NAME: &str = "AWS_LAMBDA_FUNCTION_NAME";
    /// Application Signals attributes, and unsampled spans sent as `T1U`, as AWS's distributions
    /// name the switch.
    pub const OTEL_AWS_APPLICATION_SIGNALS_ENABLED: &str = "OTEL_AWS_APPLICATION_SIGNALS_ENABLED";
    /// `on-demand`, `provisioned-concurrency` or `snap-start`.
    pub const AWS_LAMBDA_INITIALIZATION_TYPE: &str = "AWS_LAMBDA_INITIALIZATION_TYPE";
    /// Invocations one execution environment serves at once (Lambda Managed Instances).
    pub const AWS_LAMBDA_MAX_CONCURRENCY: &str = "AWS_LAMBDA_MAX_CONCURRENCY";
    /// The access key id of the function's execution role, set by Lambda; SigV4 signs with it.
    pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
    /// The secret access key that goes with [`AWS_ACCESS_KEY_ID`].
    pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
    /// Read in place of a blank [`AWS_SECRET_ACCESS_KEY`], as the AWS SDK's environment provider does.
    pub const SECRET_ACCESS_KEY: &str = "SECRET_ACCESS_KEY";
    /// The session token of temporary credentials (Lambda's always are).
    pub const AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
}

const DEFAULT_OTLP_ENDPOINT: &str = "http://localhost:4318";
const OTLP_TRACES_PATH: &str = "/v1/traces";
const DEFAULT_OTLP_TIMEOUT: Duration = Duration::from_millis(10_000);
const DEFAULT_XRAY_DAEMON_ADDRESS: &str = "127.0.0.1:2000";
const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_millis(500);
/// A quarter of an export request's worth. In `make bench` (11 spans per invocation) 128 kept 512's
/// median turnaround with ~400 KiB less peak memory and no growth beyond the untraced baseline's:
/// each flush encodes a quarter as many spans at once.
const DEFAULT_AMORTIZED_MAX_SPANS: usize = 128;
const DEFAULT_AMORTIZED_MAX_AGE: Duration = Duration::from_secs(10);

/// A setting that is present but not understood, or that asks for what this build leaves out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The variable holds a value outside the accepted set.
    #[error("{variable}={value:?} is not accepted; expected {expected}")]
    Invalid {
        /// The environment variable.
        variable: &'static str,
        /// The value it holds.
        value: String,
        /// What it accepts.
        expected: &'static str,
    },
    /// The variable's value needs a tracekit feature this build leaves out; the message names the
    /// `Cargo.toml` line that builds it.
    #[error("{variable}={value:?} needs {}", needs(.feature))]
    NotBuilt {
        /// The environment variable.
        variable: &'static str,
        /// The value it holds.
        value: String,
        /// The Cargo feature of tracekit's it needs, e.g. `https`.
        feature: &'static str,
    },
}

/// How an init error asks for a feature this build leaves out: the feature and the line of
/// `Cargo.toml` that builds it, ready to paste.
pub(crate) fn needs(feature: &str) -> impl std::fmt::Display + '_ {
    struct Needs<'a>(&'a str);
    impl std::fmt::Display for Needs<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            // "0.1" before 1.0, then "1": the requirement cargo itself would write.
            let version = match env!("CARGO_PKG_VERSION_MAJOR") {
                "0" => concat!("0.", env!("CARGO_PKG_VERSION_MINOR")),
                major => major,
            };
            let feature = self.0;
            write!(
                f,
                "tracekit's `{feature}` feature, which this build leaves out: add it to tracekit's \
                 features in Cargo.toml, e.g. `tracekit = {{ version = \"{version}\", features = \
                 [\"{feature}\"] }}`"
            )
        }
    }
    Needs(feature)
}

impl ConfigError {
    fn invalid(variable: &'static str, value: &str, expected: &'static str) -> Self {
        ConfigError::Invalid {
            variable,
            value: value.to_owned(),
            expected,
        }
    }
}

/// One propagation format of `OTEL_PROPAGATORS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Propagator {
    /// W3C `traceparent` / `tracestate`.
    TraceContext,
    /// W3C `baggage`.
    Baggage,
    /// AWS X-Ray `X-Amzn-Trace-Id`.
    Xray,
    /// X-Ray, as [`Propagator::Xray`] for carriers, but the invocation's caller is its parent: an
    /// `Invoke`'s `ClientContext.custom` or an HTTP event's own trace headers, when they name a trace
    /// other than Lambda's one (and the export path can hold its id), with Lambda's segment a link.
    /// Under `xray` the `Invoke` caller is a link and the HTTP headers are not read.
    XrayLambda,
}

/// The sampler of `OTEL_TRACES_SAMPLER`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum SamplerConfig {
    /// Record every trace.
    AlwaysOn,
    /// Record nothing.
    AlwaysOff,
    /// Record this fraction of traces, chosen by trace id.
    TraceIdRatio(f64),
    /// Follow the parent's decision; roots use the inner sampler.
    ParentBased(RootSampler),
}

/// The root decision of a parent-based sampler.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum RootSampler {
    /// Record every root.
    AlwaysOn,
    /// Record no root.
    AlwaysOff,
    /// Record this fraction of roots.
    TraceIdRatio(f64),
}

/// Where spans go (`OTEL_TRACES_EXPORTER`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ExporterConfig {
    /// OTLP over HTTP, to the ADOT collector layer or any OTLP receiver.
    Otlp(OtlpConfig),
    /// OTLP over UDP to Lambda's embedded X-Ray agent: `otlp` inside Lambda when no OTLP endpoint
    /// is set. Each datagram is `{"format":"json","version":1}`, a newline, `T1S` (sampled spans) or
    /// `T1U` (unsampled ones, with Application Signals), and a base64 `ExportTraceServiceRequest`.
    OtlpUdp {
        /// `host:port` of the agent (`AWS_XRAY_DAEMON_ADDRESS`); resolved at the first export,
        /// never during init.
        agent_address: String,
    },
    /// X-Ray segment documents over UDP to the X-Ray daemon.
    Xray {
        /// `host:port` of the daemon; resolved at the first export, never during init.
        daemon_address: String,
    },
    /// Spans printed to stdout.
    Console,
    /// Spans are not exported.
    None,
}

/// OTLP/HTTP settings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct OtlpConfig {
    /// The full traces URL (`.../v1/traces`).
    pub endpoint: String,
    /// Payload encoding.
    pub protocol: OtlpProtocol,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Request body compression.
    pub compression: OtlpCompression,
    /// A PEM file of the roots trusted instead of the system's, for an `https://` endpoint.
    pub certificate: Option<std::path::PathBuf>,
    /// Set when the endpoint is X-Ray's OTLP endpoint.
    pub xray: Option<XrayEndpoint>,
}

/// X-Ray's OTLP endpoint (`https://xray.<region>.amazonaws.com/v1/traces`): requests are signed
/// unless the user sends an API key, and split to its
/// [limits](https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-OTLPEndpoint.html):
/// at most 10,000 spans and 5 MB uncompressed per request, 200 KB per span.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct XrayEndpoint {
    /// The region, from the host or `TRACEKIT_OTLP_XRAY_REGION`.
    pub region: String,
    /// Sign requests with SigV4 (service `xray`): false when `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`
    /// sets `Authorization` (an X-Ray API key).
    pub sign: bool,
}

/// OTLP/HTTP request compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OtlpCompression {
    /// Bodies are sent as they are.
    #[default]
    None,
    /// `Content-Encoding: gzip`.
    Gzip,
}

/// OTLP/HTTP payload encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OtlpProtocol {
    /// `http/protobuf`.
    HttpProtobuf,
    /// `http/json`.
    HttpJson,
}

/// What `Sampled=0` in the invocation's trace header means (`TRACEKIT_SAMPLED_ZERO`).
///
/// Lambda sends `Sampled=0` when active tracing is off (pass-through) and when X-Ray decided not to
/// sample. When X-Ray is the backend (the agent, `xray`), the default honours it: Lambda writes no
/// segment for that invocation, so spans sent anyway would hang from a parent X-Ray never sees. For
/// other collectors the default defers to the local sampler, so pass-through functions still trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SampledZeroPolicy {
    /// Keep the trace id and parent, and let the local sampler decide (the default for OTLP/HTTP).
    Defer,
    /// Do not record the invocation (the default when X-Ray is the backend). With Application
    /// Signals on, its spans are still recorded and sent to the agent as `T1U`.
    Honor,
    /// Record the invocation whatever the local sampler says.
    Sample,
}

impl SampledZeroPolicy {
    /// The default for `exporter`: [`Honor`](Self::Honor) when X-Ray is the backend (the agent,
    /// segment documents), else [`Defer`](Self::Defer).
    pub fn default_for(exporter: &ExporterConfig) -> Self {
        match exporter {
            ExporterConfig::OtlpUdp { .. } | ExporterConfig::Xray { .. } => {
                SampledZeroPolicy::Honor
            }
            _ => SampledZeroPolicy::Defer,
        }
    }
}

/// Where an SQS message's `process` span hangs (`TRACEKIT_SQS_PARENT`).
///
/// The span is always a child of the invocation span with a link to the producer, as the
/// [messaging conventions](https://opentelemetry.io/docs/specs/semconv/messaging/messaging-spans/#consumer-spans)
/// say; a batch of one may instead continue the producer's trace, so X-Ray draws one connected trace
/// from the sender to the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SqsParentPolicy {
    /// A batch of one message: the producer's span is the parent (the link stays). Larger batches:
    /// the invocation span is the parent (default).
    #[default]
    ParentIfSingle,
    /// Always the invocation span, with a link to the producer.
    Link,
}

/// Which span of an SQS batch holds the producers' links (`TRACEKIT_SQS_SPANS`).
///
/// Either way every message gets its own `process` span, with its message id and its failure; and
/// either way the links stay within X-Ray's limits (20 linked traces per segment, 100 links per
/// trace): the links left out are counted in `tracekit.links.dropped` on the batch's span (the
/// invocation span under `per-message`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SqsSpans {
    /// Each message's CONSUMER span links its producer, at most 100 links per batch (default).
    #[default]
    PerMessage,
    /// One CONSUMER span `process <queue>` for the batch, with `messaging.batch.message_count` and
    /// a link per producer, at most 20, as OpenTelemetry JS's Lambda instrumentation draws a batch;
    /// the messages' spans are INTERNAL children of it, without links. A batch of one under
    /// `parent-if-single` still continues its producer's trace from its message's span.
    Batch,
}

/// When buffered spans leave the process (`TRACEKIT_FLUSH`).
///
/// Both export after the response has been posted, so the caller never waits; they differ in how much
/// billed time each invocation spends exporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FlushStrategy {
    /// Export after every invocation, bounded by the flush timeout and the deadline (the default, but
    /// under managed concurrency). Every invocation's spans are at the collector before the next
    /// invocation starts.
    #[default]
    EndOfInvocation,
    /// Export only when `max_spans` are buffered or the oldest buffered span has waited `max_age`
    /// (checked after each response and, under managed concurrency, in the background), and always
    /// when the sandbox shuts down. Most invocations pay no export at all. The default when
    /// `AWS_LAMBDA_MAX_CONCURRENCY` > 1 (Lambda Managed Instances): that environment never freezes,
    /// so waiting loses nothing.
    ///
    /// Lambda tells a function process that it is shutting down (SIGTERM) only when an extension is
    /// registered, so [`crate::run`] registers an internal extension named `tracekit` before
    /// the first invocation. Where that registration fails, tracekit warns and flushes at the end of
    /// each invocation instead: buffered spans would otherwise be lost with the sandbox.
    Amortized {
        /// Spans buffered before a flush.
        max_spans: usize,
        /// Longest a buffered span waits for the next flush (measured when an invocation ends).
        max_age: Duration,
    },
}

impl FlushStrategy {
    /// `amortized` with the default thresholds: 128 spans or 10 s.
    pub const fn amortized() -> Self {
        FlushStrategy::Amortized {
            max_spans: DEFAULT_AMORTIZED_MAX_SPANS,
            max_age: DEFAULT_AMORTIZED_MAX_AGE,
        }
    }
}

/// Which `tracing` subscriber records spans (`TRACEKIT_SPAN_PATH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SpanPath {
    /// tracekit's own subscriber: spans kept as compact records and handed to the span buffer when
    /// they close, with no per-span SDK span and no Registry lookups (`tracekit`).
    #[default]
    Tracekit,
    /// tracing-subscriber's Registry with tracing-opentelemetry's layer (`tracing-opentelemetry`):
    /// for a function that adds its own `tracing_subscriber` layers ([`crate::Builder::layer`]
    /// chooses it), or calls `tracing_opentelemetry::OpenTelemetrySpanExt` itself.
    TracingOpentelemetry,
}

/// Log line format (`AWS_LAMBDA_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LogFormat {
    /// One JSON object per line, carrying the X-Ray trace id.
    #[default]
    Json,
    /// Human-readable text.
    Text,
}

impl SamplerConfig {
    /// The SDK sampler this configuration names.
    pub(crate) fn sdk_sampler(&self) -> opentelemetry_sdk::trace::Sampler {
        use opentelemetry_sdk::trace::Sampler;
        let root = |root: &RootSampler| match root {
            RootSampler::AlwaysOn => Sampler::AlwaysOn,
            RootSampler::AlwaysOff => Sampler::AlwaysOff,
            RootSampler::TraceIdRatio(ratio) => Sampler::TraceIdRatioBased(*ratio),
        };
        match self {
            SamplerConfig::AlwaysOn => Sampler::AlwaysOn,
            SamplerConfig::AlwaysOff => Sampler::AlwaysOff,
            SamplerConfig::TraceIdRatio(ratio) => Sampler::TraceIdRatioBased(*ratio),
            SamplerConfig::ParentBased(inner) => Sampler::ParentBased(Box::new(root(inner))),
        }
    }
}

/// Spans kept at most while waiting for a flush (the SDK batch processor's default queue size).
pub(crate) const DEFAULT_MAX_BUFFERED_SPANS: usize = 2048;
/// Room only entry spans (the invocation's SERVER span, SQS CONSUMER spans) may use. They end after
/// their children, so a burst of child spans would otherwise cost the trace its root.
pub(crate) const ENTRY_SPAN_RESERVE: usize = 64;
/// The smallest buffer `OTEL_BSP_MAX_QUEUE_SIZE` may ask for: twice the entry spans' reserve.
const MIN_BUFFERED_SPANS: usize = 2 * ENTRY_SPAN_RESERVE;
/// The largest: a million spans of a few hundred bytes each is already most of a small function's
/// memory.
const MAX_BUFFERED_SPANS: usize = 1_000_000;
/// Spans sent in one export request (the SDK batch processor's default batch size).
const DEFAULT_MAX_EXPORT_BATCH: usize = 512;

/// tracekit's whole configuration.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// `service.name`.
    pub service_name: String,
    /// Extra resource attributes.
    pub resource_attributes: Vec<(String, String)>,
    /// Propagators, in order; empty means none.
    pub propagators: Vec<Propagator>,
    /// Sampler.
    pub sampler: SamplerConfig,
    /// Exporter.
    pub exporter: ExporterConfig,
    /// Upper bound of each flush.
    pub flush_timeout: Duration,
    /// Spans buffered at most (`OTEL_BSP_MAX_QUEUE_SIZE`); the last 64 places are kept for entry
    /// spans.
    pub max_buffered_spans: usize,
    /// Spans handed to the exporter at once (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    pub max_export_batch: usize,
    /// When spans are exported.
    pub flush: FlushStrategy,
    /// Meaning of `Sampled=0`.
    pub sampled_zero: SampledZeroPolicy,
    /// Parent of SQS `process` spans.
    pub sqs_parent: SqsParentPolicy,
    /// Which span of an SQS batch holds the links.
    pub sqs_spans: SqsSpans,
    /// Log filter directives (`level` and `target=level`, comma-separated).
    pub log_filter: String,
    /// Log format.
    pub log_format: LogFormat,
    /// `faas.coldstart` is never true (provisioned concurrency).
    pub provisioned: bool,
    /// `AWS_LAMBDA_MAX_CONCURRENCY`: above 1, invocations share the environment (Lambda Managed
    /// Instances) and it never freezes. 1 when unset or not a whole number, as lambda_runtime reads it.
    pub max_concurrency: u32,
    /// Tracing is off (`OTEL_SDK_DISABLED=true`): no span is recorded or exported, no extension
    /// registers, the SDK interceptor does nothing.
    pub disabled: bool,
    /// The X-Ray annotations `ColdStart` and `Service` on every invocation span
    /// (`TRACEKIT_INVOCATION_ANNOTATIONS`).
    pub invocation_annotations: bool,
    /// What of the handler's outcome goes into the invocation span's metadata (nothing by default).
    pub capture: Capture,
    /// An `init` span for the cold start, in the first invocation's trace (`TRACEKIT_INIT_SPAN`).
    pub init_span: bool,
    /// Which subscriber records spans (`TRACEKIT_SPAN_PATH`).
    pub span_path: SpanPath,
    /// HTTP routes never traced (`TRACEKIT_EXCLUDED_ROUTES`).
    pub excluded_routes: Vec<ExcludedRoute>,
    /// Log lines kept per invocation and written only if it fails (`TRACEKIT_LOG_BUFFER`).
    pub log_buffer: Option<LogBuffer>,
    /// Application Signals (`OTEL_AWS_APPLICATION_SIGNALS_ENABLED`): `aws.local.*` and
    /// `aws.remote.*` attributes on every span and, on the agent path, unsampled spans sent as `T1U`.
    pub application_signals: bool,
    /// CloudWatch metrics ([`crate::metrics`]).
    pub metrics: MetricsConfig,
}

/// How [`crate::metrics`] writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MetricsConfig {
    /// The CloudWatch namespace (`TRACEKIT_METRICS_NAMESPACE`, else `POWERTOOLS_METRICS_NAMESPACE`):
    /// without one, metrics are dropped (and that is said once).
    pub namespace: Option<String>,
    /// The `ColdStart` metric on a cold start (`TRACEKIT_METRICS_COLD_START`).
    pub cold_start: bool,
    /// The function's name (`AWS_LAMBDA_FUNCTION_NAME`), the cold start metric's dimension.
    pub function_name: String,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (tests pass a map, so they never touch the process env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        // Unset and empty are the same, as the OTel spec asks.
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());

        let service_name = get(env::OTEL_SERVICE_NAME)
            .or_else(|| get(env::POWERTOOLS_SERVICE_NAME))
            .or_else(|| get(env::AWS_LAMBDA_FUNCTION_NAME))
            .unwrap_or_else(|| UNKNOWN_SERVICE.to_owned());
        let resource_attributes = match get(env::OTEL_RESOURCE_ATTRIBUTES) {
            Some(value) => parse_key_values(env::OTEL_RESOURCE_ATTRIBUTES, &value)?,
            None => Vec::new(),
        };
        let propagators = match get(env::OTEL_PROPAGATORS) {
            Some(value) => parse_propagators(&value)?,
            None => vec![
                Propagator::TraceContext,
                Propagator::Baggage,
                Propagator::Xray,
            ],
        };
        let sampler = parse_sampler(
            get(env::OTEL_TRACES_SAMPLER).as_deref(),
            get(env::OTEL_TRACES_SAMPLER_ARG).as_deref(),
        )?;
        let exporter = parse_exporter(&get)?;
        let flush_timeout = match get(env::TRACEKIT_FLUSH_TIMEOUT_MS) {
            Some(value) => parse_millis(env::TRACEKIT_FLUSH_TIMEOUT_MS, &value)?,
            None => DEFAULT_FLUSH_TIMEOUT,
        };
        // lambda_runtime falls back to one invocation at a time on a value it cannot read; so does
        // tracekit, rather than fail a function that runs.
        let max_concurrency = get(env::AWS_LAMBDA_MAX_CONCURRENCY)
            .and_then(|value| value.trim().parse::<u32>().ok())
            .unwrap_or(1)
            .max(1);
        let max_buffered_spans = match get(env::OTEL_BSP_MAX_QUEUE_SIZE) {
            Some(value) => value
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (MIN_BUFFERED_SPANS..=MAX_BUFFERED_SPANS).contains(n))
                .ok_or_else(|| {
                    ConfigError::invalid(
                        env::OTEL_BSP_MAX_QUEUE_SIZE,
                        &value,
                        "a whole number from 128 to 1000000",
                    )
                })?,
            None => DEFAULT_MAX_BUFFERED_SPANS,
        };
        let max_export_batch = match get(env::OTEL_BSP_MAX_EXPORT_BATCH_SIZE) {
            Some(value) => value
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max_buffered_spans).contains(n))
                .ok_or_else(|| {
                    ConfigError::invalid(
                        env::OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
                        &value,
                        "a whole number from 1 to the queue size (OTEL_BSP_MAX_QUEUE_SIZE)",
                    )
                })?,
            None => DEFAULT_MAX_EXPORT_BATCH.min(max_buffered_spans),
        };
        let flush = parse_flush_strategy(&get, max_concurrency, max_buffered_spans)?;
        let sampled_zero = match get(env::TRACEKIT_SAMPLED_ZERO).as_deref().map(str::trim) {
            None => SampledZeroPolicy::default_for(&exporter),
            Some("defer") => SampledZeroPolicy::Defer,
            Some("honor") => SampledZeroPolicy::Honor,
            Some("sample") => SampledZeroPolicy::Sample,
            Some(other) => {
                return Err(ConfigError::invalid(
                    env::TRACEKIT_SAMPLED_ZERO,
                    other,
                    "one of defer, honor, sample",
                ));
            }
        };
        let sqs_parent = match get(env::TRACEKIT_SQS_PARENT).as_deref().map(str::trim) {
            None => SqsParentPolicy::default(),
            Some("parent-if-single") => SqsParentPolicy::ParentIfSingle,
            Some("link") => SqsParentPolicy::Link,
            Some(other) => {
                return Err(ConfigError::invalid(
                    env::TRACEKIT_SQS_PARENT,
                    other,
                    "one of parent-if-single, link",
                ));
            }
        };
        let sqs_spans = match get(env::TRACEKIT_SQS_SPANS).as_deref().map(str::trim) {
            None | Some("per-message") => SqsSpans::PerMessage,
            Some("batch") => SqsSpans::Batch,
            Some(other) => {
                return Err(ConfigError::invalid(
                    env::TRACEKIT_SQS_SPANS,
                    other,
                    "one of per-message, batch",
                ));
            }
        };
        // Lambda's log level (its advanced logging controls) wins, as in lambda_runtime's own
        // subscriber: it is what the function's configuration says, and Lambda drops JSON lines below
        // it anyway. `RUST_LOG` decides when it is unset (`cargo lambda watch`, tests).
        let log_filter = match (get(env::AWS_LAMBDA_LOG_LEVEL), get(env::RUST_LOG)) {
            (Some(level), _) => lambda_log_level(&level)?.to_owned(),
            (None, Some(directives)) => {
                validate_filter(&directives)?;
                directives
            }
            (None, None) => "info".to_owned(),
        };
        let log_format = match get(env::AWS_LAMBDA_LOG_FORMAT) {
            None => LogFormat::default(),
            Some(value) if value.eq_ignore_ascii_case("json") => LogFormat::Json,
            Some(value) if value.eq_ignore_ascii_case("text") => LogFormat::Text,
            Some(other) => {
                return Err(ConfigError::invalid(
                    env::AWS_LAMBDA_LOG_FORMAT,
                    &other,
                    "JSON or Text",
                ));
            }
        };
        let provisioned =
            get(env::AWS_LAMBDA_INITIALIZATION_TYPE).as_deref() == Some("provisioned-concurrency");
        let application_signals =
            parse_bool(&get, env::OTEL_AWS_APPLICATION_SIGNALS_ENABLED, false)?;

        let disabled = parse_bool(&get, env::OTEL_SDK_DISABLED, false)?;
        // Off means nothing to export and nothing to wait for: no exporter, no extension.
        let (exporter, flush) = if disabled {
            (ExporterConfig::None, FlushStrategy::EndOfInvocation)
        } else {
            (exporter, flush)
        };
        let invocation_annotations = parse_bool(&get, env::TRACEKIT_INVOCATION_ANNOTATIONS, true)?;
        let capture = Capture {
            response: parse_bool(&get, env::TRACEKIT_CAPTURE_RESPONSE, false)?,
            error: parse_bool(&get, env::TRACEKIT_CAPTURE_ERROR, false)?,
            max_bytes: parse_bounded(
                &get,
                env::TRACEKIT_CAPTURE_MAX_BYTES,
                1..=MAX_CAPTURE_BYTES,
                DEFAULT_CAPTURE_BYTES,
                "a whole number of bytes from 1 to 32768",
            )?,
        };
        let init_span = parse_bool(&get, env::TRACEKIT_INIT_SPAN, false)?;
        let span_path = match get(env::TRACEKIT_SPAN_PATH) {
            None => SpanPath::default(),
            Some(value) if value.trim().eq_ignore_ascii_case("tracekit") => SpanPath::Tracekit,
            Some(value) if value.trim().eq_ignore_ascii_case("tracing-opentelemetry") => {
                SpanPath::TracingOpentelemetry
            }
            Some(other) => {
                return Err(ConfigError::invalid(
                    env::TRACEKIT_SPAN_PATH,
                    &other,
                    "tracekit or tracing-opentelemetry",
                ));
            }
        };
        let excluded_routes = match get(env::TRACEKIT_EXCLUDED_ROUTES) {
            Some(value) => parse_excluded_routes(&value)?,
            None => Vec::new(),
        };
        let log_buffer = parse_log_buffer(&get)?;
        let metrics = MetricsConfig {
            namespace: parse_namespace(&get)?,
            cold_start: parse_bool(&get, env::TRACEKIT_METRICS_COLD_START, false)?,
            function_name: get(env::AWS_LAMBDA_FUNCTION_NAME).unwrap_or_default(),
        };

        Ok(Config {
            service_name,
            resource_attributes,
            propagators,
            sampler,
            exporter,
            flush_timeout,
            max_buffered_spans,
            max_export_batch,
            flush,
            sampled_zero,
            sqs_parent,
            sqs_spans,
            log_filter,
            log_format,
            provisioned,
            max_concurrency,
            disabled,
            invocation_annotations,
            capture,
            init_span,
            span_path,
            excluded_routes,
            log_buffer,
            application_signals,
            metrics,
        })
    }
}

fn parse_key_values(
    variable: &'static str,
    value: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    const EXPECTED: &str = "comma-separated key=value pairs with percent-encoded values";
    value
        .split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let (key, raw) = pair
                .split_once('=')
                .ok_or_else(|| ConfigError::invalid(variable, value, EXPECTED))?;
            let key = key.trim();
            if key.is_empty() {
                return Err(ConfigError::invalid(variable, value, EXPECTED));
            }
            let decoded = percent_encoding::percent_decode_str(raw.trim())
                .decode_utf8()
                .map_err(|_| ConfigError::invalid(variable, value, EXPECTED))?;
            Ok((key.to_owned(), decoded.into_owned()))
        })
        .collect()
}

fn parse_propagators(value: &str) -> Result<Vec<Propagator>, ConfigError> {
    const EXPECTED: &str =
        "a comma-separated list of tracecontext, baggage, xray, xray-lambda, none";
    let mut propagators = Vec::new();
    let mut none = false;
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let propagator = match name {
            "tracecontext" => Propagator::TraceContext,
            "baggage" => Propagator::Baggage,
            "xray" => Propagator::Xray,
            "xray-lambda" => Propagator::XrayLambda,
            "none" => {
                none = true;
                continue;
            }
            _ => return Err(ConfigError::invalid(env::OTEL_PROPAGATORS, value, EXPECTED)),
        };
        if !propagators.contains(&propagator) {
            propagators.push(propagator);
        }
    }
    if none && !propagators.is_empty() {
        return Err(ConfigError::invalid(
            env::OTEL_PROPAGATORS,
            value,
            "`none` alone, or a list without `none`",
        ));
    }
    if propagators.contains(&Propagator::Xray) && propagators.contains(&Propagator::XrayLambda) {
        return Err(ConfigError::invalid(
            env::OTEL_PROPAGATORS,
            value,
            "either xray or xray-lambda, not both",
        ));
    }
    Ok(propagators)
}

fn parse_sampler(name: Option<&str>, arg: Option<&str>) -> Result<SamplerConfig, ConfigError> {
    const EXPECTED: &str = "one of always_on, always_off, traceidratio, parentbased_always_on, \
                            parentbased_always_off, parentbased_traceidratio";
    let ratio = || -> Result<f64, ConfigError> {
        match arg.map(str::trim) {
            None => Ok(1.0),
            Some(raw) => match raw.parse::<f64>() {
                Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
                _ => Err(ConfigError::invalid(
                    env::OTEL_TRACES_SAMPLER_ARG,
                    raw,
                    "a number from 0 to 1",
                )),
            },
        }
    };
    Ok(match name.map(str::trim) {
        None | Some("parentbased_always_on") => SamplerConfig::ParentBased(RootSampler::AlwaysOn),
        Some("always_on") => SamplerConfig::AlwaysOn,
        Some("always_off") => SamplerConfig::AlwaysOff,
        Some("traceidratio") => SamplerConfig::TraceIdRatio(ratio()?),
        Some("parentbased_always_off") => SamplerConfig::ParentBased(RootSampler::AlwaysOff),
        Some("parentbased_traceidratio") => {
            SamplerConfig::ParentBased(RootSampler::TraceIdRatio(ratio()?))
        }
        Some(other) => {
            return Err(ConfigError::invalid(
                env::OTEL_TRACES_SAMPLER,
                other,
                EXPECTED,
            ));
        }
    })
}

fn parse_exporter(get: &impl Fn(&str) -> Option<String>) -> Result<ExporterConfig, ConfigError> {
    let name = get(env::OTEL_TRACES_EXPORTER);
    let daemon_address = || match get(env::AWS_XRAY_DAEMON_ADDRESS) {
        Some(address) => parse_daemon_address(&address),
        None => Ok(DEFAULT_XRAY_DAEMON_ADDRESS.to_owned()),
    };
    match name.as_deref().map(str::trim) {
        None | Some("otlp") => {
            let otlp = parse_otlp(get)?;
            let endpoint_set = get(env::OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).is_some()
                || get(env::OTEL_EXPORTER_OTLP_ENDPOINT).is_some();
            if get(env::AWS_LAMBDA_FUNCTION_NAME).is_some() && !endpoint_set {
                Ok(ExporterConfig::OtlpUdp {
                    agent_address: daemon_address()?,
                })
            } else {
                Ok(ExporterConfig::Otlp(otlp))
            }
        }
        Some("xray") => Ok(ExporterConfig::Xray {
            daemon_address: daemon_address()?,
        }),
        Some("console") => Ok(ExporterConfig::Console),
        Some("none") => Ok(ExporterConfig::None),
        Some(other) => Err(ConfigError::invalid(
            env::OTEL_TRACES_EXPORTER,
            other,
            "one of otlp, xray, console, none",
        )),
    }
}

fn parse_otlp(get: &impl Fn(&str) -> Option<String>) -> Result<OtlpConfig, ConfigError> {
    let either = |specific: &'static str, generic: &'static str| {
        get(specific)
            .map(|value| (specific, value))
            .or_else(|| get(generic).map(|value| (generic, value)))
    };

    let endpoint = match get(env::OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) {
        Some(url) => validate_http_url(env::OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, url.trim())?,
        None => {
            let base = get(env::OTEL_EXPORTER_OTLP_ENDPOINT)
                .unwrap_or_else(|| DEFAULT_OTLP_ENDPOINT.to_owned());
            let base = validate_http_url(env::OTEL_EXPORTER_OTLP_ENDPOINT, base.trim())?;
            format!("{}{OTLP_TRACES_PATH}", base.trim_end_matches('/'))
        }
    };
    let protocol = match either(
        env::OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
        env::OTEL_EXPORTER_OTLP_PROTOCOL,
    ) {
        None => OtlpProtocol::HttpProtobuf,
        Some((_, value)) if value.trim() == "http/protobuf" => OtlpProtocol::HttpProtobuf,
        Some((_, value)) if value.trim() == "http/json" => OtlpProtocol::HttpJson,
        Some((variable, value)) => {
            return Err(ConfigError::invalid(
                variable,
                &value,
                "http/protobuf or http/json (grpc is not built in: it would add tonic to every function)",
            ));
        }
    };
    let headers = match either(
        env::OTEL_EXPORTER_OTLP_TRACES_HEADERS,
        env::OTEL_EXPORTER_OTLP_HEADERS,
    ) {
        Some((variable, value)) => parse_key_values(variable, &value)?,
        None => Vec::new(),
    };
    let timeout = match either(
        env::OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
        env::OTEL_EXPORTER_OTLP_TIMEOUT,
    ) {
        Some((variable, value)) => parse_millis(variable, &value)?,
        None => DEFAULT_OTLP_TIMEOUT,
    };
    let compression = match either(
        env::OTEL_EXPORTER_OTLP_TRACES_COMPRESSION,
        env::OTEL_EXPORTER_OTLP_COMPRESSION,
    ) {
        None => OtlpCompression::None,
        Some((_, value)) if value.trim() == "none" => OtlpCompression::None,
        Some((_, value)) if value.trim() == "gzip" => OtlpCompression::Gzip,
        Some((variable, value)) => {
            return Err(ConfigError::invalid(variable, &value, "gzip or none"));
        }
    };
    let certificate = either(
        env::OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE,
        env::OTEL_EXPORTER_OTLP_CERTIFICATE,
    )
    .map(|(_, path)| std::path::PathBuf::from(path.trim()));
    let region = match get(env::TRACEKIT_OTLP_XRAY_REGION) {
        Some(region) if is_region(region.trim()) => Some(region.trim().to_owned()),
        Some(other) => {
            return Err(ConfigError::invalid(
                env::TRACEKIT_OTLP_XRAY_REGION,
                &other,
                "a region name such as us-east-1",
            ));
        }
        None => xray_region(&endpoint),
    };
    // An API key replaces the signature (X-Ray's OTLP endpoint takes either).
    let api_key = headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("authorization"));
    let xray = region.map(|region| XrayEndpoint {
        region,
        sign: !api_key,
    });
    Ok(OtlpConfig {
        endpoint,
        protocol,
        headers,
        timeout,
        compression,
        certificate,
        xray,
    })
}

/// The region of an X-Ray OTLP endpoint URL (`https://xray.<region>.amazonaws.com/...`, or
/// `.amazonaws.com.cn` in China), the way AWS's distributions recognise it to sign.
pub(crate) fn xray_region(endpoint: &str) -> Option<String> {
    let uri: http::Uri = endpoint.parse().ok()?;
    if uri.scheme_str() != Some("https") {
        return None;
    }
    let host = uri.host()?.to_ascii_lowercase();
    let rest = host.strip_prefix("xray.")?;
    let region = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))?;
    is_region(region).then(|| region.to_owned())
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`: lowercase letters, digits and inner dashes.
fn is_region(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
}

/// `http://` (the ADOT layer on localhost, a collector in the VPC) or `https://` (X-Ray's OTLP
/// endpoint, a vendor); `https://` needs tracekit's `https` feature.
fn validate_http_url(variable: &'static str, url: &str) -> Result<String, ConfigError> {
    const EXPECTED: &str = "an http:// or https:// URL such as http://localhost:4318 or https://xray.us-east-1.amazonaws.com/v1/traces";
    let parsed: http::Uri = url
        .parse()
        .map_err(|_| ConfigError::invalid(variable, url, EXPECTED))?;
    if parsed.host().is_none() {
        return Err(ConfigError::invalid(variable, url, EXPECTED));
    }
    match parsed.scheme_str() {
        Some("http") => {}
        #[cfg(feature = "https")]
        Some("https") => {}
        #[cfg(not(feature = "https"))]
        Some("https") => {
            return Err(ConfigError::NotBuilt {
                variable,
                value: url.to_owned(),
                feature: "https",
            });
        }
        _ => return Err(ConfigError::invalid(variable, url, EXPECTED)),
    }
    Ok(url.to_owned())
}

fn parse_daemon_address(value: &str) -> Result<String, ConfigError> {
    const EXPECTED: &str = "host:port, such as 127.0.0.1:2000";
    let value = value.trim();
    match value.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0) => {
            Ok(value.to_owned())
        }
        _ => Err(ConfigError::invalid(
            env::AWS_XRAY_DAEMON_ADDRESS,
            value,
            EXPECTED,
        )),
    }
}

fn parse_flush_strategy(
    get: &impl Fn(&str) -> Option<String>,
    max_concurrency: u32,
    max_buffered_spans: usize,
) -> Result<FlushStrategy, ConfigError> {
    // The places child spans can fill: the rest is kept for entry spans.
    let most = max_buffered_spans - ENTRY_SPAN_RESERVE;
    let max_spans = match get(env::TRACEKIT_FLUSH_MAX_SPANS) {
        Some(value) => value
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=most).contains(n))
            .ok_or_else(|| {
                ConfigError::invalid(
                    env::TRACEKIT_FLUSH_MAX_SPANS,
                    &value,
                    "a whole number from 1 to the buffer's size (OTEL_BSP_MAX_QUEUE_SIZE, 2048 by \
                     default) less the 64 places kept for entry spans",
                )
            })?,
        None => DEFAULT_AMORTIZED_MAX_SPANS,
    };
    let max_age = match get(env::TRACEKIT_FLUSH_MAX_AGE_MS) {
        Some(value) => parse_millis(env::TRACEKIT_FLUSH_MAX_AGE_MS, &value)?,
        None => DEFAULT_AMORTIZED_MAX_AGE,
    };
    // The thresholds are read (and validated) whatever the strategy, so a typo fails the init
    // even before someone switches to `amortized`.
    match get(env::TRACEKIT_FLUSH).as_deref().map(str::trim) {
        // Under managed concurrency the environment never freezes: nothing is lost by waiting, and
        // a flush after every one of many concurrent invocations would export a few spans each.
        None if max_concurrency > 1 => Ok(FlushStrategy::Amortized { max_spans, max_age }),
        None | Some("end-of-invocation") => Ok(FlushStrategy::EndOfInvocation),
        Some("amortized") => Ok(FlushStrategy::Amortized { max_spans, max_age }),
        Some(other) => Err(ConfigError::invalid(
            env::TRACEKIT_FLUSH,
            other,
            "end-of-invocation or amortized",
        )),
    }
}

fn parse_millis(variable: &'static str, value: &str) -> Result<Duration, ConfigError> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| ConfigError::invalid(variable, value, "a whole number of milliseconds"))
}

/// The metrics' namespace: tracekit's variable, else Powertools'; CloudWatch's rules for a
/// namespace.
fn parse_namespace(get: &impl Fn(&str) -> Option<String>) -> Result<Option<String>, ConfigError> {
    let (variable, value) = match (
        get(env::TRACEKIT_METRICS_NAMESPACE),
        get(env::POWERTOOLS_METRICS_NAMESPACE),
    ) {
        (Some(value), _) => (env::TRACEKIT_METRICS_NAMESPACE, value),
        (None, Some(value)) => (env::POWERTOOLS_METRICS_NAMESPACE, value),
        (None, None) => return Ok(None),
    };
    let valid = value.len() <= 255
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_/#: ".contains(c));
    if !valid {
        return Err(ConfigError::invalid(
            variable,
            &value,
            "a CloudWatch namespace: 1 to 255 of 0-9A-Za-z . - _ / # : and space",
        ));
    }
    Ok(Some(value))
}

fn parse_bool(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(variable) {
        None => Ok(default),
        Some(value) if value.trim().eq_ignore_ascii_case("true") => Ok(true),
        Some(value) if value.trim().eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(ConfigError::invalid(variable, &other, "true or false")),
    }
}

fn parse_bounded(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    range: std::ops::RangeInclusive<usize>,
    default: usize,
    expected: &'static str,
) -> Result<usize, ConfigError> {
    match get(variable) {
        None => Ok(default),
        Some(value) => value
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| ConfigError::invalid(variable, &value, expected)),
    }
}

/// What of the handler's outcome the invocation span keeps as X-Ray metadata, under the service's
/// namespace (Powertools' Tracer keeps `<handler> response` and `<handler> error` the same way).
/// Off by default: tracekit records no payload unless asked. The JSON is cut to `max_bytes` (and
/// marked so); a streamed response is never captured. A captured HTTP response (API Gateway, ALB,
/// function URL, by hand or by lambda_http) keeps the names of its `Authorization`,
/// `Proxy-Authorization`, `Cookie`, `Set-Cookie` and `X-Amz-Security-Token` headers (in any case, in
/// `headers` and `multiValueHeaders`) with the value `REDACTED`, and each entry of its `cookies` so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capture {
    /// The response, as the runtime serializes it (`TRACEKIT_CAPTURE_RESPONSE`).
    pub response: bool,
    /// The error, as the runtime reports it: `errorType` and `errorMessage`
    /// (`TRACEKIT_CAPTURE_ERROR`).
    pub error: bool,
    /// Bytes of JSON kept of each (`TRACEKIT_CAPTURE_MAX_BYTES`).
    pub max_bytes: usize,
}

impl Default for Capture {
    fn default() -> Self {
        Capture {
            response: false,
            error: false,
            max_bytes: DEFAULT_CAPTURE_BYTES,
        }
    }
}

/// A span's share of an agent datagram (64 KiB, base64) leaves room for 32 KiB of captured JSON.
const MAX_CAPTURE_BYTES: usize = 32 * 1024;
const DEFAULT_CAPTURE_BYTES: usize = 4096;

/// An HTTP route never traced (`TRACEKIT_EXCLUDED_ROUTES`): `GET /health` (that method only),
/// `/health` (any method) or `/internal/*` (`/internal` and any path under it). It is matched against
/// the event's route (API Gateway's route or resource, when there is one) and its path, before any
/// span is recorded: an excluded invocation records no span at all, its SDK calls included, and
/// sends nothing (Application Signals included).
///
/// How an entry matches:
/// - the method is compared without regard to case; the path with regard to it, as API Gateway and
///   ALB route (`/Health` is not `/health`);
/// - repeated slashes count as one and a trailing slash is ignored, in the entry and in the
///   request alike: `/status/200`, `/status/200/` and `//status/200` are one path;
/// - a `*` is a wildcard only as an entry's last character: `/internal/*` is `/internal` and what
///   is under it, `/int*` any path that begins `/int`. An entry that could not match as written is
///   refused at init, naming the entry: a `*` elsewhere (paths do not hold a `*`), a `?` or `#` (the
///   path a request is matched on holds no query or fragment), a space inside the path, a method
///   that is not letters, a path that does not begin with `/`.
///
/// An entry that excludes every route (`/*`, or `GET /*` for every `GET`) is accepted, with one
/// warning at init.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExcludedRoute {
    /// The method, upper case; `None` matches any.
    pub method: Option<String>,
    /// The path or route, without the trailing `*` of a prefix, its slashes normalized (one at a
    /// time, none at the end but for `/` itself and a prefix's own).
    pub path: String,
    /// `path` is a prefix (the entry ended in `*`).
    pub prefix: bool,
}

impl ExcludedRoute {
    /// Whether a request with this method, route and path is excluded.
    pub(crate) fn matches(
        &self,
        method: Option<&str>,
        route: Option<&str>,
        path: Option<&str>,
    ) -> bool {
        if let Some(wanted) = &self.method
            && !method.is_some_and(|method| method.eq_ignore_ascii_case(wanted))
        {
            return false;
        }
        let fits = |candidate: &str| {
            // API Gateway's route keys carry the method (`GET /health`): compare the path part.
            let candidate = candidate
                .rsplit_once(' ')
                .map_or(candidate, |(_, path)| path);
            let candidate = normalized_path(candidate);
            if !self.prefix {
                return *candidate == *self.path;
            }
            // `/internal/*` holds `/internal` itself, which a request for `/internal/` becomes.
            candidate.starts_with(self.path.as_str())
                || self
                    .path
                    .strip_suffix('/')
                    .is_some_and(|directory| !directory.is_empty() && *candidate == *directory)
        };
        route.is_some_and(fits) || path.is_some_and(fits)
    }

    /// Whether this entry excludes every route (of its method, when it names one).
    pub(crate) fn excludes_every_route(&self) -> bool {
        self.prefix && self.path == "/"
    }
}

/// `path` with each run of slashes made one, and no trailing slash (but for `/` itself).
fn normalized_path(path: &str) -> std::borrow::Cow<'_, str> {
    let trailing = path.len() > 1 && path.ends_with('/');
    if !trailing && !path.contains("//") {
        return std::borrow::Cow::Borrowed(path);
    }
    let mut normal = String::with_capacity(path.len());
    for c in path.chars() {
        if c == '/' && normal.ends_with('/') {
            continue;
        }
        normal.push(c);
    }
    if normal.len() > 1 && normal.ends_with('/') {
        normal.pop();
    }
    std::borrow::Cow::Owned(normal)
}

fn parse_excluded_routes(value: &str) -> Result<Vec<ExcludedRoute>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(parse_excluded_route)
        .collect()
}

/// One entry of `TRACEKIT_EXCLUDED_ROUTES`; an error names the entry and what it breaks.
fn parse_excluded_route(entry: &str) -> Result<ExcludedRoute, ConfigError> {
    let refuse = |expected| {
        Err(ConfigError::invalid(
            env::TRACEKIT_EXCLUDED_ROUTES,
            entry,
            expected,
        ))
    };
    let (method, path) = match entry.split_once(char::is_whitespace) {
        Some((method, path)) => (Some(method), path.trim()),
        None => (None, entry),
    };
    if method.is_some_and(|method| method.starts_with('/')) {
        return refuse("one path per entry, without spaces; entries are separated by commas");
    }
    if method
        .is_some_and(|method| method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()))
    {
        return refuse(
            "an entry `[METHOD ]/path` whose method is letters only, such as `GET /health`",
        );
    }
    if !path.starts_with('/') {
        return refuse("an entry `[METHOD ]/path` whose path begins with `/`, such as `/health`");
    }
    if path.contains(char::is_whitespace) {
        return refuse("one path per entry, without spaces; entries are separated by commas");
    }
    if path.contains(['?', '#']) {
        return refuse(
            "a path without a query or fragment: requests are matched on their path alone",
        );
    }
    let (path, prefix) = match path.strip_suffix('*') {
        Some(prefix) => (prefix, true),
        None => (path, false),
    };
    if path.contains('*') {
        return refuse(
            "a `*` only as the entry's last character (`/internal/*`): it is no wildcard elsewhere, and a path holds none",
        );
    }
    let path = if prefix {
        // A prefix keeps its trailing slash (`/internal/` is not `/internalx`); only runs of
        // slashes are made one.
        let mut normal = normalized_path(path).into_owned();
        if path.ends_with('/') && !normal.ends_with('/') {
            normal.push('/');
        }
        normal
    } else {
        normalized_path(path).into_owned()
    };
    Ok(ExcludedRoute {
        method: method.map(str::to_ascii_uppercase),
        path,
        prefix,
    })
}

/// The one warning for `TRACEKIT_EXCLUDED_ROUTES` entries that exclude every route (`/*`): written
/// once, at init, where a log line can be seen.
pub(crate) fn warn_if_every_route_is_excluded(config: &Config) {
    if let Some(route) = config
        .excluded_routes
        .iter()
        .find(|route| route.excludes_every_route())
    {
        let which = route.method.as_deref().map_or_else(
            || "every route".to_owned(),
            |method| format!("every {method} route"),
        );
        tracing::warn!(
            target: "tracekit",
            variable = env::TRACEKIT_EXCLUDED_ROUTES,
            "{} excludes {which}: those invocations record and send no span at all",
            env::TRACEKIT_EXCLUDED_ROUTES,
        );
    }
}

/// Log buffering (`TRACEKIT_LOG_BUFFER`), as Powertools' Logger buffers: the lines its directives
/// enable (`debug`, or `level` and `target=level` directives as in `RUST_LOG`: `orders=debug` keeps
/// only the `orders` crate's) that the log filter would not write are kept for the invocation that
/// logged them (at most `max_bytes`, the oldest dropped first), and written only if that invocation
/// fails (the handler returned an error, panicked or answered 5xx) or, with `flush_on_error_log`,
/// when it logs an error. Each invocation keeps its own lines, so concurrent invocations never
/// write each other's. The dependencies tracekit keeps quiet stay quiet; lines logged outside an
/// invocation, or from a task the handler spawned, are not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogBuffer {
    /// Which lines are kept: `tracing` target directives.
    pub directives: String,
    /// Bytes kept per invocation (`TRACEKIT_LOG_BUFFER_MAX_BYTES`).
    pub max_bytes: usize,
    /// An `error!` line writes what is buffered (`TRACEKIT_LOG_BUFFER_FLUSH_ON_ERROR_LOG`).
    pub flush_on_error_log: bool,
}

/// Powertools' default buffer size.
const DEFAULT_LOG_BUFFER_BYTES: usize = 20_480;

fn parse_log_buffer(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<LogBuffer>, ConfigError> {
    let max_bytes = parse_bounded(
        get,
        env::TRACEKIT_LOG_BUFFER_MAX_BYTES,
        1024..=1_048_576,
        DEFAULT_LOG_BUFFER_BYTES,
        "a whole number of bytes from 1024 to 1048576",
    )?;
    let flush_on_error_log = parse_bool(get, env::TRACEKIT_LOG_BUFFER_FLUSH_ON_ERROR_LOG, true)?;
    let Some(value) = get(env::TRACEKIT_LOG_BUFFER) else {
        return Ok(None);
    };
    let directives = value.trim();
    if directives.eq_ignore_ascii_case("off") || directives.eq_ignore_ascii_case("false") {
        return Ok(None);
    }
    if directives
        .parse::<tracing_subscriber::filter::Targets>()
        .is_err()
    {
        return Err(ConfigError::invalid(
            env::TRACEKIT_LOG_BUFFER,
            &value,
            "off, a level such as `debug`, or `target=level` directives such as `orders=debug`",
        ));
    }
    Ok(Some(LogBuffer {
        directives: directives.to_owned(),
        max_bytes,
        flush_on_error_log,
    }))
}

fn validate_filter(directives: &str) -> Result<(), ConfigError> {
    // Target filters, not `EnvFilter`: span and field directives are rarely used in a function, and
    // `EnvFilter`'s regex engine would add more to the binary than the rest of tracekit's logging.
    directives
        .parse::<tracing_subscriber::filter::Targets>()
        .map(|_| ())
        .map_err(|_| {
            ConfigError::invalid(
                env::RUST_LOG,
                directives,
                "comma-separated `level` or `target=level` directives such as `info` or `info,my_crate=debug`",
            )
        })
}

/// [Lambda log levels](https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-advanced.html)
/// mapped onto `tracing` levels (`FATAL` has no `tracing` level: it keeps errors).
fn lambda_log_level(level: &str) -> Result<&'static str, ConfigError> {
    Ok(match level.trim().to_ascii_uppercase().as_str() {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARN" => "warn",
        "ERROR" | "FATAL" => "error",
        _ => {
            return Err(ConfigError::invalid(
                env::AWS_LAMBDA_LOG_LEVEL,
                level,
                "one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL",
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    type Vars = &'static [(&'static str, &'static str)];

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    fn rejected_variable(vars: &[(&str, &str)]) -> &'static str {
        match config(vars) {
            Err(ConfigError::Invalid { variable, .. } | ConfigError::NotBuilt { variable, .. }) => {
                variable
            }
            Ok(config) => panic!("{vars:?} should be rejected, got {config:?}"),
        }
    }

    #[cfg(not(feature = "https"))]
    #[test]
    fn an_https_endpoint_in_a_build_without_tls_names_the_feature() {
        for variable in [
            env::OTEL_EXPORTER_OTLP_ENDPOINT,
            env::OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
        ] {
            let error = config(&[(variable, "https://collector.example.com/v1/traces")])
                .expect_err("refused");
            assert_eq!(
                error,
                ConfigError::NotBuilt {
                    variable,
                    value: "https://collector.example.com/v1/traces".into(),
                    feature: "https",
                }
            );
            assert!(
                error
                    .to_string()
                    .contains(r#"tracekit = { version = "0.1", features = ["https"] }"#),
                "{error}"
            );
        }
    }

    #[test]
    fn defaults_export_otlp_to_the_local_collector() {
        let config = config(&[]).expect("defaults are valid");
        assert_eq!(config.service_name, "unknown_service");
        assert_eq!(
            config.exporter,
            ExporterConfig::Otlp(OtlpConfig {
                endpoint: "http://localhost:4318/v1/traces".into(),
                protocol: OtlpProtocol::HttpProtobuf,
                headers: vec![],
                timeout: Duration::from_secs(10),
                compression: OtlpCompression::None,
                certificate: None,
                xray: None,
            })
        );
        assert_eq!(
            config.propagators,
            [
                Propagator::TraceContext,
                Propagator::Baggage,
                Propagator::Xray
            ]
        );
        assert_eq!(
            config.sampler,
            SamplerConfig::ParentBased(RootSampler::AlwaysOn)
        );
        assert_eq!(config.flush_timeout, Duration::from_millis(500));
        assert_eq!(config.flush, FlushStrategy::EndOfInvocation);
        assert_eq!(config.sampled_zero, SampledZeroPolicy::Defer);
        assert_eq!(config.sqs_parent, SqsParentPolicy::ParentIfSingle);
        assert_eq!(config.sqs_spans, SqsSpans::PerMessage);
        assert_eq!(config.log_filter, "info");
        assert_eq!(config.log_format, LogFormat::Json);
        assert!(!config.provisioned);
        assert_eq!(config.max_concurrency, 1);
    }

    #[test]
    fn otlp_in_lambda_without_an_endpoint_goes_to_the_agent() {
        // (variables, expected exporter, reason)
        let agent = |address: &str| ExporterConfig::OtlpUdp {
            agent_address: address.to_owned(),
        };
        let collector = |endpoint: &str| {
            ExporterConfig::Otlp(OtlpConfig {
                endpoint: endpoint.to_owned(),
                protocol: OtlpProtocol::HttpProtobuf,
                headers: vec![],
                timeout: Duration::from_secs(10),
                compression: OtlpCompression::None,
                certificate: None,
                xray: None,
            })
        };
        let cases: &[(Vars, ExporterConfig, &str)] = &[
            (
                &[("AWS_LAMBDA_FUNCTION_NAME", "orders")],
                agent("127.0.0.1:2000"),
                "in Lambda, nothing set: the agent at its default address",
            ),
            (
                &[
                    ("AWS_LAMBDA_FUNCTION_NAME", "orders"),
                    ("AWS_XRAY_DAEMON_ADDRESS", "169.254.79.129:2000"),
                    ("OTEL_TRACES_EXPORTER", "otlp"),
                ],
                agent("169.254.79.129:2000"),
                "the address Lambda sets",
            ),
            (
                &[
                    ("AWS_LAMBDA_FUNCTION_NAME", "orders"),
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
                ],
                collector("http://localhost:4318/v1/traces"),
                "a generic endpoint chooses a collector",
            ),
            (
                &[
                    ("AWS_LAMBDA_FUNCTION_NAME", "orders"),
                    (
                        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                        "http://collector:4318/v1/traces",
                    ),
                ],
                collector("http://collector:4318/v1/traces"),
                "a traces endpoint chooses a collector",
            ),
            (
                &[],
                collector("http://localhost:4318/v1/traces"),
                "outside Lambda the OTLP default is unchanged",
            ),
        ];
        for (vars, expected, reason) in cases {
            let config = config(vars).unwrap_or_else(|e| panic!("{reason}: {e}"));
            assert_eq!(&config.exporter, expected, "{reason}");
        }
    }

    #[test]
    fn the_agent_path_still_validates_otlp_variables() {
        let vars = [
            ("AWS_LAMBDA_FUNCTION_NAME", "orders"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ];
        assert_eq!(rejected_variable(&vars), "OTEL_EXPORTER_OTLP_PROTOCOL");
        let vars = [
            ("AWS_LAMBDA_FUNCTION_NAME", "orders"),
            ("AWS_XRAY_DAEMON_ADDRESS", "127.0.0.1"),
        ];
        assert_eq!(rejected_variable(&vars), "AWS_XRAY_DAEMON_ADDRESS");
    }

    #[test]
    fn sampled_zero_is_honoured_when_xray_is_the_backend() {
        let cases: &[(Vars, SampledZeroPolicy, &str)] = &[
            (
                &[("AWS_LAMBDA_FUNCTION_NAME", "orders")],
                SampledZeroPolicy::Honor,
                "the agent",
            ),
            (
                &[("OTEL_TRACES_EXPORTER", "xray")],
                SampledZeroPolicy::Honor,
                "segments to the daemon",
            ),
            (
                &[
                    ("AWS_LAMBDA_FUNCTION_NAME", "orders"),
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
                ],
                SampledZeroPolicy::Defer,
                "a collector decides for itself",
            ),
            (
                &[
                    ("AWS_LAMBDA_FUNCTION_NAME", "orders"),
                    ("TRACEKIT_SAMPLED_ZERO", "defer"),
                ],
                SampledZeroPolicy::Defer,
                "an explicit policy wins",
            ),
        ];
        for (vars, expected, reason) in cases {
            let config = config(vars).unwrap_or_else(|e| panic!("{reason}: {e}"));
            assert_eq!(config.sampled_zero, *expected, "{reason}");
        }
    }

    #[test]
    fn application_signals_is_off_unless_asked_for() {
        assert!(!config(&[]).expect("valid").application_signals);
        for value in ["true", "TRUE", " True "] {
            let config = config(&[("OTEL_AWS_APPLICATION_SIGNALS_ENABLED", value)]).expect("valid");
            assert!(config.application_signals, "{value:?}");
        }
        let off = config(&[("OTEL_AWS_APPLICATION_SIGNALS_ENABLED", "false")]).expect("valid");
        assert!(!off.application_signals);
        assert_eq!(
            rejected_variable(&[("OTEL_AWS_APPLICATION_SIGNALS_ENABLED", "yes")]),
            "OTEL_AWS_APPLICATION_SIGNALS_ENABLED"
        );
    }

    #[test]
    fn service_name_falls_back_to_the_function_name() {
        let from_function = config(&[("AWS_LAMBDA_FUNCTION_NAME", "orders-api")]).expect("valid");
        assert_eq!(from_function.service_name, "orders-api");
        let explicit = config(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "orders-api"),
            ("OTEL_SERVICE_NAME", "checkout"),
        ])
        .expect("valid");
        assert_eq!(explicit.service_name, "checkout", "OTEL_SERVICE_NAME wins");
    }

    #[test]
    fn good_values_are_read() {
        // (variables, what the parsed config must show, reason)
        type Check = fn(&Config) -> bool;
        let cases: &[(Vars, Check, &str)] = &[
            (
                &[("OTEL_RESOURCE_ATTRIBUTES", "team=orders, tier=gold%20plus")],
                |c| {
                    c.resource_attributes
                        == [
                            ("team".to_owned(), "orders".to_owned()),
                            ("tier".to_owned(), "gold plus".to_owned()),
                        ]
                },
                "pairs are trimmed and percent-decoded",
            ),
            (
                &[("OTEL_PROPAGATORS", "xray,tracecontext")],
                |c| c.propagators == [Propagator::Xray, Propagator::TraceContext],
                "order is kept",
            ),
            (
                &[("OTEL_PROPAGATORS", "none")],
                |c| c.propagators.is_empty(),
                "none disables propagation",
            ),
            (
                &[("OTEL_PROPAGATORS", "xray-lambda,baggage")],
                |c| c.propagators == [Propagator::XrayLambda, Propagator::Baggage],
                "xray-lambda is accepted",
            ),
            (
                &[("OTEL_TRACES_SAMPLER", "always_off")],
                |c| c.sampler == SamplerConfig::AlwaysOff,
                "always_off",
            ),
            (
                &[("OTEL_TRACES_SAMPLER", "always_on")],
                |c| c.sampler == SamplerConfig::AlwaysOn,
                "always_on",
            ),
            (
                &[
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
                ],
                |c| c.sampler == SamplerConfig::TraceIdRatio(0.25),
                "ratio with its argument",
            ),
            (
                &[("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")],
                |c| c.sampler == SamplerConfig::ParentBased(RootSampler::TraceIdRatio(1.0)),
                "ratio defaults to 1",
            ),
            (
                &[("OTEL_TRACES_SAMPLER", "parentbased_always_off")],
                |c| c.sampler == SamplerConfig::ParentBased(RootSampler::AlwaysOff),
                "parent-based off",
            ),
            (
                &[
                    ("OTEL_TRACES_EXPORTER", "xray"),
                    ("AWS_XRAY_DAEMON_ADDRESS", "169.254.79.129:2000"),
                ],
                |c| {
                    c.exporter
                        == ExporterConfig::Xray {
                            daemon_address: "169.254.79.129:2000".into(),
                        }
                },
                "xray uses Lambda's daemon address",
            ),
            (
                &[("OTEL_TRACES_EXPORTER", "xray")],
                |c| {
                    c.exporter
                        == ExporterConfig::Xray {
                            daemon_address: "127.0.0.1:2000".into(),
                        }
                },
                "xray defaults to the daemon's default port",
            ),
            (
                &[("OTEL_TRACES_EXPORTER", "console")],
                |c| c.exporter == ExporterConfig::Console,
                "console",
            ),
            (
                &[("OTEL_TRACES_EXPORTER", "none")],
                |c| c.exporter == ExporterConfig::None,
                "none",
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
                    ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=abc%3D"),
                    ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000"),
                ],
                |c| {
                    c.exporter
                        == ExporterConfig::Otlp(OtlpConfig {
                            endpoint: "http://127.0.0.1:4318/v1/traces".into(),
                            protocol: OtlpProtocol::HttpJson,
                            headers: vec![("x-api-key".into(), "abc=".into())],
                            timeout: Duration::from_secs(2),
                            compression: OtlpCompression::None,
                            certificate: None,
                            xray: None,
                        })
                },
                "generic OTLP variables, path appended once",
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
                    (
                        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                        "http://collector:9999/custom",
                    ),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
                    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
                    ("OTEL_EXPORTER_OTLP_TIMEOUT", "1"),
                    ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "3000"),
                ],
                |c| {
                    c.exporter
                        == ExporterConfig::Otlp(OtlpConfig {
                            endpoint: "http://collector:9999/custom".into(),
                            protocol: OtlpProtocol::HttpProtobuf,
                            headers: vec![],
                            timeout: Duration::from_secs(3),
                            compression: OtlpCompression::None,
                            certificate: None,
                            xray: None,
                        })
                },
                "signal-specific variables win and the traces endpoint is used as is",
            ),
            (
                &[("TRACEKIT_FLUSH_TIMEOUT_MS", "150")],
                |c| c.flush_timeout == Duration::from_millis(150),
                "flush timeout",
            ),
            (
                &[("TRACEKIT_FLUSH", "amortized")],
                |c| c.flush == FlushStrategy::amortized(),
                "amortized flush, default thresholds",
            ),
            (
                &[
                    ("TRACEKIT_FLUSH", " amortized "),
                    ("TRACEKIT_FLUSH_MAX_SPANS", "100"),
                    ("TRACEKIT_FLUSH_MAX_AGE_MS", "2500"),
                ],
                |c| {
                    c.flush
                        == FlushStrategy::Amortized {
                            max_spans: 100,
                            max_age: Duration::from_millis(2500),
                        }
                },
                "amortized flush thresholds",
            ),
            (
                &[("TRACEKIT_FLUSH_MAX_SPANS", "100")],
                |c| c.flush == FlushStrategy::EndOfInvocation,
                "thresholds alone do not change the strategy",
            ),
            (
                &[("AWS_LAMBDA_MAX_CONCURRENCY", "8")],
                |c| c.max_concurrency == 8 && c.flush == FlushStrategy::amortized(),
                "managed concurrency: amortized by default",
            ),
            (
                &[
                    ("AWS_LAMBDA_MAX_CONCURRENCY", "8"),
                    ("TRACEKIT_FLUSH", "end-of-invocation"),
                ],
                |c| c.flush == FlushStrategy::EndOfInvocation,
                "managed concurrency: the strategy can be chosen",
            ),
            (
                &[("AWS_LAMBDA_MAX_CONCURRENCY", "1")],
                |c| c.max_concurrency == 1 && c.flush == FlushStrategy::EndOfInvocation,
                "one at a time: end of invocation",
            ),
            (
                &[("AWS_LAMBDA_MAX_CONCURRENCY", "many")],
                |c| c.max_concurrency == 1,
                "unreadable, as lambda_runtime reads it: one at a time",
            ),
            (
                &[("TRACEKIT_SAMPLED_ZERO", "honor")],
                |c| c.sampled_zero == SampledZeroPolicy::Honor,
                "honor",
            ),
            (
                &[("TRACEKIT_SAMPLED_ZERO", "sample")],
                |c| c.sampled_zero == SampledZeroPolicy::Sample,
                "sample",
            ),
            (
                &[("TRACEKIT_SQS_PARENT", "link")],
                |c| c.sqs_parent == SqsParentPolicy::Link,
                "links only",
            ),
            (
                &[("TRACEKIT_SQS_SPANS", "batch")],
                |c| c.sqs_spans == SqsSpans::Batch,
                "a batch span",
            ),
            (
                &[
                    ("RUST_LOG", "warn,api=debug"),
                    ("AWS_LAMBDA_LOG_LEVEL", "ERROR"),
                ],
                |c| c.log_filter == "error",
                "the Lambda level wins over RUST_LOG, as in lambda_runtime",
            ),
            (
                &[("RUST_LOG", "warn,api=debug")],
                |c| c.log_filter == "warn,api=debug",
                "RUST_LOG without a Lambda level",
            ),
            (
                &[("AWS_LAMBDA_LOG_LEVEL", "fatal")],
                |c| c.log_filter == "error",
                "Lambda levels are case-insensitive; FATAL keeps errors",
            ),
            (
                &[("AWS_LAMBDA_LOG_FORMAT", "Text")],
                |c| c.log_format == LogFormat::Text,
                "text logs",
            ),
            (
                &[],
                |c| c.span_path == SpanPath::Tracekit,
                "tracekit's own subscriber by default",
            ),
            (
                &[("TRACEKIT_SPAN_PATH", " Tracing-OpenTelemetry ")],
                |c| c.span_path == SpanPath::TracingOpentelemetry,
                "the compatibility path, without regard to case",
            ),
            (
                &[("AWS_LAMBDA_INITIALIZATION_TYPE", "provisioned-concurrency")],
                |c| c.provisioned,
                "provisioned concurrency is detected",
            ),
            (
                &[("OTEL_TRACES_EXPORTER", "  "), ("OTEL_SERVICE_NAME", "")],
                |c| {
                    matches!(c.exporter, ExporterConfig::Otlp(_))
                        && c.service_name == "unknown_service"
                },
                "empty values count as unset",
            ),
        ];
        for (vars, check, reason) in cases {
            let config =
                config(vars).unwrap_or_else(|e| panic!("{reason}: {vars:?} rejected: {e}"));
            assert!(check(&config), "{reason}: {vars:?} gave {config:?}");
        }
    }

    #[test]
    fn bad_values_name_the_variable() {
        // (variables, the variable the error must name, reason)
        let cases: &[(Vars, &str, &str)] = &[
            (
                &[("OTEL_RESOURCE_ATTRIBUTES", "team")],
                "OTEL_RESOURCE_ATTRIBUTES",
                "pair without =",
            ),
            (
                &[("OTEL_RESOURCE_ATTRIBUTES", "=x")],
                "OTEL_RESOURCE_ATTRIBUTES",
                "empty key",
            ),
            (
                &[("OTEL_RESOURCE_ATTRIBUTES", "a=%FF")],
                "OTEL_RESOURCE_ATTRIBUTES",
                "not UTF-8 once decoded",
            ),
            (
                &[("OTEL_PROPAGATORS", "b3")],
                "OTEL_PROPAGATORS",
                "unknown propagator",
            ),
            (
                &[("OTEL_PROPAGATORS", "none,xray")],
                "OTEL_PROPAGATORS",
                "none mixed with others",
            ),
            (
                &[("OTEL_PROPAGATORS", "xray,xray-lambda")],
                "OTEL_PROPAGATORS",
                "both X-Ray flavours",
            ),
            (
                &[("OTEL_TRACES_SAMPLER", "sometimes")],
                "OTEL_TRACES_SAMPLER",
                "unknown sampler",
            ),
            (
                &[
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
                ],
                "OTEL_TRACES_SAMPLER_ARG",
                "ratio above 1",
            ),
            (
                &[
                    ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "half"),
                ],
                "OTEL_TRACES_SAMPLER_ARG",
                "ratio not a number",
            ),
            (
                &[("OTEL_TRACES_EXPORTER", "jaeger")],
                "OTEL_TRACES_EXPORTER",
                "unknown exporter",
            ),
            (
                &[("OTEL_TRACES_EXPORTER", "otlp,console")],
                "OTEL_TRACES_EXPORTER",
                "one exporter only",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "no scheme",
            ),
            (
                &[(
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "ftp://collector/v1/traces",
                )],
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "neither http nor https",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")],
                "OTEL_EXPORTER_OTLP_COMPRESSION",
                "only gzip is built in",
            ),
            (
                &[("TRACEKIT_OTLP_XRAY_REGION", "US East 1")],
                "TRACEKIT_OTLP_XRAY_REGION",
                "not a region name",
            ),
            (
                &[("OTEL_BSP_MAX_QUEUE_SIZE", "10")],
                "OTEL_BSP_MAX_QUEUE_SIZE",
                "too small to keep room for entry spans",
            ),
            (
                &[
                    ("OTEL_BSP_MAX_QUEUE_SIZE", "1000"),
                    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2000"),
                ],
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                "a batch larger than the queue",
            ),
            (
                &[("TRACEKIT_FLUSH", "lazy")],
                "TRACEKIT_FLUSH",
                "unknown strategy",
            ),
            (
                &[("TRACEKIT_FLUSH_MAX_SPANS", "0")],
                "TRACEKIT_FLUSH_MAX_SPANS",
                "zero spans",
            ),
            (
                &[("TRACEKIT_FLUSH_MAX_SPANS", "1985")],
                "TRACEKIT_FLUSH_MAX_SPANS",
                "more than the buffer holds for child spans",
            ),
            (
                &[("TRACEKIT_FLUSH_MAX_AGE_MS", "10s")],
                "TRACEKIT_FLUSH_MAX_AGE_MS",
                "unit suffix on the age",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "grpc",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/xml")],
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "the signal variable is named",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_HEADERS", "novalue")],
                "OTEL_EXPORTER_OTLP_HEADERS",
                "header without =",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")],
                "OTEL_EXPORTER_OTLP_TIMEOUT",
                "unit suffix",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "-1")],
                "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
                "negative",
            ),
            (
                &[
                    ("OTEL_TRACES_EXPORTER", "xray"),
                    ("AWS_XRAY_DAEMON_ADDRESS", "udp://127.0.0.1:2000x"),
                ],
                "AWS_XRAY_DAEMON_ADDRESS",
                "not host:port",
            ),
            (
                &[
                    ("OTEL_TRACES_EXPORTER", "xray"),
                    ("AWS_XRAY_DAEMON_ADDRESS", "127.0.0.1"),
                ],
                "AWS_XRAY_DAEMON_ADDRESS",
                "no port",
            ),
            (
                &[("TRACEKIT_FLUSH_TIMEOUT_MS", "fast")],
                "TRACEKIT_FLUSH_TIMEOUT_MS",
                "not a number",
            ),
            (
                &[("TRACEKIT_SAMPLED_ZERO", "maybe")],
                "TRACEKIT_SAMPLED_ZERO",
                "unknown policy",
            ),
            (
                &[("TRACEKIT_SQS_PARENT", "always")],
                "TRACEKIT_SQS_PARENT",
                "unknown SQS policy",
            ),
            (
                &[("TRACEKIT_SQS_SPANS", "per-batch")],
                "TRACEKIT_SQS_SPANS",
                "unknown SQS spans",
            ),
            (
                &[("RUST_LOG", "info,api=loud")],
                "RUST_LOG",
                "unknown level in a filter",
            ),
            (
                &[("AWS_LAMBDA_LOG_LEVEL", "LOUD")],
                "AWS_LAMBDA_LOG_LEVEL",
                "unknown level",
            ),
            (
                &[("AWS_LAMBDA_LOG_FORMAT", "xml")],
                "AWS_LAMBDA_LOG_FORMAT",
                "unknown format",
            ),
            (
                &[("TRACEKIT_SPAN_PATH", "registry")],
                "TRACEKIT_SPAN_PATH",
                "unknown span path",
            ),
        ];
        for (vars, variable, reason) in cases {
            assert_eq!(rejected_variable(vars), *variable, "{reason}: {vars:?}");
        }
    }

    #[test]
    fn errors_name_variable_value_and_accepted_values() {
        let err = config(&[("OTEL_TRACES_EXPORTER", "jaeger")]).expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "OTEL_TRACES_EXPORTER=\"jaeger\" is not accepted; expected one of otlp, xray, console, none"
        );
    }

    #[cfg(feature = "https")]
    fn otlp(pairs: &[(&str, &str)]) -> OtlpConfig {
        let config = Config::from_lookup(|name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
        .expect("valid");
        match config.exporter {
            ExporterConfig::Otlp(otlp) => otlp,
            other => panic!("not OTLP/HTTP: {other:?}"),
        }
    }

    /// The traces endpoint alone selects signing, as AWS's distributions decide it; an API key
    /// turns it off; `TRACEKIT_OTLP_XRAY_REGION` says so for a host that does not.
    #[test]
    #[cfg(feature = "https")]
    fn x_rays_otlp_endpoint_is_recognised_by_its_host() {
        let xray = |region: &str, sign: bool| {
            Some(XrayEndpoint {
                region: region.into(),
                sign,
            })
        };
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<XrayEndpoint>, &'a str);
        let cases: &[Case<'_>] = &[
            (
                &[(
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "https://xray.us-east-1.amazonaws.com/v1/traces",
                )],
                xray("us-east-1", true),
                "the endpoint AWS documents",
            ),
            (
                &[(
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "https://xray.eu-central-2.amazonaws.com",
                )],
                xray("eu-central-2", true),
                "the base endpoint, /v1/traces appended",
            ),
            (
                &[(
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "https://xray.cn-north-1.amazonaws.com.cn/v1/traces",
                )],
                xray("cn-north-1", true),
                "China's partition",
            ),
            (
                &[
                    (
                        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                        "https://xray.us-west-2.amazonaws.com/v1/traces",
                    ),
                    (
                        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                        "Authorization=Bearer%20key",
                    ),
                ],
                xray("us-west-2", false),
                "an X-Ray API key instead of a signature",
            ),
            (
                &[
                    (
                        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                        "https://vpce-0abc.xray.us-east-1.vpce.amazonaws.com/v1/traces",
                    ),
                    ("TRACEKIT_OTLP_XRAY_REGION", "us-east-1"),
                ],
                xray("us-east-1", true),
                "a VPC endpoint, declared",
            ),
            (
                &[(
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "https://collector.example.com/v1/traces",
                )],
                None,
                "a vendor",
            ),
            (
                &[(
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://xray.us-east-1.amazonaws.com/v1/traces",
                )],
                None,
                "plain HTTP is never signed",
            ),
            (
                &[(
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "https://xray.amazonaws.com.evil.example/v1/traces",
                )],
                None,
                "a look-alike host",
            ),
        ];
        for (pairs, expected, reason) in cases {
            assert_eq!(&otlp(pairs).xray, expected, "{reason}");
        }
    }

    #[test]
    #[cfg(feature = "https")]
    fn compression_certificate_and_queue_are_read() {
        let config = otlp(&[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "https://collector.example.com",
            ),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ssl/private-ca.pem"),
        ]);
        assert_eq!(
            config.compression,
            OtlpCompression::Gzip,
            "the traces variable wins"
        );
        assert_eq!(
            config.certificate.as_deref(),
            Some(std::path::Path::new("/etc/ssl/private-ca.pem"))
        );
        let config = Config::from_lookup(|name| match name {
            "OTEL_BSP_MAX_QUEUE_SIZE" => Some("30000".into()),
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE" => Some("25000".into()),
            "TRACEKIT_FLUSH_MAX_SPANS" => Some("20000".into()),
            _ => None,
        })
        .expect("valid");
        assert_eq!(
            (config.max_buffered_spans, config.max_export_batch),
            (30_000, 25_000)
        );
        let defaults = Config::from_lookup(|_| None).expect("defaults");
        assert_eq!(
            (defaults.max_buffered_spans, defaults.max_export_batch),
            (2048, 512)
        );
    }

    /// Off means off: no exporter and no extension, whatever else is set; a typo is an error.
    #[test]
    fn otel_sdk_disabled_turns_export_and_the_extension_off() {
        let config = Config::from_lookup(|name| match name {
            "OTEL_SDK_DISABLED" => Some("TRUE".into()),
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://127.0.0.1:4318".into()),
            "TRACEKIT_FLUSH" => Some("amortized".into()),
            _ => None,
        })
        .expect("valid");
        assert!(config.disabled);
        assert_eq!(config.exporter, ExporterConfig::None);
        assert_eq!(config.flush, FlushStrategy::EndOfInvocation);
        let error =
            Config::from_lookup(|name| (name == "OTEL_SDK_DISABLED").then(|| "yes".to_owned()))
                .expect_err("not a boolean");
        assert!(error.to_string().contains("OTEL_SDK_DISABLED"), "{error}");
    }

    fn routes(value: &str) -> Result<Vec<ExcludedRoute>, ConfigError> {
        config(&[("TRACEKIT_EXCLUDED_ROUTES", value)]).map(|config| config.excluded_routes)
    }

    /// What an entry of `TRACEKIT_EXCLUDED_ROUTES` excludes: slashes normalized on both sides, the
    /// path's case kept, a `*` a wildcard only last.
    #[test]
    fn excluded_routes_match_by_the_documented_rules() {
        // (entry, method, path, excluded, reason)
        let cases = [
            ("/status/200", "GET", "/status/200", true, "the path itself"),
            (
                "/status/200",
                "GET",
                "/status/200/",
                true,
                "a trailing slash is ignored",
            ),
            (
                "/status/200",
                "GET",
                "//status/200",
                true,
                "repeated slashes count as one",
            ),
            (
                "/status/200",
                "GET",
                "/status//200///",
                true,
                "anywhere in the path",
            ),
            (
                "/status/200/",
                "GET",
                "/status/200",
                true,
                "in the entry too",
            ),
            (
                "//status/200",
                "GET",
                "/status/200",
                true,
                "and repeated in the entry",
            ),
            (
                "/status/200",
                "GET",
                "/Status/200",
                false,
                "paths are case-sensitive",
            ),
            (
                "/status/200",
                "GET",
                "/status/2000",
                false,
                "no prefix without a `*`",
            ),
            (
                "get /status/200",
                "GET",
                "/status/200",
                true,
                "methods are not",
            ),
            (
                "GET /status/200",
                "post",
                "/status/200",
                false,
                "another method",
            ),
            (
                "/internal/*",
                "GET",
                "/internal/reindex",
                true,
                "under the prefix",
            ),
            (
                "/internal/*",
                "GET",
                "/internal",
                true,
                "the prefix's own path",
            ),
            (
                "/internal/*",
                "GET",
                "/internal/",
                true,
                "the prefix's own path, with its slash",
            ),
            (
                "/internal/*",
                "GET",
                "//internal//a",
                true,
                "normalized before the prefix",
            ),
            (
                "/internal/*",
                "GET",
                "/internals",
                false,
                "a `/`-ended prefix is a directory",
            ),
            (
                "/int*",
                "GET",
                "/internals",
                true,
                "a prefix without its `/` is any rest",
            ),
            (
                "/*",
                "DELETE",
                "/anything/at/all",
                true,
                "`/*` is every route",
            ),
            ("/*", "GET", "/", true, "the root too"),
            ("/", "GET", "/", true, "the root alone"),
            ("/", "GET", "/a", false, "the root is not a prefix"),
        ];
        for (entry, method, path, excluded, reason) in cases {
            let routes = routes(entry).unwrap_or_else(|error| panic!("{entry}: {error}"));
            let matched = routes
                .iter()
                .any(|route| route.matches(Some(method), None, Some(path)));
            assert_eq!(matched, excluded, "{entry} vs {method} {path}: {reason}");
        }
        let route = &routes("/health")
            .expect("valid")
            .into_iter()
            .next()
            .expect("one");
        assert!(
            route.matches(Some("GET"), Some("GET /health/"), None),
            "an API Gateway route key is normalized as a path is"
        );
    }

    /// An entry that cannot match a request as written is refused at init, naming the variable and
    /// the entry (not the whole list).
    #[test]
    fn excluded_routes_that_cannot_match_are_refused_naming_the_entry() {
        // (value, the entry named, reason)
        let cases = [
            ("/health,/a/*/b", "/a/*/b", "a `*` inside is no wildcard"),
            ("/a/*b", "/a/*b", "a `*` before the end"),
            ("/**", "/**", "two `*`"),
            ("/health?probe=1", "/health?probe=1", "a query"),
            ("/health#top", "/health#top", "a fragment"),
            ("GET /a /b", "GET /a /b", "two paths in one entry"),
            ("/a /b", "/a /b", "a space inside a path"),
            ("health", "health", "a path without its `/`"),
            ("GET health", "GET health", "the same after a method"),
            ("G3T /health", "G3T /health", "a method that is not letters"),
        ];
        for (value, entry, reason) in cases {
            let error = routes(value).expect_err(reason);
            let ConfigError::Invalid {
                variable, value, ..
            } = &error
            else {
                panic!("{reason}: {error:?}");
            };
            assert_eq!(*variable, "TRACEKIT_EXCLUDED_ROUTES", "{reason}");
            assert_eq!(value, entry, "{reason}: {error}");
        }
        assert!(
            routes(" GET /health , ,/internal/* ").is_ok(),
            "spaces and empty entries"
        );
    }

    /// `/*` excludes everything: accepted, and said once at init.
    #[test]
    fn an_entry_excluding_every_route_is_warned_about_once() {
        // (value, warned, reason)
        let cases = [
            (
                "/*,/internal/*,//*",
                Some("every route"),
                "one warning for two such entries",
            ),
            (
                "GET /*",
                Some("every GET route"),
                "every route of one method",
            ),
            ("/internal/*,/health", None, "nothing to warn about"),
        ];
        for (value, warned, reason) in cases {
            let config = config(&[("TRACEKIT_EXCLUDED_ROUTES", value)]).expect("valid");
            let test = crate::testing::TestTelemetry::with_config(config.clone());
            warn_if_every_route_is_excluded(&config);
            let lines: Vec<String> = test
                .log_lines()
                .into_iter()
                .filter(|line| line.contains("TRACEKIT_EXCLUDED_ROUTES"))
                .collect();
            match warned {
                Some(which) => {
                    assert_eq!(lines.len(), 1, "{reason}: {lines:#?}");
                    assert!(lines[0].contains(which), "{reason}: {lines:#?}");
                }
                None => assert!(lines.is_empty(), "{reason}: {lines:#?}"),
            }
        }
    }
}
