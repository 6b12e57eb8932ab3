//! When spans leave the process.
//!
//! Ended spans wait in a bounded in-memory buffer ([`LambdaSpanProcessor`]): no background thread, no
//! timer, nothing that runs while Lambda has frozen the process. tracekit's invocation layer exports
//! them after the response has been posted, so the caller never waits for export, bounded by the
//! configured flush timeout and by the time left before the invocation's deadline. Spans that cannot
//! be exported in time stay buffered for the next flush; spans that do not fit in the buffer, or whose
//! export failed, are counted and reported once per flush.
//!
//! When is set by [`crate::FlushStrategy`]: after every invocation (`end-of-invocation`), or only
//! once the buffer passes a size or age threshold (`amortized`), with whatever is left exported on
//! SIGTERM. The SDK's `BatchSpanProcessor` is not used: its worker thread would export while Lambda
//! freezes the process (or not at all before the freeze), and its `force_flush` blocks the calling
//! thread on that worker.
//!
//! The exporter's connection is opened by the first export, after the first response, and kept for
//! every later one.

mod agent;
mod answer;
mod encode;
mod encoded;
mod http1;
mod otlp;
#[cfg(feature = "fuzzing")]
pub(crate) use otlp::retry_after;
pub(crate) mod pack;
#[cfg(feature = "sigv4")]
mod sigv4;
#[cfg(all(feature = "fuzzing", feature = "sigv4"))]
pub(crate) use sigv4::{Signer, sign_with_aws_sigv4};
#[cfg(feature = "https")]
mod tls;

use crate::app_signals::{self, AppSignals};
use crate::config::{Config, ExporterConfig, OtlpProtocol, needs};
pub(crate) use encode::SpanParts;
use encoded::Encoded;
use opentelemetry::{Context, InstrumentationScope, KeyValue, trace::SpanKind};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    trace::{Span, SpanData, SpanProcessor},
};
use std::{
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

#[cfg(any(test, feature = "testing"))]
use crate::config::DEFAULT_MAX_BUFFERED_SPANS;
use crate::config::ENTRY_SPAN_RESERVE;

#[derive(Debug)]
struct SpanBuffer {
    spans: Mutex<Buffered>,
    capacity: usize,
    /// Spans lost since the last flush reported: no room in the buffer.
    dropped: AtomicU64,
    /// Spans a flush that was abandoned had taken and not sent, since the last report.
    abandoned: AtomicU64,
    /// Spans a flush that was abandoned had sent without learning their fate, since the last report.
    unconfirmed: AtomicU64,
    /// Spans a flush that was abandoned had seen accepted, since the last report.
    exported: AtomicU64,
    /// Keep spans that are recorded but not sampled (Application Signals on the agent path).
    unsampled: bool,
    /// The provider has shut down: a span ended afterwards is dropped (and counted), whichever
    /// subscriber ended it.
    closed: std::sync::atomic::AtomicBool,
    /// The exporter sends OTLP protobuf (the agent, OTLP/HTTP): spans are encoded as they end.
    encodes: bool,
    /// Spans are kept whole for now: the cold start's spans may still be moved under the `init`
    /// span, which rewrites their ids (see [`Flusher::hold_until_init`]).
    holding: std::sync::atomic::AtomicBool,
    /// Application Signals attributes, added to each span before it is exported.
    app_signals: Option<AppSignals>,
}

/// The ended spans waiting for a flush: spans kept whole, and spans encoded as they ended.
#[derive(Debug, Default)]
struct Buffered {
    data: Vec<SpanData>,
    encoded: Encoded,
}

impl Buffered {
    fn len(&self) -> usize {
        self.data.len() + self.encoded.len()
    }
}

impl SpanBuffer {
    /// A poisoned lock only means another thread panicked mid-push; the spans are still sound.
    fn lock(&self) -> MutexGuard<'_, Buffered> {
        self.spans
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn encoding(&self) -> bool {
        self.encodes && !self.holding.load(Ordering::Acquire)
    }

    /// The most spans of `kind` the buffer holds: the last places are kept for entry spans.
    fn limit(&self, kind: &SpanKind) -> usize {
        match kind {
            SpanKind::Server | SpanKind::Consumer => self.capacity,
            _ => self.capacity - ENTRY_SPAN_RESERVE.min(self.capacity / 8),
        }
    }

    /// Whether a span ended now, `sampled` or not, is to be kept; one refused after shutdown is
    /// counted as dropped.
    fn admits(&self, sampled: bool) -> bool {
        if !sampled && !self.unsampled {
            return false;
        }
        if self.closed.load(Ordering::Acquire) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// The attributes the OTLP paths send: Application Signals', annotations and metadata in the
    /// attributes X-Ray's OTLP translators read.
    fn prepare(
        &self,
        kind: &SpanKind,
        parent: (opentelemetry::trace::SpanId, bool),
        sampled: bool,
        attributes: &mut Vec<KeyValue>,
    ) {
        if let Some(app_signals) = &self.app_signals {
            app_signals.annotate_parts(kind, parent.0, parent.1, sampled, attributes);
        }
        crate::annotations::for_otlp(attributes);
        crate::metadata::for_otlp(attributes);
    }
}

/// A span processor for Lambda: ended, sampled spans (and, with Application Signals on the agent
/// path, recorded unsampled ones) go into a bounded buffer that the invocation layer drains after
/// each response. A full buffer drops the new span and counts it; the last
/// places are kept for entry spans (SERVER, CONSUMER), so an overflowing invocation keeps its root.
#[derive(Debug, Clone)]
pub(crate) struct LambdaSpanProcessor {
    buffer: Arc<SpanBuffer>,
}

impl LambdaSpanProcessor {
    fn new(
        capacity: usize,
        unsampled: bool,
        encodes: bool,
        app_signals: Option<AppSignals>,
    ) -> Self {
        LambdaSpanProcessor {
            buffer: Arc::new(SpanBuffer {
                spans: Mutex::new(Buffered {
                    data: Vec::with_capacity(if encodes { 0 } else { capacity.min(256) }),
                    encoded: Encoded::default(),
                }),
                capacity,
                dropped: AtomicU64::new(0),
                abandoned: AtomicU64::new(0),
                unconfirmed: AtomicU64::new(0),
                exported: AtomicU64::new(0),
                unsampled,
                closed: std::sync::atomic::AtomicBool::new(false),
                encodes,
                holding: std::sync::atomic::AtomicBool::new(false),
                app_signals,
            }),
        }
    }

    /// Whether a span that ends now is encoded at once ([`LambdaSpanProcessor::end_parts`]) rather
    /// than handed over as a `SpanData` ([`SpanProcessor::on_end`]).
    pub(crate) fn encodes(&self) -> bool {
        self.buffer.encoding()
    }

    /// A span that ended, given as its parts and encoded into the buffer now (when
    /// [`LambdaSpanProcessor::encodes`]): `attributes` are the ones `parts` is made of, prepared
    /// for export first. `parts` is called once, if the span is kept.
    pub(crate) fn end_parts<'a>(
        &self,
        (kind, parent, sampled): (&SpanKind, (opentelemetry::trace::SpanId, bool), bool),
        scope: &InstrumentationScope,
        attributes: &'a mut Vec<KeyValue>,
        parts: impl FnOnce(&'a [KeyValue]) -> SpanParts<'a>,
    ) {
        if !self.buffer.admits(sampled) {
            return;
        }
        self.buffer.prepare(kind, parent, sampled, attributes);
        let limit = self.buffer.limit(kind);
        let mut spans = self.buffer.lock();
        if spans.len() < limit {
            spans.encoded.push_parts(&parts(attributes), scope, sampled);
        } else {
            drop(spans);
            self.buffer.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl SpanProcessor for LambdaSpanProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, mut span: SpanData) {
        let sampled = span.span_context.is_sampled();
        if !self.buffer.admits(sampled) {
            return;
        }
        let encoding = self.buffer.encoding();
        if encoding {
            let parent = (span.parent_span_id, span.parent_span_is_remote);
            self.buffer
                .prepare(&span.span_kind, parent, sampled, &mut span.attributes);
        }
        let limit = self.buffer.limit(&span.span_kind);
        let mut spans = self.buffer.lock();
        if spans.len() >= limit {
            drop(spans);
            self.buffer.dropped.fetch_add(1, Ordering::Relaxed);
        } else if encoding {
            spans.encoded.push_data(&span);
        } else {
            spans.data.push(span);
        }
    }

    /// Export is asynchronous and driven by tracekit's invocation layer or by
    /// [`crate::Telemetry::force_flush`]; this synchronous hook has nothing to wait for.
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.buffer.closed.store(true, Ordering::Release);
        Ok(())
    }
}

/// What a failed export lost: how many of its spans, and why.
#[derive(Debug)]
struct Loss {
    dropped: usize,
    error: String,
    /// The cause has been said already (the agent's refused port, once per process): the loss is
    /// counted, and the flush's line is a debug one.
    said: bool,
}

/// How far an export has gone, for a flush that stops waiting on it (its bound ran out) or is
/// abandoned (the background flush at shutdown): what the exporter knows was accepted, and what it
/// has sent without an answer yet. Spans of a batch in neither were not sent.
#[derive(Debug, Default)]
struct Progress {
    confirmed: std::sync::atomic::AtomicUsize,
    in_flight: std::sync::atomic::AtomicUsize,
}

impl Progress {
    /// `spans` are on their way: sent, or being sent, with no answer yet.
    fn sending(&self, spans: usize) {
        self.in_flight.store(spans, Ordering::Relaxed);
    }

    /// The spans on their way were accepted.
    fn accepted(&self) {
        let spans = self.in_flight.swap(0, Ordering::Relaxed);
        self.confirmed.fetch_add(spans, Ordering::Relaxed);
    }

    /// The spans on their way are lost (the exporter counts them in its `Loss`).
    fn refused(&self) {
        self.in_flight.store(0, Ordering::Relaxed);
    }

    /// (accepted, sent without an answer), so far.
    fn known(&self) -> (usize, usize) {
        (
            self.confirmed.load(Ordering::Relaxed),
            self.in_flight.load(Ordering::Relaxed),
        )
    }
}

/// A batch taken from the buffer and not yet accounted for in a report. Dropped while it is still
/// armed (its flush's future was dropped mid-export: the background flush aborted at shutdown), it
/// books what is known of the batch on the buffer, so the next report, the shutdown's, counts it.
struct Taken<'a> {
    buffer: &'a SpanBuffer,
    size: usize,
    progress: Progress,
    armed: bool,
}

impl Taken<'_> {
    /// The batch is accounted for by the flush that took it: what the exporter knew of it.
    fn disarm(mut self) -> (usize, usize) {
        self.armed = false;
        self.progress.known()
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (confirmed, in_flight) = self.progress.known();
        let unsent = self.size.saturating_sub(confirmed + in_flight);
        let book = |counter: &AtomicU64, spans: usize| {
            counter.fetch_add(spans as u64, Ordering::Relaxed);
        };
        book(&self.buffer.exported, confirmed);
        book(&self.buffer.unconfirmed, in_flight);
        book(&self.buffer.abandoned, unsent);
    }
}

impl Loss {
    /// An SDK exporter's result: on failure, the whole batch of `size` spans is lost.
    #[cfg(any(feature = "console", test, feature = "testing"))]
    fn whole(size: usize, result: OTelSdkResult) -> Result<(), Loss> {
        result.map_err(|error| Loss {
            dropped: size,
            error: error.to_string(),
            said: false,
        })
    }
}

/// The configured exporter. An enum rather than a trait object: `SpanExporter::export` returns
/// `impl Future`, which a trait object cannot. There is one per process: the size of its largest
/// variant does not matter.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Exporter {
    Otlp(otlp::OtlpHttp),
    Agent(agent::Agent),
    #[cfg(feature = "xray")]
    Xray(xray::LazyXray),
    #[cfg(feature = "console")]
    Console(opentelemetry_stdout::SpanExporter),
    #[cfg(any(test, feature = "testing"))]
    Memory(opentelemetry_sdk::trace::InMemorySpanExporter),
    /// OTLP requests kept in memory, as the OTLP/HTTP path would post them.
    #[cfg(any(test, feature = "testing"))]
    OtlpMemory(Arc<Mutex<Vec<Vec<u8>>>>, pack::EncodedResource),
    None,
}

/// Spans taken from the buffer for one export: kept whole, or encoded as they ended.
#[derive(Debug)]
enum Batch {
    Data(Vec<SpanData>),
    Encoded(Encoded),
}

impl Batch {
    fn len(&self) -> usize {
        match self {
            Batch::Data(spans) => spans.len(),
            Batch::Encoded(spans) => spans.len(),
        }
    }

    /// The batch's spans, whichever way they are kept, in order.
    fn iter(&self) -> impl Iterator<Item = BatchSpan<'_>> + Clone {
        let (data, encoded) = match self {
            Batch::Data(spans) => (Some(spans.iter()), None),
            Batch::Encoded(spans) => (None, Some(spans.iter())),
        };
        let data = data.into_iter().flatten().map(BatchSpan::Data);
        data.chain(encoded.into_iter().flatten().map(BatchSpan::Encoded))
    }
}

/// One span of a batch, as the OTLP exporters pack it.
#[derive(Debug, Clone, Copy)]
enum BatchSpan<'a> {
    Data(&'a SpanData),
    Encoded(encoded::EncodedSpan<'a>),
}

impl<'a> BatchSpan<'a> {
    /// The span as the JSON protocol needs it: whole. Spans are encoded as they end only when
    /// the protocol is protobuf, so the JSON protocol meets no encoded span.
    fn whole(self) -> Option<&'a SpanData> {
        match self {
            BatchSpan::Data(span) => Some(span),
            BatchSpan::Encoded(_) => None,
        }
    }
}

impl pack::Packable for BatchSpan<'_> {
    fn is_sampled(&self) -> bool {
        match self {
            BatchSpan::Data(span) => span.is_sampled(),
            BatchSpan::Encoded(span) => span.is_sampled(),
        }
    }

    fn scope(&self) -> &InstrumentationScope {
        match self {
            BatchSpan::Data(span) => span.scope(),
            BatchSpan::Encoded(span) => span.scope(),
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            BatchSpan::Data(span) => span.encoded_len(),
            BatchSpan::Encoded(span) => span.encoded_len(),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            BatchSpan::Data(span) => span.encode(out),
            BatchSpan::Encoded(span) => span.encode(out),
        }
    }
}

impl Exporter {
    /// Exports `batch`, before `deadline` where the exporter can wait (retries); on failure, how
    /// many of its spans were lost and why. tracekit's own exporters only read the batch; the
    /// others take its spans in a Vec of their own, so `batch`'s allocation is always left for the
    /// next flush.
    // A slice would do in a build with none of those exporters; the signature is the same in all.
    #[cfg_attr(
        not(any(feature = "xray", feature = "console", test, feature = "testing")),
        allow(clippy::ptr_arg)
    )]
    async fn export(
        &self,
        batch: &mut Batch,
        deadline: tokio::time::Instant,
        progress: &Progress,
    ) -> Result<(), Loss> {
        // Whole spans, for the exporters that take them (none in a build without them).
        #[cfg_attr(
            not(any(feature = "xray", feature = "console", test, feature = "testing")),
            allow(unused_variables)
        )]
        let spans = match (self, batch) {
            (Exporter::Otlp(exporter), batch) => {
                return exporter.export(batch.iter(), deadline, progress).await;
            }
            (Exporter::Agent(exporter), batch) => return exporter.export(batch.iter()).await,
            #[cfg(any(test, feature = "testing"))]
            (Exporter::OtlpMemory(requests, resource), batch) => {
                let limits = pack::Limits {
                    max_bytes: usize::MAX,
                    max_spans: usize::MAX,
                    max_span_bytes: usize::MAX,
                };
                let packed = pack::pack(batch.iter(), resource, limits);
                requests
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(packed.requests.iter().map(pack::Request::protobuf));
                return Ok(());
            }
            (_, Batch::Data(spans)) => spans,
            // Only the OTLP exporters are given encoded spans.
            (_, Batch::Encoded(spans)) => {
                return Err(Loss {
                    dropped: spans.len(),
                    error: "encoded spans reached an exporter of whole spans".to_owned(),
                    said: false,
                });
            }
        };
        match self {
            Exporter::Otlp(_) | Exporter::Agent(_) => Ok(()),
            #[cfg(any(test, feature = "testing"))]
            Exporter::OtlpMemory(..) => Ok(()),
            #[cfg(feature = "xray")]
            Exporter::Xray(exporter) => exporter.export(spans_of(spans)).await,
            #[cfg(feature = "console")]
            Exporter::Console(exporter) => Loss::whole(
                spans.len(),
                opentelemetry_sdk::trace::SpanExporter::export(exporter, spans_of(spans)).await,
            ),
            #[cfg(any(test, feature = "testing"))]
            Exporter::Memory(exporter) => Loss::whole(
                spans.len(),
                opentelemetry_sdk::trace::SpanExporter::export(exporter, spans_of(spans)).await,
            ),
            Exporter::None => Ok(()),
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        match self {
            Exporter::Otlp(exporter) => exporter.set_resource(resource),
            Exporter::Agent(exporter) => exporter.set_resource(resource),
            #[cfg(any(test, feature = "testing"))]
            Exporter::OtlpMemory(_, encoded) => *encoded = pack::EncodedResource::new(resource),
            #[cfg(feature = "xray")]
            Exporter::Xray(exporter) => exporter.set_resource(resource),
            #[cfg(feature = "console")]
            Exporter::Console(exporter) => {
                opentelemetry_sdk::trace::SpanExporter::set_resource(exporter, resource)
            }
            #[cfg(any(test, feature = "testing"))]
            Exporter::Memory(exporter) => {
                opentelemetry_sdk::trace::SpanExporter::set_resource(exporter, resource)
            }
            Exporter::None => {}
        }
    }
}

/// `batch`'s spans in a Vec of their own, sized to them, for an exporter that takes a Vec: `batch`
/// keeps its allocation for the next flush.
#[cfg(any(feature = "xray", feature = "console", test, feature = "testing"))]
fn spans_of(batch: &mut Vec<SpanData>) -> Vec<SpanData> {
    let mut spans = Vec::with_capacity(batch.len());
    spans.append(batch);
    spans
}

/// The exporter could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExporterError {
    /// `OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE` names a file that holds no PEM certificate.
    #[error("cannot read the trusted roots in {path}: {reason}")]
    Certificate {
        /// The file.
        path: String,
        /// Why it could not be read.
        reason: String,
    },
    /// The endpoint is X-Ray's OTLP endpoint, which needs SigV4, in a build without tracekit's
    /// `sigv4` feature.
    #[error(
        "X-Ray's OTLP endpoint needs SigV4 signing, {}; or an X-Ray API key in \
         OTEL_EXPORTER_OTLP_TRACES_HEADERS (Authorization=...)",
        needs("sigv4")
    )]
    SigV4NotBuilt,
    /// SigV4 signing is on, the environment holds no credentials (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`: unset or blank), and the build leaves out tracekit's `sigv4-chain`
    /// feature, which asks the AWS SDK's default chain for them.
    #[error(
        "X-Ray's OTLP endpoint is signed with the credentials in AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY, which hold none (unset or blank); profiles, web identity, \
         container and instance credentials need {}",
        needs("sigv4-chain")
    )]
    CredentialsChainNotBuilt,
    /// `OTEL_TRACES_EXPORTER=xray`, in a build without tracekit's `xray` feature.
    #[error("OTEL_TRACES_EXPORTER=xray needs {}", needs("xray"))]
    XrayNotBuilt,
    /// `OTEL_TRACES_EXPORTER=console`, in a build without tracekit's `console` feature.
    #[error("OTEL_TRACES_EXPORTER=console needs {}", needs("console"))]
    ConsoleNotBuilt,
    /// An `https://` OTLP endpoint, in a build without tracekit's `https` feature. (Config
    /// validation refuses such a value first; this covers a [`Config`](crate::Config) built in
    /// code.)
    #[error("OTLP endpoint {0:?} needs {needs}", needs = needs("https"))]
    HttpsNotBuilt(String),
    /// An OTLP header is not a valid HTTP header.
    #[error("OTLP header {0:?} is not a valid HTTP header")]
    Header(String),
    /// The OTLP endpoint is not an `http://` or `https://` URL with a host. (Config validation refuses such a value first; this covers a
    /// [`Config`](crate::Config) built in code.)
    #[error("OTLP endpoint {0:?} is not an http:// or https:// URL with a host")]
    Endpoint(String),
}

/// What one flush did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlushReport {
    /// Spans the exporter accepted.
    pub exported: usize,
    /// Spans lost: the exporter failed on them, time ran out before they were sent, or they never
    /// fit in the buffer.
    pub dropped: u64,
    /// Spans left in the buffer for the next flush because time ran out.
    pub deferred: usize,
    /// Spans sent whose answer did not come in time: the collector may have them or not. (The
    /// agent path never waits for an answer: its spans count as `exported` once the kernel took
    /// their datagram, which is all UDP can tell.)
    pub unconfirmed: u64,
}

/// Drains the span buffer into the exporter.
#[derive(Debug)]
pub(crate) struct Flusher {
    buffer: Arc<SpanBuffer>,
    exporter: Exporter,
    /// Spans handed to the exporter at once.
    max_export_batch: usize,
    /// One flush at a time: concurrent invocations would otherwise split batches for nothing.
    gate: tokio::sync::Mutex<()>,
    /// The last batch's storage, emptied: the next flush's batch or the buffer's replacement, so a
    /// flush allocates no span buffer (one of 256 `SpanData` slots is ~90 KB). Only the flush
    /// holding `gate` uses it.
    spare: Mutex<Buffered>,
    flushes: AtomicU64,
    /// Every report since the process started, added up: what the shutdown line says.
    totals: Mutex<FlushReport>,
}

impl Flusher {
    pub(crate) fn new(
        config: &Config,
        resource: &Resource,
    ) -> Result<(Self, LambdaSpanProcessor), ExporterError> {
        let exporter = match &config.exporter {
            ExporterConfig::Otlp(otlp) => Exporter::Otlp(otlp::OtlpHttp::new(otlp)?),
            ExporterConfig::OtlpUdp { agent_address } => {
                Exporter::Agent(agent::Agent::new(agent_address.clone()))
            }
            #[cfg(feature = "xray")]
            ExporterConfig::Xray { daemon_address } => {
                Exporter::Xray(xray::LazyXray::new(daemon_address.clone()))
            }
            #[cfg(not(feature = "xray"))]
            ExporterConfig::Xray { .. } => return Err(ExporterError::XrayNotBuilt),
            #[cfg(feature = "console")]
            ExporterConfig::Console => {
                Exporter::Console(opentelemetry_stdout::SpanExporter::default())
            }
            #[cfg(not(feature = "console"))]
            ExporterConfig::Console => return Err(ExporterError::ConsoleNotBuilt),
            ExporterConfig::None => Exporter::None,
        };
        let app_signals = config
            .application_signals
            .then(|| AppSignals::new(resource));
        Ok(Self::with_exporter(
            exporter,
            resource,
            app_signals,
            app_signals::records_unsampled(config),
            (config.max_buffered_spans, config.max_export_batch),
        ))
    }

    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn in_memory(
        exporter: opentelemetry_sdk::trace::InMemorySpanExporter,
        resource: &Resource,
    ) -> (Self, LambdaSpanProcessor) {
        Self::with_exporter(
            Exporter::Memory(exporter),
            resource,
            None,
            false,
            (DEFAULT_MAX_BUFFERED_SPANS, 512),
        )
    }

    /// OTLP requests kept in `requests`, with spans encoded as they end as on the agent and
    /// OTLP/HTTP paths.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn in_memory_otlp(
        requests: Arc<Mutex<Vec<Vec<u8>>>>,
        resource: &Resource,
    ) -> (Self, LambdaSpanProcessor) {
        Self::with_exporter(
            Exporter::OtlpMemory(requests, pack::EncodedResource::default()),
            resource,
            None,
            false,
            (DEFAULT_MAX_BUFFERED_SPANS, 512),
        )
    }

    fn with_exporter(
        mut exporter: Exporter,
        resource: &Resource,
        app_signals: Option<AppSignals>,
        unsampled: bool,
        (capacity, max_export_batch): (usize, usize),
    ) -> (Self, LambdaSpanProcessor) {
        exporter.set_resource(resource);
        let encodes = match &exporter {
            Exporter::Otlp(otlp) => otlp.protocol() == OtlpProtocol::HttpProtobuf,
            Exporter::Agent(_) => true,
            #[cfg(any(test, feature = "testing"))]
            Exporter::OtlpMemory(..) => true,
            _ => false,
        };
        let processor = LambdaSpanProcessor::new(capacity, unsampled, encodes, app_signals);
        let flusher = Flusher {
            buffer: processor.buffer.clone(),
            exporter,
            max_export_batch,
            gate: tokio::sync::Mutex::new(()),
            spare: Mutex::new(Buffered::default()),
            flushes: AtomicU64::new(0),
            totals: Mutex::new(FlushReport::default()),
        };
        (flusher, processor)
    }

    /// How many flushes have started.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Every flush's report since the process started, added up (`deferred` is the last one's).
    pub(crate) fn totals(&self) -> FlushReport {
        *self
            .totals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A poisoned lock only means a flush panicked mid-swap; the Vec is still sound.
    fn spare(&self) -> MutexGuard<'_, Buffered> {
        self.spare
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Number of spans waiting.
    pub(crate) fn pending(&self) -> usize {
        self.buffer.lock().len()
    }

    /// Whether an `amortized` flush is due: `max_spans` are waiting, the oldest waiting span ended
    /// `max_age` ago or more, or spans have been dropped (a full buffer is reported without delay).
    pub(crate) fn is_due(&self, max_spans: usize, max_age: Duration) -> bool {
        if self.buffer.dropped.load(Ordering::Relaxed) > 0 {
            return true;
        }
        let spans = self.buffer.lock();
        // Spans are pushed as they end, so the first of each kind is its oldest.
        let oldest = [
            spans.data.first().map(|span| span.end_time),
            spans.encoded.oldest_end(),
        ];
        spans.len() >= max_spans
            || oldest
                .into_iter()
                .flatten()
                .any(|ended| ended.elapsed().is_ok_and(|waited| waited >= max_age))
    }

    /// Spans that end from now on are kept whole until [`Flusher::encode_from_now`]: the cold
    /// start's spans, which [`Flusher::rework_buffered`] may move under the `init` span.
    pub(crate) fn hold_until_init(&self) {
        self.buffer.holding.store(true, Ordering::Release);
    }

    /// Spans that end from now on are encoded as they end, where the exporter sends OTLP.
    pub(crate) fn encode_from_now(&self) {
        self.buffer.holding.store(false, Ordering::Release);
    }

    /// Replaces the spans kept whole with what `rework` makes of them.
    pub(crate) fn rework_buffered(&self, rework: impl FnOnce(Vec<SpanData>) -> Vec<SpanData>) {
        let mut spans = self.buffer.lock();
        let taken = std::mem::take(&mut spans.data);
        spans.data = rework(taken);
    }

    /// Exports what is buffered, within `bound`. Never fails: losses are counted in the report and
    /// logged once.
    pub(crate) async fn flush(&self, bound: Duration) -> FlushReport {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        let mut report = FlushReport::default();
        let started = tokio::time::Instant::now();
        let deadline = started + bound;
        let Ok(_gate) = tokio::time::timeout_at(deadline, self.gate.lock()).await else {
            report.deferred = self.pending();
            return report;
        };
        // At most one failed export per flush: a collector that refused one batch would only cost
        // the rest of the bound for the next; what is left waits for the next flush.
        let mut failure: Option<String> = None;
        let mut said = false;
        let mut spare = std::mem::take(&mut *self.spare());
        loop {
            let mut batch = {
                let mut spans = self.buffer.lock();
                if !spans.data.is_empty() {
                    let data = &mut spans.data;
                    let mut batch = std::mem::take(&mut spare.data);
                    if data.len() <= self.max_export_batch {
                        // All of them: swapped for the spare, emptied and of at least the same
                        // capacity, so no span is moved (a `SpanData` is hundreds of bytes) and
                        // pushes never reallocate.
                        batch.reserve_exact(data.capacity());
                        std::mem::swap(data, &mut batch);
                    } else {
                        batch.extend(data.drain(..self.max_export_batch));
                    }
                    Batch::Data(batch)
                } else if !spans.encoded.is_empty() {
                    let mut batch = std::mem::take(&mut spare.encoded);
                    spans.encoded.move_front(self.max_export_batch, &mut batch);
                    Batch::Encoded(batch)
                } else {
                    break;
                }
            };
            if let Batch::Data(spans) = &mut batch {
                if let Some(app_signals) = &self.buffer.app_signals {
                    spans.iter_mut().for_each(|span| app_signals.annotate(span));
                }
                if self.buffer.encodes {
                    spans.iter_mut().for_each(|span| {
                        crate::annotations::for_otlp(&mut span.attributes);
                        crate::metadata::for_otlp(&mut span.attributes);
                    });
                }
            }
            let taken = Taken {
                buffer: &self.buffer,
                size: batch.len(),
                progress: Progress::default(),
                armed: true,
            };
            let exported = tokio::time::timeout_at(
                deadline,
                self.exporter.export(&mut batch, deadline, &taken.progress),
            )
            .await;
            let size = taken.size;
            let (confirmed, in_flight) = taken.disarm();
            match batch {
                Batch::Data(mut spans) => {
                    spans.clear();
                    spare.data = spans;
                }
                Batch::Encoded(mut spans) => {
                    spans.clear();
                    spare.encoded = spans;
                }
            }
            match exported {
                Ok(Ok(())) => report.exported += size,
                Ok(Err(loss)) => {
                    // A request sent and unanswered is neither exported nor lost.
                    report.unconfirmed += in_flight as u64;
                    report.exported += size.saturating_sub(loss.dropped + in_flight);
                    report.dropped += loss.dropped as u64;
                    said |= loss.said;
                    failure = Some(loss.error);
                    break;
                }
                Err(_elapsed) => {
                    // What the exporter learned before the bound ran out is kept: requests answered
                    // are exported, one sent and unanswered is unconfirmed, the rest were not sent.
                    report.exported += confirmed;
                    report.unconfirmed += in_flight as u64;
                    report.dropped += size.saturating_sub(confirmed + in_flight) as u64;
                    failure = Some(format!("timed out after {} ms", bound.as_millis()));
                    break;
                }
            }
        }
        *self.spare() = spare;
        report.deferred = self.pending();
        // What earlier, abandoned flushes left to report, and the buffer's overflow.
        report.exported += self.buffer.exported.swap(0, Ordering::Relaxed) as usize;
        report.unconfirmed += self.buffer.unconfirmed.swap(0, Ordering::Relaxed);
        report.dropped += self.buffer.abandoned.swap(0, Ordering::Relaxed);
        let overflowed = self.buffer.dropped.swap(0, Ordering::Relaxed);
        report.dropped += overflowed;
        {
            let mut totals = self
                .totals
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            totals.exported += report.exported;
            totals.dropped += report.dropped;
            totals.unconfirmed += report.unconfirmed;
            totals.deferred = report.deferred;
        }
        // One line per flush, whatever went wrong; a cause said already only at debug.
        if let (Some(error), true) = (&failure, said) {
            tracing::debug!(
                target: "tracekit",
                %error,
                dropped = report.dropped,
                deferred = report.deferred,
                "span export failed"
            );
        } else if let Some(error) = failure {
            tracing::warn!(
                target: "tracekit",
                %error,
                dropped = report.dropped,
                unconfirmed = report.unconfirmed,
                overflowed,
                deferred = report.deferred,
                "span export failed"
            );
        } else if overflowed > 0 {
            tracing::warn!(
                target: "tracekit",
                dropped = report.dropped,
                capacity = self.buffer.capacity,
                "span buffer full: spans dropped"
            );
        }
        report
    }
}

#[cfg(feature = "xray")]
mod xray;

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{
        SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanEvents, SpanLinks};
    use std::time::SystemTime;

    fn span(sampled: bool) -> SpanData {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(1u128),
                SpanId::from(1u64),
                flags,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: "work".into(),
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            attributes: vec![],
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    /// With no agent listening (a function under `cargo lambda watch`), the first refused datagram
    /// is one warning with what to do; later flushes count their refusals at debug level.
    #[tokio::test]
    async fn an_agent_not_listening_is_warned_about_once_and_then_counted() {
        use opentelemetry_sdk::trace::SpanProcessor as _;
        let logs = crate::testing::CapturedLogs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(logs.clone())
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        // Other tests' subscribers, on other threads, may have had the flush's callsites
        // registered as of no interest: ask every live subscriber again, this one included.
        tracing::callsite::rebuild_interest_cache();
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut config = Config::from_lookup(|_| None).expect("defaults");
        config.exporter = ExporterConfig::OtlpUdp {
            agent_address: closed.local_addr().expect("address").to_string(),
        };
        drop(closed);
        let resource = Resource::builder_empty().build();
        let (flusher, processor) = Flusher::new(&config, &resource).expect("exporter");
        // Each datagram draws an ICMP "port unreachable" that makes the kernel refuse the next
        // send: flush until three refusals were counted.
        let mut refused_flushes = 0;
        for _ in 0..100 {
            processor.on_end(span(true));
            if flusher.flush(Duration::from_secs(1)).await.dropped > 0 {
                refused_flushes += 1;
                if refused_flushes == 3 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            refused_flushes,
            3,
            "the kernel refused sends: {}",
            logs.text()
        );
        let text = logs.text();
        let warnings: Vec<&str> = text
            .lines()
            .filter(|line| line.contains(" WARN "))
            .collect();
        assert_eq!(warnings.len(), 1, "one warning: {text}");
        assert!(
            warnings[0].contains("nothing is listening")
                && warnings[0].contains("OTEL_TRACES_EXPORTER=console"),
            "the warning says what to do: {}",
            warnings[0]
        );
        let counted = text
            .lines()
            .filter(|line| line.contains(" DEBUG ") && line.contains("span export failed"))
            .count();
        assert_eq!(counted, 2, "later refusals counted at debug level: {text}");
    }

    /// A flusher on the segment path, and the loopback socket standing in for the daemon.
    #[cfg(feature = "xray")]
    fn xray_flusher() -> (std::net::UdpSocket, Flusher, LambdaSpanProcessor) {
        let daemon = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        daemon
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut config = Config::from_lookup(|_| None).expect("defaults");
        config.exporter = ExporterConfig::Xray {
            daemon_address: daemon.local_addr().expect("address").to_string(),
        };
        let resource = Resource::builder_empty().build();
        let (flusher, processor) = Flusher::new(&config, &resource).expect("exporter");
        (daemon, flusher, processor)
    }

    /// A span X-Ray's segment documents cannot hold is counted and reported, not refused in
    /// silence by the translator; the others reach the daemon.
    #[cfg(feature = "xray")]
    #[tokio::test]
    async fn the_segment_path_counts_spans_x_ray_cannot_hold() {
        use opentelemetry_sdk::trace::SpanProcessor as _;
        let (daemon, flusher, processor) = xray_flusher();
        let fresh = format!(
            "{:08x}bd862e3fe1be46a994272793",
            crate::propagation::now_secs()
        );
        for trace in [fresh.as_str(), "0af7651916cd43dd8448eb211c80319c"] {
            let mut data = span(true);
            data.span_context = SpanContext::new(
                TraceId::from_hex(trace).expect("hex"),
                SpanId::from(7u64),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            );
            data.span_kind = SpanKind::Server;
            processor.on_end(data);
        }
        let report = flusher.flush(Duration::from_secs(2)).await;
        assert_eq!((report.exported, report.dropped), (1, 1), "{report:?}");
        let mut datagram = [0u8; 65_536];
        let size = daemon.recv(&mut datagram).expect("one segment");
        let text = String::from_utf8_lossy(&datagram[..size]);
        assert!(text.contains(&fresh[..8]), "{text}");
    }

    /// On the segment path X-Ray reads HTTP statuses as its own docs say: 429 throttle and error,
    /// other 4xx error, 5xx fault; a 4xx server span (status unset, as the conventions ask) too.
    #[cfg(feature = "xray")]
    #[tokio::test]
    async fn segments_carry_x_rays_error_fault_and_throttle() {
        use opentelemetry::KeyValue;
        use opentelemetry_sdk::trace::SpanProcessor as _;
        // (status code, span status, error, fault, throttle)
        let cases = [
            (404, Status::Unset, true, false, false),
            (429, Status::Unset, true, false, true),
            (400, Status::error("invalid order"), true, false, false),
            (503, Status::error("HTTP 503"), false, true, false),
            (200, Status::Unset, false, false, false),
        ];
        for (code, status, error, fault, throttle) in cases {
            let (daemon, flusher, processor) = xray_flusher();
            let mut data = span(true);
            data.span_context = SpanContext::new(
                TraceId::from_hex(&format!(
                    "{:08x}bd862e3fe1be46a994272793",
                    crate::propagation::now_secs()
                ))
                .expect("hex"),
                SpanId::from(7u64),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            );
            data.span_kind = SpanKind::Server;
            data.status = status;
            data.attributes = vec![KeyValue::new("http.response.status_code", i64::from(code))];
            processor.on_end(data);
            flusher.flush(Duration::from_secs(2)).await;
            let mut datagram = [0u8; 65_536];
            let size = daemon.recv(&mut datagram).expect("one segment");
            let text = String::from_utf8_lossy(&datagram[..size]).into_owned();
            let document: serde_json::Value = text
                .split_once('\n')
                .and_then(|(_, json)| serde_json::from_str(json).ok())
                .unwrap_or_else(|| panic!("a segment document: {text}"));
            let flag = |name: &str| document[name].as_bool().unwrap_or(false);
            assert_eq!(
                (flag("error"), flag("fault"), flag("throttle")),
                (error, fault, throttle),
                "{code}: {document}"
            );
        }
    }

    #[tokio::test]
    async fn flush_exports_buffered_spans_and_empties_the_buffer() {
        let memory = InMemorySpanExporter::default();
        let (flusher, processor) =
            Flusher::in_memory(memory.clone(), &Resource::builder_empty().build());
        for _ in 0..3 {
            processor.on_end(span(true));
        }
        let report = flusher.flush(Duration::from_secs(1)).await;
        assert_eq!(report.exported, 3);
        assert_eq!(report.dropped, 0);
        assert_eq!(flusher.pending(), 0);
        assert_eq!(memory.get_finished_spans().expect("spans").len(), 3);
    }

    /// The buffer and the spare trade places at each flush: the Vec a flush takes is emptied and
    /// becomes the next flush's buffer, so no flush allocates one. Pointers are compared while
    /// both Vecs are alive, so an allocator handing back a freed block cannot pass for reuse.
    #[tokio::test]
    async fn flushes_reuse_the_span_buffers_allocation() {
        let memory = InMemorySpanExporter::default();
        let (flusher, processor) =
            Flusher::in_memory(memory.clone(), &Resource::builder_empty().build());
        let allocations = || {
            let buffer = &flusher.buffer.lock().data;
            let spare = &flusher.spare().data;
            (
                (buffer.as_ptr(), buffer.capacity()),
                (spare.as_ptr(), spare.capacity(), spare.len()),
            )
        };
        let (first, _) = allocations();
        processor.on_end(span(true));
        assert_eq!(flusher.flush(Duration::from_secs(1)).await.exported, 1);
        let (second, spare) = allocations();
        assert_eq!(
            (spare.0, spare.1, spare.2),
            (first.0, first.1, 0),
            "the exported batch's Vec is kept, emptied"
        );
        for round in 0..4 {
            for _ in 0..3 {
                processor.on_end(span(true));
            }
            let (buffer, (spare, ..)) = allocations();
            assert_eq!(flusher.flush(Duration::from_secs(1)).await.exported, 3);
            let (now_buffer, now_spare) = allocations();
            assert_eq!(
                (now_buffer.0, now_spare.0, now_spare.2),
                (spare, buffer.0, 0),
                "round {round}: the buffer and the spare traded places"
            );
            assert!(now_buffer.1 >= second.1.min(first.1), "round {round}");
        }
        // A flush with nothing buffered keeps both.
        let before = allocations();
        flusher.flush(Duration::from_secs(1)).await;
        assert_eq!(allocations(), before);
        assert_eq!(memory.get_finished_spans().expect("spans").len(), 13);
    }

    /// A buffer larger than one export batch is sent in batches through the same spare.
    #[tokio::test]
    async fn batches_smaller_than_the_buffer_go_through_the_spare() {
        let memory = InMemorySpanExporter::default();
        let (mut flusher, processor) =
            Flusher::in_memory(memory.clone(), &Resource::builder_empty().build());
        flusher.max_export_batch = 2;
        for _ in 0..5 {
            processor.on_end(span(true));
        }
        let report = flusher.flush(Duration::from_secs(1)).await;
        assert_eq!((report.exported, report.deferred), (5, 0));
        assert_eq!(memory.get_finished_spans().expect("spans").len(), 5);
        let spare = &flusher.spare().data;
        assert!(spare.is_empty() && spare.capacity() >= 2);
    }

    /// On the paths that encode spans as they end, a buffer larger than one export batch goes out
    /// in batches too: every span once, in the order they ended, the spare emptied.
    #[tokio::test]
    async fn encoded_spans_are_exported_in_batches_in_order() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use prost::Message as _;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (mut flusher, processor) =
            Flusher::in_memory_otlp(Arc::clone(&requests), &Resource::builder_empty().build());
        flusher.max_export_batch = 2;
        assert!(processor.encodes());
        for id in 1..=5u64 {
            let mut span = span(true);
            span.span_context = SpanContext::new(
                TraceId::from(1u128),
                SpanId::from(id),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            );
            processor.on_end(span);
        }
        let report = flusher.flush(Duration::from_secs(1)).await;
        assert_eq!((report.exported, report.deferred), (5, 0));
        let requests = requests.lock().expect("requests");
        assert_eq!(requests.len(), 3, "batches of 2, 2 and 1");
        let ids: Vec<u64> = requests
            .iter()
            .flat_map(|request| {
                ExportTraceServiceRequest::decode(request.as_slice())
                    .expect("a request")
                    .resource_spans
            })
            .flat_map(|resource| resource.scope_spans)
            .flat_map(|scope| scope.spans)
            .map(|span| u64::from_be_bytes(span.span_id.try_into().expect("8 bytes")))
            .collect();
        assert_eq!(ids, [1, 2, 3, 4, 5]);
        assert!(flusher.spare().encoded.is_empty());
        assert_eq!(flusher.pending(), 0);
    }

    /// A collector that takes connections and reads requests, and never answers; and a flusher
    /// sending OTLP/HTTP to it, with `spans` buffered.
    async fn unanswered(spans: usize) -> (tokio::task::JoinHandle<()>, Flusher) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let collector = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((connection, _)) = listener.accept().await {
                let mut request = vec![0u8; 65_536];
                if connection.readable().await.is_ok() {
                    let _ = connection.try_read(&mut request);
                }
                held.push(connection);
            }
        });
        let mut config = Config::from_lookup(|_| None).expect("defaults");
        let ExporterConfig::Otlp(otlp) = &mut config.exporter else {
            panic!("OTLP/HTTP outside Lambda");
        };
        otlp.endpoint = format!("http://{address}");
        otlp.timeout = Duration::from_secs(30);
        let (flusher, processor) =
            Flusher::new(&config, &Resource::builder_empty().build()).expect("exporter");
        for _ in 0..spans {
            processor.on_end(span(true));
        }
        (collector, flusher)
    }

    /// A request sent and not answered within the bound may have reached the collector: its spans
    /// are unconfirmed, not dropped.
    #[tokio::test]
    async fn a_request_unanswered_within_the_bound_is_unconfirmed_not_dropped() {
        let (collector, flusher) = unanswered(3).await;
        let report = flusher.flush(Duration::from_millis(300)).await;
        assert_eq!(
            (report.exported, report.dropped, report.unconfirmed),
            (0, 0, 3),
            "{report:?}"
        );
        collector.abort();
    }

    /// A flush abandoned mid-export (the background flush, aborted at shutdown) books the batch it
    /// had taken: the next flush reports it.
    #[tokio::test]
    async fn a_flush_abandoned_mid_export_is_reported_by_the_next() {
        let (collector, flusher) = unanswered(4).await;
        let flusher = Arc::new(flusher);
        let background = tokio::spawn({
            let flusher = flusher.clone();
            async move {
                flusher.flush(Duration::from_secs(30)).await;
            }
        });
        // The batch is taken and its request sent; then the flush is dropped.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(flusher.pending(), 0, "the batch was taken");
        background.abort();
        let _ = background.await;
        let report = flusher.flush(Duration::from_millis(100)).await;
        assert_eq!(
            (report.exported, report.dropped, report.unconfirmed),
            (0, 0, 4),
            "{report:?}"
        );
        let totals = flusher.totals();
        assert_eq!(totals.unconfirmed, 4, "{totals:?}");
        collector.abort();
    }

    #[tokio::test]
    async fn unsampled_spans_are_never_buffered() {
        let (flusher, processor) = Flusher::in_memory(
            InMemorySpanExporter::default(),
            &Resource::builder_empty().build(),
        );
        processor.on_end(span(false));
        assert_eq!(flusher.pending(), 0);
    }

    #[tokio::test]
    async fn a_full_buffer_drops_and_counts_new_spans() {
        let (flusher, processor) = Flusher::in_memory(
            InMemorySpanExporter::default(),
            &Resource::builder_empty().build(),
        );
        for _ in 0..DEFAULT_MAX_BUFFERED_SPANS + 5 {
            processor.on_end(span(true));
        }
        let children = DEFAULT_MAX_BUFFERED_SPANS - ENTRY_SPAN_RESERVE;
        assert_eq!(
            flusher.pending(),
            children,
            "the last places are kept for entry spans"
        );
        // The invocation's span ends last and still finds room.
        let mut invocation = span(true);
        invocation.span_kind = SpanKind::Server;
        processor.on_end(invocation);
        assert_eq!(flusher.pending(), children + 1);
        let report = flusher.flush(Duration::from_secs(5)).await;
        assert_eq!(report.exported, children + 1);
        assert_eq!(report.dropped, (ENTRY_SPAN_RESERVE + 5) as u64);
        let again = flusher.flush(Duration::from_secs(1)).await;
        assert_eq!(again.dropped, 0, "drops are reported once");
    }

    #[cfg(feature = "xray")]
    #[tokio::test]
    async fn an_unreachable_daemon_address_drops_the_batch_without_failing() {
        let mut config = Config::from_lookup(|_| None).expect("defaults");
        config.exporter = ExporterConfig::Xray {
            daemon_address: "no-such-host.invalid:2000".into(),
        };
        let (flusher, processor) = Flusher::new(&config, &Resource::builder_empty().build())
            .expect("xray exporter builds without I/O");
        processor.on_end(span(true));
        let report = flusher.flush(Duration::from_secs(5)).await;
        assert_eq!(report.exported, 0);
        assert_eq!(report.dropped, 1);
    }
}
