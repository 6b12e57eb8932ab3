//! An OTLP/HTTP trace receiver standing in for the ADOT collector Lambda layer: `POST /v1/traces` with
//! `application/x-protobuf` or `application/json` (the OTLP JSON mapping), answered with an empty
//! `ExportTraceServiceResponse`. Received spans are flattened into [`ReceivedSpan`]s for assertions.
//!
//! A [`Mode`] makes the receiver fail, hang or answer slowly, to test what an exporter does then.
//!
//! It can also stand in for AWS X-Ray's OTLP endpoint (`https://xray.<region>.amazonaws.com/v1/traces`):
//! [`OtlpReceiver::start_tls`] serves HTTPS with a certificate from a [`TestCa`], an [`Auth`] checks
//! SigV4 signatures (or a bearer key) before anything else, and `Content-Encoding: gzip` bodies are
//! decompressed. Every export request is recorded as a [`ReceivedRequest`], refused ones included.
//!
//! Reference: <https://opentelemetry.io/docs/specs/otlp/#otlphttp>

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use tokio::sync::watch;

use crate::http::{Body, LOOPBACK_ANY_PORT, Server, respond};
use crate::sigv4::{Auth, authorization_scheme};
use crate::tls::TestCa;
use crate::util::lock;
use crate::{Error, Result};

pub use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
pub use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatusCode;

const TRACES_PATH: &str = "/v1/traces";
const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";
const GZIP: &str = "gzip";

/// How the receiver answers export requests that passed its [`Auth`] check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// Decode, store, answer 200 (the default).
    #[default]
    Accept,
    /// Answer with this status without storing anything.
    Fail(StatusCode),
    /// Answer the next `times` requests with `status` (and `Retry-After: retry_after` when given)
    /// without storing anything, then accept: a throttled or briefly unavailable endpoint.
    FailTimes {
        /// The status of the failed answers, e.g. 429 or 503.
        status: StatusCode,
        /// A `Retry-After` value: seconds (`"2"`) or an HTTP date.
        retry_after: Option<&'static str>,
        /// How many requests fail before the receiver accepts again.
        times: usize,
    },
    /// Never answer.
    Hang,
    /// Wait this long, then accept.
    Delay(Duration),
}

/// One `POST /v1/traces` as the receiver saw it and answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRequest {
    /// The `Content-Type` header as sent (empty when there was none).
    pub content_type: String,
    /// The `Content-Encoding` header, if any.
    pub content_encoding: Option<String>,
    /// The body's length as received (compressed, if it was).
    pub body_bytes: usize,
    /// The body's length after decompression (0 when it could not be decompressed).
    pub uncompressed_bytes: usize,
    /// Spans stored from it (0 unless accepted).
    pub spans: usize,
    /// The `Authorization` header's scheme only (`AWS4-HMAC-SHA256`, `Bearer`), never its value.
    pub authorization: Option<String>,
    /// Whether its spans were stored.
    pub accepted: bool,
    /// The status answered; 0 while unanswered (a [`Mode::Hang`] request, or one still in flight).
    pub status: u16,
}

/// How [`OtlpReceiver::start_tls`] serves HTTPS.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TlsOptions {
    /// The CA that signs the served certificate; clients must trust it.
    pub ca: Arc<TestCa>,
    /// Subject-alt names of the served certificate (IP addresses or DNS names).
    pub names: Vec<String>,
    /// How requests are authenticated.
    pub auth: Auth,
}

impl TlsOptions {
    /// A certificate from `ca` for `127.0.0.1` and `localhost`, no authentication.
    pub fn new(ca: &Arc<TestCa>) -> TlsOptions {
        TlsOptions {
            ca: Arc::clone(ca),
            names: vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
            auth: Auth::None,
        }
    }

    /// The served certificate names these instead, e.g. only `elsewhere.example` to test that a
    /// client checks the name.
    pub fn names<I, S>(mut self, names: I) -> TlsOptions
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.names = names.into_iter().map(Into::into).collect();
        self
    }

    /// Authenticates requests with `auth`.
    pub fn auth(mut self, auth: Auth) -> TlsOptions {
        self.auth = auth;
        self
    }
}

impl std::fmt::Display for AttrValue {
    /// Strings bare, arrays as `[a, b]`, the rest as their value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttrValue::String(value) => f.write_str(value),
            AttrValue::Int(value) => write!(f, "{value}"),
            AttrValue::Bool(value) => write!(f, "{value}"),
            AttrValue::Double(value) => write!(f, "{value}"),
            AttrValue::Array(values) => {
                let items: Vec<String> = values.iter().map(ToString::to_string).collect();
                write!(f, "[{}]", items.join(", "))
            }
            AttrValue::Map(map) => write!(f, "{map:?}"),
            AttrValue::Bytes(bytes) => write!(f, "{bytes:02x?}"),
            AttrValue::Empty => Ok(()),
        }
    }
}

/// An attribute value, as OTLP's `AnyValue` carries it.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// `stringValue`.
    String(String),
    /// `intValue`.
    Int(i64),
    /// `boolValue`.
    Bool(bool),
    /// `doubleValue`.
    Double(f64),
    /// `arrayValue`.
    Array(Vec<AttrValue>),
    /// `kvlistValue`.
    Map(BTreeMap<String, AttrValue>),
    /// `bytesValue`.
    Bytes(Vec<u8>),
    /// No value.
    Empty,
}

impl AttrValue {
    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::String(value) => Some(value),
            _ => None,
        }
    }

    /// The integer, if this is an integer.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            AttrValue::Int(value) => Some(*value),
            _ => None,
        }
    }

    /// The boolean, if this is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            AttrValue::Bool(value) => Some(*value),
            _ => None,
        }
    }

    /// The number, if this is a double.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            AttrValue::Double(value) => Some(*value),
            _ => None,
        }
    }

    /// The strings, if this is an array of strings only.
    pub fn as_str_array(&self) -> Option<Vec<&str>> {
        match self {
            AttrValue::Array(values) => values.iter().map(AttrValue::as_str).collect(),
            _ => None,
        }
    }

    fn from_otlp(value: Option<AnyValue>) -> AttrValue {
        match value.and_then(|value| value.value) {
            Some(any_value::Value::StringValue(value)) => AttrValue::String(value),
            Some(any_value::Value::BoolValue(value)) => AttrValue::Bool(value),
            Some(any_value::Value::IntValue(value)) => AttrValue::Int(value),
            Some(any_value::Value::DoubleValue(value)) => AttrValue::Double(value),
            Some(any_value::Value::ArrayValue(array)) => AttrValue::Array(
                array
                    .values
                    .into_iter()
                    .map(|value| AttrValue::from_otlp(Some(value)))
                    .collect(),
            ),
            Some(any_value::Value::KvlistValue(list)) => AttrValue::Map(attributes(list.values)),
            Some(any_value::Value::BytesValue(value)) => AttrValue::Bytes(value),
            // String-table references are only used by profiles.
            Some(any_value::Value::StringValueStrindex(_)) | None => AttrValue::Empty,
        }
    }
}

/// Attributes by key.
pub type Attributes = BTreeMap<String, AttrValue>;

/// A span event.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedEvent {
    /// The event name, e.g. `exception`.
    pub name: String,
    /// When it happened, in nanoseconds since the Unix epoch.
    pub time_unix_nanos: u64,
    /// Its attributes.
    pub attributes: Attributes,
}

/// A span link.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedLink {
    /// The linked trace id, 32 lowercase hex digits.
    pub trace_id: String,
    /// The linked span id, 16 lowercase hex digits.
    pub span_id: String,
    /// Its attributes.
    pub attributes: Attributes,
}

/// One received span with its resource and scope, ids as lowercase hex.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits; `None` for a root span.
    pub parent_span_id: Option<String>,
    /// The W3C `tracestate`.
    pub trace_state: String,
    /// W3C trace flags and OTLP's `flags` bits.
    pub flags: u32,
    /// The span name.
    pub name: String,
    /// The span kind (an unknown value reads as `Unspecified`).
    pub kind: SpanKind,
    /// Span attributes.
    pub attributes: Attributes,
    /// Span events, in order.
    pub events: Vec<ReceivedEvent>,
    /// Span links, in order.
    pub links: Vec<ReceivedLink>,
    /// The status code.
    pub status_code: SpanStatusCode,
    /// The status message.
    pub status_message: String,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// End, in nanoseconds since the Unix epoch.
    pub end_unix_nanos: u64,
    /// Attributes of the span's resource.
    pub resource: Attributes,
    /// The instrumentation scope's name.
    pub scope_name: String,
}

impl ReceivedSpan {
    /// A span attribute.
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attributes.get(key)
    }

    /// A string span attribute.
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(AttrValue::as_str)
    }

    /// An integer span attribute.
    pub fn attr_i64(&self, key: &str) -> Option<i64> {
        self.attr(key).and_then(AttrValue::as_i64)
    }

    /// A boolean span attribute.
    pub fn attr_bool(&self, key: &str) -> Option<bool> {
        self.attr(key).and_then(AttrValue::as_bool)
    }

    /// A string resource attribute.
    pub fn resource_str(&self, key: &str) -> Option<&str> {
        self.resource.get(key).and_then(AttrValue::as_str)
    }

    /// The first event with this name.
    pub fn event(&self, name: &str) -> Option<&ReceivedEvent> {
        self.events.iter().find(|event| event.name == name)
    }

    /// The span's duration (zero if it ends before it starts).
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.end_unix_nanos.saturating_sub(self.start_unix_nanos))
    }
}

/// Received spans, in arrival order: what the OTLP receiver and the X-Ray agent stand-in
/// ([`crate::XrayDaemon`]) fill, so a test reads a trace the same way whichever path it took.
#[derive(Debug, Clone)]
pub struct SpanStore {
    spans: Arc<watch::Sender<Vec<ReceivedSpan>>>,
}

impl Default for SpanStore {
    fn default() -> Self {
        SpanStore {
            spans: Arc::new(watch::Sender::new(Vec::new())),
        }
    }
}

impl SpanStore {
    /// Adds the spans of one export request.
    pub fn add(&self, export: ExportTraceServiceRequest) {
        let spans = flatten(export);
        self.spans.send_modify(|stored| stored.extend(spans));
    }

    /// Every span stored so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.borrow().clone()
    }

    /// Forgets the stored spans.
    pub fn clear(&self) {
        self.spans.send_modify(Vec::clear);
    }

    /// Every span stored so far, forgotten as it is returned.
    pub fn take(&self) -> Vec<ReceivedSpan> {
        self.spans.send_replace(Vec::new())
    }

    /// Waits until at least `count` spans are stored; `None` on timeout.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Option<Vec<ReceivedSpan>> {
        let mut spans = self.spans.subscribe();
        let waited = tokio::time::timeout(timeout, spans.wait_for(|spans| spans.len() >= count));
        match waited.await {
            Ok(Ok(spans)) => Some(spans.clone()),
            _ => None,
        }
    }
}

/// The OTLP/HTTP receiver. Stops when dropped.
#[derive(Debug)]
pub struct OtlpReceiver {
    state: Arc<ReceiverState>,
    server: Server,
}

impl OtlpReceiver {
    /// Starts the receiver on 127.0.0.1 and a free port. Must be called inside a Tokio runtime.
    pub fn start() -> Result<OtlpReceiver> {
        OtlpReceiver::start_at(LOOPBACK_ANY_PORT)
    }

    /// [`OtlpReceiver::start`] on `address` (port 0: a free one): a tool's receiver, such as
    /// `tracekit-view`'s on 127.0.0.1:4318, where an OTLP exporter sends by default.
    pub fn start_at(address: SocketAddr) -> Result<OtlpReceiver> {
        let state = ReceiverState::new(Auth::None);
        let server = Server::start_at("OTLP receiver", address, {
            let state = Arc::clone(&state);
            move |request| Arc::clone(&state).handle(request)
        })?;
        Ok(OtlpReceiver { state, server })
    }

    /// Starts the receiver serving HTTPS, as X-Ray's OTLP endpoint does, with a certificate for
    /// `options.names` signed by `options.ca`. Must be called inside a Tokio runtime.
    pub fn start_tls(options: TlsOptions) -> Result<OtlpReceiver> {
        let names: Vec<&str> = options.names.iter().map(String::as_str).collect();
        let config = options.ca.server_config(&names)?;
        let state = ReceiverState::new(options.auth);
        let server = Server::start_tls("HTTPS OTLP receiver", config, {
            let state = Arc::clone(&state);
            move |request| Arc::clone(&state).handle(request)
        })?;
        Ok(OtlpReceiver { state, server })
    }

    /// `http://127.0.0.1:PORT` (`https://` for [`OtlpReceiver::start_tls`]), the value for
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("{}://{}", self.server.scheme(), self.server.addr())
    }

    /// [`OtlpReceiver::endpoint`] with `/v1/traces`, the value for
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
    pub fn traces_url(&self) -> String {
        format!("{}{TRACES_PATH}", self.endpoint())
    }

    /// TLS handshakes that failed, e.g. because the client refused the certificate (0 for a plain
    /// receiver).
    pub fn handshake_failures(&self) -> usize {
        self.server.handshake_failures()
    }

    /// TCP connections accepted so far: an exporter that keeps its connection opens one.
    pub fn connections(&self) -> usize {
        self.server.connections()
    }

    /// Changes how later requests are authenticated.
    pub fn set_auth(&self, auth: Auth) {
        *lock(&self.state.auth) = auth;
    }

    /// Changes how later requests are answered.
    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.state.mode) = mode;
    }

    /// Every span stored so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.state.spans.spans()
    }

    /// Waits until at least `count` spans have been stored and returns all of them.
    pub async fn wait_for_spans(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<ReceivedSpan>> {
        if let Some(spans) = self.state.spans.wait_for(count, timeout).await {
            return Ok(spans);
        }
        let names: Vec<String> = self.spans().into_iter().map(|span| span.name).collect();
        Err(Error::Timeout(format!(
            "the OTLP receiver got {} of {count} spans within {timeout:?} ({} requests): {names:?}; \
             rejected requests: {:?}",
            names.len(),
            self.request_count(),
            self.rejections()
        )))
    }

    /// Forgets the stored spans (not the request count).
    pub fn clear(&self) {
        self.state.spans.clear();
    }

    /// The spans stored so far, forgotten here as they are returned: for a reader that keeps what it
    /// takes, such as a viewer that runs for hours.
    pub fn take_spans(&self) -> Vec<ReceivedSpan> {
        self.state.spans.take()
    }

    /// How many requests have been answered, accepted or refused, whatever their path: it changes
    /// once each request's spans are stored or its refusal is in [`OtlpReceiver::rejections`].
    pub fn answered(&self) -> watch::Receiver<usize> {
        self.state.answered.subscribe()
    }

    /// Requests received on `/v1/traces`, whatever their fate.
    pub fn request_count(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Every `POST /v1/traces` so far, in arrival order, refused ones included.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        lock(&self.state.records).clone()
    }

    /// Why requests were refused (wrong path, authentication, content type or encoding, undecodable
    /// body). Answers from a failing [`Mode`] are not refusals.
    pub fn rejections(&self) -> Vec<String> {
        lock(&self.state.rejections).clone()
    }
}

#[derive(Debug)]
struct ReceiverState {
    spans: SpanStore,
    requests: AtomicUsize,
    /// Requests answered, refused ones included.
    answered: watch::Sender<usize>,
    mode: Mutex<Mode>,
    auth: Mutex<Auth>,
    records: Mutex<Vec<ReceivedRequest>>,
    rejections: Mutex<Vec<String>>,
}

/// A request's entry in [`ReceiverState::records`], filled in as it is answered.
struct Record<'a> {
    state: &'a ReceiverState,
    index: usize,
}

impl Record<'_> {
    fn update(&self, update: impl FnOnce(&mut ReceivedRequest)) {
        if let Some(record) = lock(&self.state.records).get_mut(self.index) {
            update(record);
        }
    }

    /// Records the answer and passes it on.
    fn answer(&self, response: Response<Body>) -> Response<Body> {
        let status = response.status();
        self.update(|record| record.status = status.as_u16());
        response
    }

    /// A refusal: recorded with its reason.
    fn reject(&self, status: StatusCode, reason: String) -> Response<Body> {
        self.answer(self.state.reject(status, reason))
    }
}

impl ReceiverState {
    fn new(auth: Auth) -> Arc<ReceiverState> {
        Arc::new(ReceiverState {
            spans: SpanStore::default(),
            requests: AtomicUsize::new(0),
            answered: watch::Sender::new(0),
            mode: Mutex::new(Mode::Accept),
            auth: Mutex::new(auth),
            records: Mutex::default(),
            rejections: Mutex::default(),
        })
    }

    /// The mode for the request arriving now, counting a [`Mode::FailTimes`] failure down.
    fn next_mode(&self) -> Mode {
        let mut mode = lock(&self.mode);
        let current = *mode;
        if let Mode::FailTimes {
            status,
            retry_after,
            times,
        } = current
        {
            *mode = match times {
                0 | 1 => Mode::Accept,
                _ => Mode::FailTimes {
                    status,
                    retry_after,
                    times: times - 1,
                },
            };
            if times == 0 {
                return Mode::Accept;
            }
        }
        current
    }

    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let response = Arc::clone(&self).reply(request).await;
        self.answered.send_modify(|answered| *answered += 1);
        response
    }

    async fn reply(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        if request.uri().path() != TRACES_PATH || request.method() != Method::POST {
            let reason = format!(
                "{} {}: only POST {TRACES_PATH} is served",
                request.method(),
                request.uri()
            );
            return self.reject(StatusCode::NOT_FOUND, reason);
        }
        self.requests.fetch_add(1, Ordering::SeqCst);
        let header = |name| {
            request
                .headers()
                .get(name)
                .and_then(|value: &HeaderValue| value.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header(header::CONTENT_TYPE).unwrap_or_default();
        let content_encoding = header(header::CONTENT_ENCODING);
        let record = {
            let mut records = lock(&self.records);
            records.push(ReceivedRequest {
                content_type: content_type.clone(),
                content_encoding: content_encoding.clone(),
                body_bytes: 0,
                uncompressed_bytes: 0,
                spans: 0,
                authorization: authorization_scheme(request.headers()),
                accepted: false,
                status: 0,
            });
            Record {
                state: &self,
                index: records.len() - 1,
            }
        };

        // The whole body first: a SigV4 signature covers its bytes as sent.
        let (parts, body) = request.into_parts();
        let Ok(body) = body.collect().await.map(|body| body.to_bytes()) else {
            return record.answer(respond(StatusCode::BAD_REQUEST, ""));
        };
        record.update(|record| record.body_bytes = body.len());
        // Authentication before the mode: a bad signature is a 403 whatever the test scripted.
        let auth = lock(&self.auth).clone();
        if let Err(reason) = auth.check(&parts, &body) {
            return record.reject(StatusCode::FORBIDDEN, reason);
        }

        match self.next_mode() {
            Mode::Accept => {}
            Mode::Fail(status) => {
                return record.answer(respond(status, "fault injected by the test"));
            }
            Mode::FailTimes {
                status,
                retry_after,
                ..
            } => {
                let mut response = respond(status, "fault injected by the test");
                if let Some(value) = retry_after.and_then(|value| HeaderValue::from_str(value).ok())
                {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                return record.answer(response);
            }
            Mode::Hang => std::future::pending::<()>().await,
            Mode::Delay(delay) => tokio::time::sleep(delay).await,
        }

        let body = match content_encoding.as_deref() {
            None | Some("identity") => body,
            Some(encoding) if encoding.eq_ignore_ascii_case(GZIP) => {
                let mut decompressed = Vec::new();
                let mut decoder = flate2::read::MultiGzDecoder::new(&body[..]);
                if let Err(error) = decoder.read_to_end(&mut decompressed) {
                    let reason = format!("undecodable gzip body: {error}");
                    return record.reject(StatusCode::BAD_REQUEST, reason);
                }
                Bytes::from(decompressed)
            }
            Some(encoding) => {
                let reason = format!("Content-Encoding {encoding} is not supported");
                return record.reject(StatusCode::UNSUPPORTED_MEDIA_TYPE, reason);
            }
        };
        record.update(|record| record.uncompressed_bytes = body.len());
        // Parameters such as `; charset=utf-8` do not change the format.
        let media_type = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let (decoded, response_body) = match media_type.as_str() {
            PROTOBUF => (
                ExportTraceServiceRequest::decode(body).map_err(|error| error.to_string()),
                Bytes::from(ExportTraceServiceResponse::default().encode_to_vec()),
            ),
            JSON => (
                serde_json::from_slice(&body).map_err(|error| error.to_string()),
                Bytes::from_static(b"{}"),
            ),
            _ => {
                let reason = format!("Content-Type {content_type:?} is not {PROTOBUF} or {JSON}");
                return record.reject(StatusCode::UNSUPPORTED_MEDIA_TYPE, reason);
            }
        };
        let export: ExportTraceServiceRequest = match decoded {
            Ok(export) => export,
            Err(error) => {
                let reason = format!("undecodable {media_type} body: {error}");
                return record.reject(StatusCode::BAD_REQUEST, reason);
            }
        };
        let spans = export
            .resource_spans
            .iter()
            .flat_map(|resource_spans| &resource_spans.scope_spans)
            .map(|scope_spans| scope_spans.spans.len())
            .sum();
        self.spans.add(export);
        record.update(|record| {
            record.spans = spans;
            record.accepted = true;
        });
        let mut response = respond(StatusCode::OK, response_body);
        if let Ok(value) = HeaderValue::from_str(&media_type) {
            response.headers_mut().insert(header::CONTENT_TYPE, value);
        }
        record.answer(response)
    }

    fn reject(&self, status: StatusCode, reason: String) -> Response<Body> {
        let response = respond(status, reason.clone());
        lock(&self.rejections).push(reason);
        response
    }
}

fn flatten(export: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut flat = Vec::new();
    for resource_spans in export.resource_spans {
        let resource = attributes(
            resource_spans
                .resource
                .map(|resource| resource.attributes)
                .unwrap_or_default(),
        );
        for scope_spans in resource_spans.scope_spans {
            let scope_name = scope_spans
                .scope
                .map(|scope| scope.name)
                .unwrap_or_default();
            for span in scope_spans.spans {
                let status = span.status.unwrap_or_default();
                flat.push(ReceivedSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: (!span.parent_span_id.is_empty())
                        .then(|| hex(&span.parent_span_id)),
                    trace_state: span.trace_state,
                    flags: span.flags,
                    name: span.name,
                    kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                    attributes: attributes(span.attributes),
                    events: span
                        .events
                        .into_iter()
                        .map(|event| ReceivedEvent {
                            name: event.name,
                            time_unix_nanos: event.time_unix_nano,
                            attributes: attributes(event.attributes),
                        })
                        .collect(),
                    links: span
                        .links
                        .into_iter()
                        .map(|link| ReceivedLink {
                            trace_id: hex(&link.trace_id),
                            span_id: hex(&link.span_id),
                            attributes: attributes(link.attributes),
                        })
                        .collect(),
                    status_code: SpanStatusCode::try_from(status.code)
                        .unwrap_or(SpanStatusCode::Unset),
                    status_message: status.message,
                    start_unix_nanos: span.start_time_unix_nano,
                    end_unix_nanos: span.end_time_unix_nano,
                    resource: resource.clone(),
                    scope_name: scope_name.clone(),
                });
            }
        }
    }
    flat
}

fn attributes(key_values: Vec<KeyValue>) -> Attributes {
    key_values
        .into_iter()
        .map(|key_value| (key_value.key, AttrValue::from_otlp(key_value.value)))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
