//! An X-Ray daemon stand-in: a UDP socket that takes segment documents in the daemon's framing and
//! forwards them to the X-Ray API with `PutTraceSegments` (moto here), as the daemon Lambda runs does.
//! [`batch_get_traces`] reads them back.
//!
//! Framing: each datagram is the header `{"format": "json", "version": 1}`, a newline, and one segment
//! or subsegment document.
//! <https://docs.aws.amazon.com/xray/latest/devguide/xray-api-sendingdata.html#xray-api-daemon>

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_xray::error::DisplayErrorContext;
use serde_json::Value;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::stack::wait_until;
use crate::util::{lock, random_hex};
use crate::{Error, Result};

/// The most documents one `PutTraceSegments` call carries, as the daemon batches them.
const MAX_BATCH: usize = 50;
/// `BatchGetTraces` takes at most 5 trace ids per call.
const MAX_TRACE_IDS: usize = 5;
/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// The X-Ray daemon stand-in. Stops when dropped.
#[derive(Debug)]
pub struct XrayDaemon {
    address: String,
    state: Arc<DaemonState>,
    tasks: Vec<JoinHandle<()>>,
}

impl XrayDaemon {
    /// Starts a daemon that forwards every well-formed document to the X-Ray API through `client`
    /// (see [`crate::stack::xray_client`]). Must be called inside a Tokio runtime.
    pub fn start(client: aws_sdk_xray::Client) -> Result<XrayDaemon> {
        XrayDaemon::bind(Some(client))
    }

    /// Starts a daemon that only records what it receives: for tests that need no X-Ray API.
    pub fn recording() -> Result<XrayDaemon> {
        XrayDaemon::bind(None)
    }

    fn bind(client: Option<aws_sdk_xray::Client>) -> Result<XrayDaemon> {
        let bind = || -> std::io::Result<_> {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
            socket.set_nonblocking(true)?;
            let address = socket.local_addr()?;
            Ok((UdpSocket::from_std(socket)?, address))
        };
        let (socket, address) =
            bind().map_err(Error::io("binding the X-Ray daemon's UDP socket"))?;
        let state = Arc::new(DaemonState {
            documents: watch::Sender::new(Vec::new()),
            forwarded: watch::Sender::new(0),
            rejected: Mutex::default(),
            forward_errors: Mutex::default(),
        });
        let (forward_tx, forward_rx) = mpsc::unbounded_channel();
        let mut tasks = vec![tokio::spawn(receive(
            socket,
            Arc::clone(&state),
            client.is_some().then_some(forward_tx),
        ))];
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

    /// Every well-formed document received so far, parsed, in arrival order.
    pub fn documents(&self) -> Vec<Value> {
        self.state.documents.borrow().clone()
    }

    /// Waits until at least `count` well-formed documents have arrived and returns all of them.
    pub async fn wait_for_documents(&self, count: usize, timeout: Duration) -> Result<Vec<Value>> {
        let mut documents = self.state.documents.subscribe();
        let waited = tokio::time::timeout(
            timeout,
            documents.wait_for(|documents| documents.len() >= count),
        );
        match waited.await {
            Ok(Ok(documents)) => Ok(documents.clone()),
            _ => Err(Error::Timeout(format!(
                "the X-Ray daemon got {} of {count} documents within {timeout:?}; rejected datagrams: {:?}",
                self.state.documents.borrow().len(),
                self.rejected()
            ))),
        }
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
    documents: watch::Sender<Vec<Value>>,
    /// Documents the X-Ray API accepted.
    forwarded: watch::Sender<usize>,
    rejected: Mutex<Vec<String>>,
    forward_errors: Mutex<Vec<String>>,
}

async fn receive(
    socket: UdpSocket,
    state: Arc<DaemonState>,
    forward: Option<mpsc::UnboundedSender<String>>,
) {
    let mut buffer = vec![0; MAX_DATAGRAM];
    while let Ok(length) = socket.recv(&mut buffer).await {
        let datagram = String::from_utf8_lossy(&buffer[..length]).into_owned();
        match parse_datagram(&datagram) {
            Ok((text, document)) => {
                state
                    .documents
                    .send_modify(|documents| documents.push(document));
                if let Some(forward) = &forward {
                    let _ = forward.send(text.to_owned());
                }
            }
            Err(reason) => {
                let start: String = datagram.chars().take(200).collect();
                lock(&state.rejected).push(format!("{reason}: {start:?}"));
            }
        }
    }
}

/// Splits a datagram into its document's text (forwarded unchanged) and the parsed document.
fn parse_datagram(datagram: &str) -> Result<(&str, Value), String> {
    let (header, text) = datagram
        .split_once('\n')
        .ok_or("no newline after the header")?;
    let header: Value =
        serde_json::from_str(header).map_err(|error| format!("header is not JSON ({error})"))?;
    if header.get("format") != Some(&Value::from("json"))
        || header.get("version") != Some(&Value::from(1))
    {
        return Err(format!(
            r#"header {header} is not {{"format": "json", "version": 1}}"#
        ));
    }
    let document: Value =
        serde_json::from_str(text).map_err(|error| format!("document is not JSON ({error})"))?;
    if !document.is_object() {
        return Err("document is not a JSON object".to_owned());
    }
    Ok((text, document))
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
                parse_datagram(datagram).is_ok(),
                accepted,
                "{reason}: {datagram}"
            );
        }
    }

    #[test]
    fn the_document_is_forwarded_as_sent() {
        let document = "{ \"id\" : \"a\",\"start_time\":1.10}";
        let datagram = format!("{{\"format\": \"json\", \"version\": 1}}\n{document}");
        let (text, _) = parse_datagram(&datagram).expect("a well-formed datagram");
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
