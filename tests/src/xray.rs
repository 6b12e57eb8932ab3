//! A stand-in for the X-Ray agent Lambda runs: a UDP socket that takes what the agent takes.
//!
//! - OTLP spans, as AWS's distributions send them (aws-otel-python-instrumentation's
//!   `otlp_udp_exporter.py`): the header `{"format":"json","version":1}`, a newline, `T1S` (sampled)
//!   or `T1U` (unsampled), and the standard base64 of a protobuf `ExportTraceServiceRequest`, at most
//!   65,507 bytes in all. They are decoded into a [`SpanStore`], the same store the OTLP receiver
//!   fills, so a test reads the trace the same way on either path.
//! - Segment documents, in the daemon's framing: the same header, a newline, and one segment or
//!   subsegment document. They are forwarded to the X-Ray API with `PutTraceSegments` (moto here), as
//!   the daemon does, and [`batch_get_traces`] reads them back.
//!   <https://docs.aws.amazon.com/xray/latest/devguide/xray-api-sendingdata.html#xray-api-daemon>
//!
//! A datagram that is neither is refused and kept with its reason; [`XrayDaemon::wait_for_spans`]
//! fails on the first one, so a malformed datagram fails the test that caused it.
//!
//! A recording stand-in ([`XrayDaemon::recording`]) keeps datagrams as they arrive and reads them when
//! a test asks what they carry, so it takes no CPU from the function while the function runs: the
//! benchmark's turnaround is then the function's, as it would be next to the real agent.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_xray::error::DisplayErrorContext;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::Value;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::http::LOOPBACK_ANY_PORT;
use crate::otlp::{ReceivedSpan, SpanStore};
use crate::stack::wait_until;
use crate::util::{lock, random_hex};
use crate::{Error, Result};

/// The most documents one `PutTraceSegments` call carries, as the daemon batches them.
const MAX_BATCH: usize = 50;
/// `BatchGetTraces` takes at most 5 trace ids per call.
const MAX_TRACE_IDS: usize = 5;
/// The largest UDP payload over IPv4, what the agent accepts.
pub const MAX_DATAGRAM: usize = 65_507;
/// Receive buffer: room for a datagram larger than the limit, so one is seen and refused.
const RECEIVE_BUFFER: usize = 65_536;
/// Prefix of a datagram of sampled OTLP spans.
pub const SAMPLED_PREFIX: &str = "T1S";
/// Prefix of a datagram of unsampled OTLP spans (Application Signals).
pub const UNSAMPLED_PREFIX: &str = "T1U";

/// The X-Ray daemon stand-in. Stops when dropped.
#[derive(Debug)]
pub struct XrayDaemon {
    address: String,
    state: Arc<DaemonState>,
    tasks: Vec<JoinHandle<()>>,
}

impl XrayDaemon {
    /// Starts a daemon that forwards every well-formed document to the X-Ray API through `client`
    /// (see [`crate::stack::xray_client`]), reading each datagram as it arrives. Must be called
    /// inside a Tokio runtime.
    pub fn start(client: aws_sdk_xray::Client) -> Result<XrayDaemon> {
        XrayDaemon::bind(LOOPBACK_ANY_PORT, Some(client), Reading::OnArrival)
    }

    /// Starts a daemon that only records what it receives: for tests that need no X-Ray API. It
    /// reads its datagrams when asked for what they carry, not as they arrive, so that it takes no
    /// CPU from the function under test while the function works (as the real agent, in a process
    /// of its own, does not); what it finds is the same.
    pub fn recording() -> Result<XrayDaemon> {
        XrayDaemon::bind(LOOPBACK_ANY_PORT, None, Reading::WhenAsked)
    }

    /// Starts a daemon on `address` (port 0: a free one) that reads each datagram as it arrives and
    /// forwards nothing: a tool's agent, such as `tracekit-view`'s on 127.0.0.1:2000, where tracekit
    /// sends by default. [`XrayDaemon::datagrams`] says when one has been read.
    pub fn listen(address: SocketAddr) -> Result<XrayDaemon> {
        XrayDaemon::bind(address, None, Reading::OnArrival)
    }

    fn bind(
        address: SocketAddr,
        client: Option<aws_sdk_xray::Client>,
        reading: Reading,
    ) -> Result<XrayDaemon> {
        let bind = || -> std::io::Result<_> {
            let socket = std::net::UdpSocket::bind(address)?;
            socket.set_nonblocking(true)?;
            let address = socket.local_addr()?;
            Ok((UdpSocket::from_std(socket)?, address))
        };
        let (socket, address) = bind().map_err(Error::io(format!(
            "binding the X-Ray agent's UDP socket to {address}"
        )))?;
        let (forward_tx, forward_rx) = mpsc::unbounded_channel();
        let state = Arc::new(DaemonState {
            received: watch::Sender::new(0),
            reading,
            unread: Mutex::default(),
            forward: client.is_some().then_some(forward_tx),
            sampled: SpanStore::default(),
            unsampled: SpanStore::default(),
            documents: Mutex::default(),
            forwarded: watch::Sender::new(0),
            rejected: Mutex::default(),
            forward_errors: Mutex::default(),
        });
        let mut tasks = vec![tokio::spawn(receive(socket, Arc::clone(&state)))];
        if let Some(client) = client {
            tasks.push(tokio::spawn(forward(
                client,
                forward_rx,
                Arc::clone(&state),
            )));
        }
        Ok(XrayDaemon {
            address: address.to_string(),
            state,
            tasks,
        })
    }

    /// `127.0.0.1:PORT`, the value for `AWS_XRAY_DAEMON_ADDRESS`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Datagrams received so far, well-formed or not.
    pub fn datagram_count(&self) -> usize {
        *self.state.received.borrow()
    }

    /// The count of datagrams received: it changes once each datagram is received (and, for a daemon
    /// that reads on arrival, read: its spans stored or its refusal in [`XrayDaemon::rejected`]).
    pub fn datagrams(&self) -> watch::Receiver<usize> {
        self.state.received.subscribe()
    }

    /// The `T1S` spans received so far, forgotten here as they are returned: for a reader that keeps
    /// what it takes, such as a viewer that runs for hours.
    pub fn take_spans(&self) -> Vec<ReceivedSpan> {
        self.state.read_unread();
        self.state.sampled.take()
    }

    /// [`XrayDaemon::take_spans`] for `T1U` spans.
    pub fn take_unsampled_spans(&self) -> Vec<ReceivedSpan> {
        self.state.read_unread();
        self.state.unsampled.take()
    }

    /// [`XrayDaemon::take_spans`] for segment documents.
    pub fn take_documents(&self) -> Vec<Value> {
        self.state.read_unread();
        std::mem::take(&mut *lock(&self.state.documents))
    }

    /// Spans received as `T1S` (sampled), in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.state.read_unread();
        self.state.sampled.spans()
    }

    /// Spans received as `T1U` (unsampled), in arrival order.
    pub fn unsampled_spans(&self) -> Vec<ReceivedSpan> {
        self.state.read_unread();
        self.state.unsampled.spans()
    }

    /// Waits until at least `count` `T1S` spans have arrived and returns all of them. Fails at once,
    /// naming it, if any datagram was refused.
    pub async fn wait_for_spans(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<ReceivedSpan>> {
        self.wait_in(&self.state.sampled, SAMPLED_PREFIX, count, timeout)
            .await
    }

    /// [`XrayDaemon::wait_for_spans`] for `T1U` spans.
    pub async fn wait_for_unsampled_spans(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<ReceivedSpan>> {
        self.wait_in(&self.state.unsampled, UNSAMPLED_PREFIX, count, timeout)
            .await
    }

    async fn wait_in(
        &self,
        store: &SpanStore,
        prefix: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<ReceivedSpan>> {
        let enough = || !self.rejected().is_empty() || store.spans().len() >= count;
        self.wait(timeout, enough).await;
        let rejected = self.rejected();
        if !rejected.is_empty() {
            return Err(Error::Invalid(format!(
                "the X-Ray agent stand-in refused datagrams: {rejected:?}"
            )));
        }
        let spans = store.spans();
        if spans.len() >= count {
            return Ok(spans);
        }
        let names: Vec<String> = spans.into_iter().map(|span| span.name).collect();
        Err(Error::Timeout(format!(
            "the X-Ray agent stand-in got {} of {count} {prefix} spans within {timeout:?} \
             ({} datagrams): {names:?}",
            names.len(),
            self.datagram_count()
        )))
    }

    /// Reads what has arrived until `done` holds or `timeout` passes; whether `done` held.
    async fn wait(&self, timeout: Duration, done: impl Fn() -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut received = self.state.received.subscribe();
        loop {
            received.borrow_and_update();
            self.state.read_unread();
            if done() {
                return true;
            }
            if tokio::time::timeout_at(deadline, received.changed())
                .await
                .is_err()
            {
                self.state.read_unread();
                return done();
            }
        }
    }

    /// Every well-formed document received so far, parsed, in arrival order.
    pub fn documents(&self) -> Vec<Value> {
        self.state.read_unread();
        lock(&self.state.documents).clone()
    }

    /// Waits until at least `count` well-formed documents have arrived and returns all of them.
    pub async fn wait_for_documents(&self, count: usize, timeout: Duration) -> Result<Vec<Value>> {
        if self
            .wait(timeout, || lock(&self.state.documents).len() >= count)
            .await
        {
            return Ok(self.documents());
        }
        Err(Error::Timeout(format!(
            "the X-Ray daemon got {} of {count} documents within {timeout:?}; rejected datagrams: {:?}",
            self.documents().len(),
            self.rejected()
        )))
    }

    /// Waits until the X-Ray API has accepted at least `count` documents from this daemon.
    pub async fn wait_for_forwarded(&self, count: usize, timeout: Duration) -> Result<()> {
        let mut forwarded = self.state.forwarded.subscribe();
        let waited =
            tokio::time::timeout(timeout, forwarded.wait_for(|forwarded| *forwarded >= count));
        match waited.await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::Timeout(format!(
                "the X-Ray API accepted {} of {count} documents within {timeout:?}; forwarding errors: {:?}",
                *self.state.forwarded.borrow(),
                self.forward_errors()
            ))),
        }
    }

    /// Datagrams refused as malformed, each with the reason and (the start of) its text.
    pub fn rejected(&self) -> Vec<String> {
        self.state.read_unread();
        lock(&self.state.rejected).clone()
    }

    /// Failed `PutTraceSegments` calls and documents the X-Ray API reported as unprocessed.
    pub fn forward_errors(&self) -> Vec<String> {
        lock(&self.state.forward_errors).clone()
    }
}

impl Drop for XrayDaemon {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[derive(Debug)]
struct DaemonState {
    /// Datagrams received.
    received: watch::Sender<usize>,
    reading: Reading,
    /// Datagrams received and not read yet (a recording daemon reads them when asked).
    unread: Mutex<Vec<Vec<u8>>>,
    /// Where documents go to be forwarded.
    forward: Option<mpsc::UnboundedSender<String>>,
    sampled: SpanStore,
    unsampled: SpanStore,
    documents: Mutex<Vec<Value>>,
    /// Documents the X-Ray API accepted.
    forwarded: watch::Sender<usize>,
    rejected: Mutex<Vec<String>>,
    forward_errors: Mutex<Vec<String>>,
}

impl DaemonState {
    /// Reads the datagrams not read yet, in arrival order.
    fn read_unread(&self) {
        let unread = std::mem::take(&mut *lock(&self.unread));
        for datagram in unread {
            self.read(&datagram);
        }
    }

    /// Checks one datagram and files what it carries.
    fn read(&self, datagram: &[u8]) {
        match parse_datagram(datagram) {
            Ok(Datagram::Spans { sampled, request }) => {
                let store = if sampled {
                    &self.sampled
                } else {
                    &self.unsampled
                };
                store.add(request);
            }
            Ok(Datagram::Document { text, document }) => {
                lock(&self.documents).push(document);
                if let Some(forward) = &self.forward {
                    let _ = forward.send(text.to_owned());
                }
            }
            Err(reason) => {
                let start = String::from_utf8_lossy(&datagram[..datagram.len().min(200)]);
                lock(&self.rejected)
                    .push(format!("{reason} ({} bytes): {start:?}", datagram.len()));
            }
        }
    }
}

async fn receive(socket: UdpSocket, state: Arc<DaemonState>) {
    let mut buffer = vec![0; RECEIVE_BUFFER];
    while let Ok(length) = socket.recv(&mut buffer).await {
        if state.reading == Reading::OnArrival {
            state.read(&buffer[..length]);
        } else {
            lock(&state.unread).push(buffer[..length].to_vec());
        }
        state.received.send_modify(|count| *count += 1);
    }
}

/// When a daemon reads (checks and files) its datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// As each arrives: a forwarding daemon, a viewer.
    OnArrival,
    /// When a test asks what arrived, so that reading takes no CPU from the function under test.
    WhenAsked,
}

/// What one well-formed datagram carries.
#[derive(Debug)]
enum Datagram<'a> {
    /// `T1S` or `T1U` OTLP spans.
    Spans {
        sampled: bool,
        request: ExportTraceServiceRequest,
    },
    /// A segment document: its text (forwarded unchanged) and the document, parsed.
    Document { text: &'a str, document: Value },
}

/// Checks a datagram against the agent's rules and says what it carries.
fn parse_datagram(datagram: &[u8]) -> Result<Datagram<'_>, String> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(format!("larger than {MAX_DATAGRAM} bytes"));
    }
    let newline = datagram
        .iter()
        .position(|&byte| byte == b'\n')
        .ok_or("no newline after the header")?;
    let (header, body) = (&datagram[..newline], &datagram[newline + 1..]);
    let header: Value =
        serde_json::from_slice(header).map_err(|error| format!("header is not JSON ({error})"))?;
    if header.get("format") != Some(&Value::from("json"))
        || header.get("version") != Some(&Value::from(1))
    {
        return Err(format!(
            r#"header {header} is not {{"format": "json", "version": 1}}"#
        ));
    }
    let otlp = [(SAMPLED_PREFIX, true), (UNSAMPLED_PREFIX, false)]
        .into_iter()
        .find_map(|(prefix, sampled)| Some((body.strip_prefix(prefix.as_bytes())?, sampled)));
    if let Some((encoded, sampled)) = otlp {
        let encoded = std::str::from_utf8(encoded).map_err(|_| "the base64 is not ASCII")?;
        let protobuf = aws_smithy_types::base64::decode(encoded)
            .map_err(|_| "the spans are not standard base64".to_owned())?;
        let request = ExportTraceServiceRequest::decode(protobuf.as_slice())
            .map_err(|error| format!("the spans are not an ExportTraceServiceRequest ({error})"))?;
        check_spans(&request)?;
        return Ok(Datagram::Spans { sampled, request });
    }
    let text = std::str::from_utf8(body).map_err(|_| "document is not UTF-8")?;
    let document: Value =
        serde_json::from_str(text).map_err(|error| format!("document is not JSON ({error})"))?;
    if !document.is_object() {
        return Err("document is not a JSON object".to_owned());
    }
    Ok(Datagram::Document { text, document })
}

/// What X-Ray needs of every span: a resource, a 16-byte trace id, an 8-byte span id, a name.
fn check_spans(request: &ExportTraceServiceRequest) -> Result<(), String> {
    let mut spans = 0;
    for resource_spans in &request.resource_spans {
        if resource_spans.resource.is_none() {
            return Err("a ResourceSpans without its resource".to_owned());
        }
        for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
            spans += 1;
            if span.trace_id.len() != 16 || span.span_id.len() != 8 || span.name.is_empty() {
                return Err(format!(
                    "span {:?}: trace id of {} bytes, span id of {} bytes",
                    span.name,
                    span.trace_id.len(),
                    span.span_id.len()
                ));
            }
            if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
                return Err(format!(
                    "span {:?}: a parent id that is not 8 bytes",
                    span.name
                ));
            }
        }
    }
    if spans == 0 {
        return Err("a datagram without spans".to_owned());
    }
    Ok(())
}

async fn forward(
    client: aws_sdk_xray::Client,
    mut documents: mpsc::UnboundedReceiver<String>,
    state: Arc<DaemonState>,
) {
    while let Some(first) = documents.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match documents.try_recv() {
                Ok(document) => batch.push(document),
                Err(_) => break,
            }
        }
        let sent = batch.len();
        let result = client
            .put_trace_segments()
            .set_trace_segment_documents(Some(batch))
            .send()
            .await;
        match result {
            Ok(output) => {
                let unprocessed = output.unprocessed_trace_segments();
                for segment in unprocessed {
                    lock(&state.forward_errors).push(format!(
                        "PutTraceSegments left segment {} unprocessed: {} {}",
                        segment.id().unwrap_or("?"),
                        segment.error_code().unwrap_or("?"),
                        segment.message().unwrap_or("")
                    ));
                }
                state
                    .forwarded
                    .send_modify(|forwarded| *forwarded += sent - unprocessed.len());
            }
            Err(error) => {
                let error = DisplayErrorContext(&error);
                lock(&state.forward_errors).push(format!(
                    "PutTraceSegments of {sent} documents failed: {error}"
                ));
            }
        }
    }
}

/// Polls `BatchGetTraces` until every trace in `trace_ids` is returned with at least one segment, and
/// returns all their segment documents, parsed.
///
/// Forwarding is asynchronous: a test that needs a trace to be complete should first wait for
/// [`XrayDaemon::wait_for_forwarded`].
pub async fn batch_get_traces(
    client: &aws_sdk_xray::Client,
    trace_ids: &[&str],
    timeout: Duration,
) -> Result<Vec<Value>> {
    let what = format!("BatchGetTraces to return traces {trace_ids:?}");
    let last_error = &Mutex::new(None);
    let found = wait_until(timeout, &what, || async move {
        match fetch_traces(client, trace_ids).await {
            Ok((found, documents)) => (found == trace_ids.len()).then_some(documents),
            Err(error) => {
                *lock(last_error) = Some(error);
                None
            }
        }
    })
    .await;
    let documents = found.map_err(|timeout| match lock(last_error).take() {
        Some(error) => Error::Timeout(format!("{timeout}; the last call failed: {error}")),
        None => timeout,
    })?;
    documents
        .into_iter()
        .map(|document| {
            serde_json::from_str(&document)
                .map_err(Error::json(format!("segment document {document}")))
        })
        .collect()
}

/// One round of `BatchGetTraces` (all pages): how many of the requested traces have segments, and the
/// segment documents.
async fn fetch_traces(
    client: &aws_sdk_xray::Client,
    trace_ids: &[&str],
) -> Result<(usize, Vec<String>)> {
    let mut with_segments = HashSet::new();
    let mut documents = Vec::new();
    for chunk in trace_ids.chunks(MAX_TRACE_IDS) {
        let mut next_token = None;
        loop {
            let output = client
                .batch_get_traces()
                .set_trace_ids(Some(chunk.iter().map(|id| (*id).to_owned()).collect()))
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|error| Error::Aws {
                    what: "BatchGetTraces".to_owned(),
                    message: DisplayErrorContext(&error).to_string(),
                })?;
            for trace in output.traces() {
                if let Some(id) = trace.id().filter(|_| !trace.segments().is_empty()) {
                    with_segments.insert(id.to_owned());
                }
                documents.extend(
                    trace
                        .segments()
                        .iter()
                        .filter_map(|segment| segment.document().map(str::to_owned)),
                );
            }
            next_token = output.next_token().map(str::to_owned);
            if next_token.is_none() {
                break;
            }
        }
    }
    let found = trace_ids
        .iter()
        .filter(|id| with_segments.contains(**id))
        .count();
    Ok((found, documents))
}

/// A new X-Ray trace id: `1-<8 hex digits of epoch seconds>-<24 random hex digits>`.
pub fn new_trace_id() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    format!("1-{seconds:08x}-{}", random_hex(24))
}

/// A new segment (span) id: 16 random hex digits.
pub fn new_segment_id() -> String {
    random_hex(16)
}

/// A new, sampled trace header as Lambda sends it: `Root=<new trace id>;Parent=<new segment id>;Sampled=1`.
pub fn new_trace_header() -> String {
    format!(
        "Root={};Parent={};Sampled=1",
        new_trace_id(),
        new_segment_id()
    )
}

/// The OpenTelemetry form of an X-Ray trace id: `1-5759e988-bd862e3fe1be46a994272793` →
/// `5759e988bd862e3fe1be46a994272793`.
pub fn otel_trace_id(xray_trace_id: &str) -> String {
    xray_trace_id.trim_start_matches("1-").replace('-', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_need_the_daemon_header_and_a_json_object() {
        let cases = [
            (
                "{\"format\": \"json\", \"version\": 1}\n{\"id\":\"a\"}",
                true,
                "what the X-Ray SDKs send",
            ),
            (
                "{\"format\":\"json\",\"version\":1}\n{\"id\":\"a\"}",
                true,
                "compact header",
            ),
            ("{\"id\":\"a\"}", false, "no header"),
            (
                "{\"format\": \"json\", \"version\": 2}\n{\"id\":\"a\"}",
                false,
                "unknown version",
            ),
            (
                "{\"format\": \"xml\", \"version\": 1}\n{\"id\":\"a\"}",
                false,
                "unknown format",
            ),
            ("format=json\n{\"id\":\"a\"}", false, "header not JSON"),
            (
                "{\"format\": \"json\", \"version\": 1}\n{\"id\":",
                false,
                "truncated document",
            ),
            (
                "{\"format\": \"json\", \"version\": 1}\n[1]",
                false,
                "document not an object",
            ),
        ];
        for (datagram, accepted, reason) in cases {
            assert_eq!(
                parse_datagram(datagram.as_bytes()).is_ok(),
                accepted,
                "{reason}: {datagram}"
            );
        }
    }

    fn otlp_datagram(prefix: &str, protobuf: &[u8]) -> Vec<u8> {
        let mut datagram = b"{\"format\":\"json\",\"version\":1}\n".to_vec();
        datagram.extend_from_slice(prefix.as_bytes());
        datagram.extend_from_slice(aws_smithy_types::base64::encode(protobuf).as_bytes());
        datagram
    }

    fn one_span_request(trace_id: Vec<u8>) -> Vec<u8> {
        use opentelemetry_proto::tonic::resource::v1::Resource;
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource::default()),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id,
                        span_id: vec![7; 8],
                        name: "work".into(),
                        ..Span::default()
                    }],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn otlp_datagrams_are_checked_as_the_agent_would() {
        let good = one_span_request(vec![1; 16]);
        // (datagram, accepted as sampled / unsampled / refused, reason)
        let cases: Vec<(Vec<u8>, Option<bool>, &str)> = vec![
            (otlp_datagram("T1S", &good), Some(true), "sampled spans"),
            (otlp_datagram("T1U", &good), Some(false), "unsampled spans"),
            (otlp_datagram("T1X", &good), None, "unknown prefix"),
            (otlp_datagram("M1", &good), None, "metrics are not spans"),
            (
                {
                    let mut d = otlp_datagram("T1S", &good);
                    d.push(b'!');
                    d
                },
                None,
                "not base64",
            ),
            (
                otlp_datagram("T1S", &good[..good.len() - 3]),
                None,
                "truncated protobuf",
            ),
            (
                otlp_datagram("T1S", &one_span_request(vec![1; 8])),
                None,
                "a trace id of 8 bytes",
            ),
            (
                otlp_datagram("T1S", &ExportTraceServiceRequest::default().encode_to_vec()),
                None,
                "no spans",
            ),
            (
                otlp_datagram("T1S", &vec![0; 49_200]),
                None,
                "larger than a datagram",
            ),
        ];
        for (datagram, expected, reason) in cases {
            let got = match parse_datagram(&datagram) {
                Ok(Datagram::Spans { sampled, .. }) => Some(sampled),
                Ok(Datagram::Document { .. }) => panic!("{reason}: read as a segment document"),
                Err(_) => None,
            };
            assert_eq!(got, expected, "{reason}");
        }
    }

    #[test]
    fn the_document_is_forwarded_as_sent() {
        let document = "{ \"id\" : \"a\",\"start_time\":1.10}";
        let datagram = format!("{{\"format\": \"json\", \"version\": 1}}\n{document}");
        let Ok(Datagram::Document { text, .. }) = parse_datagram(datagram.as_bytes()) else {
            panic!("a well-formed datagram");
        };
        assert_eq!(text, document);
    }

    #[test]
    fn trace_ids_convert_between_xray_and_otel_forms() {
        let trace_id = new_trace_id();
        assert_eq!(trace_id.len(), 35, "{trace_id}");
        assert_eq!(otel_trace_id(&trace_id).len(), 32, "{trace_id}");
        assert_eq!(
            otel_trace_id("1-5759e988-bd862e3fe1be46a994272793"),
            "5759e988bd862e3fe1be46a994272793"
        );
    }
}
