//! OTLP over UDP to Lambda's embedded X-Ray agent: the collector-less default.
//!
//! The datagram is the one AWS's distributions send (aws-otel-python-instrumentation's
//! `otlp_udp_exporter.py`, `OTLPUdpSpanExporter`): the line `{"format":"json","version":1}`, a
//! newline, `T1S` for sampled spans or `T1U` for unsampled ones (Application Signals), then the
//! standard base64 of a protobuf `ExportTraceServiceRequest`. One datagram carries at most 65,507
//! bytes (UDP over IPv4), so spans are packed by their encoded size into as few datagrams as fit; a
//! span too large for a datagram on its own is dropped and counted, never cut into invalid protobuf.
//!
//! The socket is bound and the address resolved at the first export, after the first response, and
//! kept: init sends nothing. The socket is connected and non-blocking: a full send buffer is a
//! counted loss, never a wait.
//!
//! What UDP can tell, and so what the flush reports: a datagram the kernel took is `exported`; one
//! it refused at once (full send buffer, no route) is `dropped`. Nothing else comes back. With no
//! agent listening, the first datagram leaves and the ICMP "port unreachable" it draws makes the
//! kernel refuse the *next* send (`ECONNREFUSED`), once per ICMP: about half the datagrams are
//! counted, the others vanish. The first refusal is said once per process, with what to do in
//! Lambda and under an emulator (where no agent runs); later ones are counted at debug level. An
//! agent that is listening but not reading (its receive buffer full) loses datagrams on its side,
//! and the sender is never told: those spans count as exported.

use super::Loss;
use super::pack::{self, EncodedResource, Limits, Packable};
use opentelemetry_sdk::Resource;
use std::{
    io,
    net::{SocketAddr, UdpSocket},
};
use tokio::sync::OnceCell;

/// The agent's protocol header, newline included.
pub(crate) const HEADER: &[u8] = b"{\"format\":\"json\",\"version\":1}\n";
/// Prefix of a datagram of sampled spans.
pub(crate) const SAMPLED: &[u8] = b"T1S";
/// Prefix of a datagram of unsampled spans (Application Signals counts them; X-Ray keeps no trace).
pub(crate) const UNSAMPLED: &[u8] = b"T1U";
/// The most one UDP datagram over IPv4 carries: 65,535 less the IP (20) and UDP (8) headers.
pub(crate) const MAX_DATAGRAM: usize = 65_507;
/// The largest protobuf a datagram holds: what the header and prefix leave, at base64's four
/// characters per three bytes.
pub(crate) const MAX_PROTOBUF: usize = (MAX_DATAGRAM - HEADER.len() - SAMPLED.len()) / 4 * 3;

/// Spans packed into datagrams.
#[derive(Debug, Default)]
pub(crate) struct Packed {
    /// Whole datagrams, ready to send, each with the number of spans it carries.
    pub(crate) datagrams: Vec<(Vec<u8>, usize)>,
    /// Spans too large for a datagram on their own, dropped.
    pub(crate) oversized: usize,
}

/// What a datagram may hold: one protobuf of at most [`MAX_PROTOBUF`] bytes, any number of spans.
const LIMITS: Limits = Limits {
    max_bytes: MAX_PROTOBUF,
    max_spans: usize::MAX,
    max_span_bytes: usize::MAX,
};

/// Packs `spans` into as few datagrams of at most [`MAX_DATAGRAM`] bytes as their encoded sizes
/// allow, each prefixed with `prefix`. Spans keep their order within their scope; a span never
/// straddles two datagrams.
pub(crate) fn pack<S: Packable>(
    spans: impl IntoIterator<Item = S>,
    resource: &EncodedResource,
    prefix: &[u8],
) -> Packed {
    let requests = pack::pack(spans, resource, LIMITS);
    Packed {
        datagrams: requests
            .requests
            .iter()
            .map(|request| (datagram(prefix, &request.protobuf()), request.spans()))
            .collect(),
        oversized: requests.oversized,
    }
}

/// Header, prefix, base64 of the protobuf.
fn datagram(prefix: &[u8], protobuf: &[u8]) -> Vec<u8> {
    let encoded = aws_smithy_types::base64::encode(protobuf);
    let mut datagram = Vec::with_capacity(HEADER.len() + prefix.len() + encoded.len());
    datagram.extend_from_slice(HEADER);
    datagram.extend_from_slice(prefix);
    datagram.extend_from_slice(encoded.as_bytes());
    datagram
}

/// The agent exporter: packs, then sends each datagram without waiting.
#[derive(Debug)]
pub(crate) struct Agent {
    address: String,
    resource: EncodedResource,
    socket: OnceCell<UdpSocket>,
    /// Nothing listening at the address has been said (once per process).
    refusal_said: std::sync::atomic::AtomicBool,
}

impl Agent {
    pub(crate) fn new(address: String) -> Self {
        Agent {
            address,
            resource: EncodedResource::default(),
            socket: OnceCell::new(),
            refusal_said: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(crate) fn set_resource(&mut self, resource: &Resource) {
        self.resource = EncodedResource::new(resource);
    }

    /// The socket, connected to the agent: resolved and bound once, at the first export. A failure
    /// is not kept, so a later flush tries again.
    async fn socket(&self) -> Result<&UdpSocket, String> {
        self.socket
            .get_or_try_init(|| async {
                let address = match self.address.parse::<SocketAddr>() {
                    Ok(address) => address,
                    Err(_) => tokio::net::lookup_host(self.address.as_str())
                        .await
                        .ok()
                        .and_then(|mut addresses| addresses.next())
                        .ok_or_else(|| {
                            format!(
                                "the X-Ray agent's address {} does not resolve",
                                self.address
                            )
                        })?,
                };
                connect(address).map_err(|error| {
                    format!("cannot open a UDP socket to the X-Ray agent at {address}: {error}")
                })
            })
            .await
    }

    /// Sends `batch`: sampled spans as `T1S`, unsampled ones as `T1U`. Every datagram is tried; the
    /// spans of those that failed, and spans too large to send, are the loss.
    pub(crate) async fn export<S: Packable>(
        &self,
        batch: impl Iterator<Item = S> + Clone,
    ) -> Result<(), Loss> {
        let total = batch.clone().count();
        let socket = match self.socket().await {
            Ok(socket) => socket,
            Err(error) => {
                return Err(Loss {
                    dropped: total,
                    error,
                    said: false,
                });
            }
        };
        let mut dropped = 0;
        let mut oversized = 0;
        let mut failure: Option<io::Error> = None;
        // Sampled spans as T1S, then unsampled ones (Application Signals) as T1U; no spans of a
        // kind pack into no datagram.
        for (sampled, prefix) in [(true, SAMPLED), (false, UNSAMPLED)] {
            let spans = batch.clone().filter(|span| span.is_sampled() == sampled);
            let packed = pack(spans, &self.resource, prefix);
            oversized += packed.oversized;
            for (datagram, spans) in packed.datagrams {
                if let Err(error) = socket.send(&datagram) {
                    dropped += spans;
                    failure.get_or_insert(error);
                }
            }
        }
        if dropped == 0 && oversized == 0 {
            return Ok(());
        }
        let mut said = false;
        let mut error = match failure {
            Some(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
                said = self
                    .refusal_said
                    .swap(true, std::sync::atomic::Ordering::Relaxed);
                if said {
                    format!(
                        "nothing is listening at the X-Ray agent's address {}",
                        self.address
                    )
                } else {
                    refused_message(&self.address)
                }
            }
            Some(error) => format!(
                "sending to the X-Ray agent at {} failed: {error}",
                self.address
            ),
            None => String::new(),
        };
        if oversized > 0 {
            if !error.is_empty() {
                error.push_str("; ");
            }
            error.push_str(&format!(
                "{oversized} span(s) larger than a {MAX_DATAGRAM}-byte datagram on their own"
            ));
        }
        Err(Loss {
            dropped: dropped + oversized,
            error,
            // Oversized spans are news every time; a refused port only the first time.
            said: said && oversized == 0,
        })
    }
}

/// What the first refused datagram says, once per process. Under an emulator (`cargo lambda
/// watch`) it is the first thing a developer reads about tracing, so it says what to do there too.
fn refused_message(address: &str) -> String {
    let console = if cfg!(feature = "console") {
        ""
    } else {
        " (with tracekit's `console` feature)"
    };
    format!(
        "nothing is listening at the X-Ray agent's address {address}: the kernel refused a \
         datagram, so spans sent there are lost (UDP reports only some of them; later refusals are \
         counted without another warning). In Lambda, the agent listens when the function's \
         tracing mode is Active, or AWS_XRAY_DAEMON_ADDRESS names one that does. Running locally \
         (cargo lambda watch, an emulator) there is no agent: run tracekit-view, tracekit's local \
         trace viewer, which listens at 127.0.0.1:2000 and draws each trace; or run an OTLP \
         receiver (an OpenTelemetry Collector, Jaeger) and set \
         OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318, or set OTEL_TRACES_EXPORTER=console to \
         print the spans{console}, or \
         OTEL_TRACES_EXPORTER=none to send none"
    )
}

fn connect(address: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = if address.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(address)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_spans::{sdk_resource, span, span_ids};
    use opentelemetry::{
        KeyValue,
        trace::{SpanContext, SpanId, TraceFlags, TraceState},
    };
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_sdk::trace::SpanData;
    use prost::Message as _;

    fn resource() -> EncodedResource {
        EncodedResource::new(&sdk_resource())
    }

    /// The protobuf a datagram carries, checked for the agent's framing.
    fn protobuf(datagram: &[u8], prefix: &[u8]) -> Vec<u8> {
        assert!(datagram.len() <= MAX_DATAGRAM, "{} bytes", datagram.len());
        let rest = datagram.strip_prefix(HEADER).expect("the agent's header");
        let encoded = rest.strip_prefix(prefix).expect("the prefix");
        let text = std::str::from_utf8(encoded).expect("base64 is ASCII");
        aws_smithy_types::base64::decode(text).expect("standard base64")
    }

    /// The request a datagram carries.
    fn decode(datagram: &[u8], prefix: &[u8]) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest::decode(protobuf(datagram, prefix).as_slice())
            .expect("a valid request")
    }

    #[test]
    fn the_header_and_size_limit_are_the_agents() {
        assert_eq!(HEADER, b"{\"format\":\"json\",\"version\":1}\n");
        // 30 bytes of header, 3 of prefix: 65,472 base64 characters, 49,104 bytes of protobuf.
        assert_eq!(MAX_PROTOBUF, 49_104);
        let full = datagram(SAMPLED, &vec![0xa5; MAX_PROTOBUF]);
        assert!(full.len() <= MAX_DATAGRAM, "{}", full.len());
        let over = datagram(SAMPLED, &vec![0xa5; MAX_PROTOBUF + 1]);
        assert!(over.len() > MAX_DATAGRAM, "{}", over.len());
    }

    #[test]
    fn ten_thousand_spans_pack_into_full_valid_datagrams() {
        let spans: Vec<SpanData> = (1..=10_000u64)
            .map(|id| span(id, vec![KeyValue::new("step", id as i64)]))
            .collect();
        let packed = pack(&spans, &resource(), SAMPLED);
        assert_eq!(packed.oversized, 0);
        let mut seen = Vec::new();
        for (index, (datagram, count)) in packed.datagrams.iter().enumerate() {
            let request = decode(datagram, SAMPLED);
            let ids = span_ids(&request);
            assert_eq!(ids.len(), *count);
            // Every datagram but the last is full: the next span would not have fitted.
            if index + 1 < packed.datagrams.len() {
                assert!(datagram.len() > MAX_DATAGRAM - 300, "{}", datagram.len());
            }
            seen.extend(ids);
        }
        assert_eq!(
            seen,
            (1..=10_000u64).collect::<Vec<_>>(),
            "every span once, in order"
        );
        assert!(
            packed.datagrams.len() < 10_000 / 100,
            "{}",
            packed.datagrams.len()
        );
    }

    #[test]
    fn a_span_with_hundreds_of_attributes_fits_or_is_dropped_whole() {
        let wide = |n: usize| -> Vec<KeyValue> {
            (0..n)
                .map(|i| KeyValue::new(format!("attribute.{i}"), "x".repeat(100)))
                .collect()
        };
        // ~300 attributes of ~115 bytes: ~35 KB, one datagram each.
        let spans = vec![span(1, wide(300)), span(2, wide(300)), span(3, vec![])];
        let packed = pack(&spans, &resource(), SAMPLED);
        assert_eq!(packed.oversized, 0);
        assert_eq!(
            packed.datagrams.len(),
            2,
            "two wide spans never share a datagram"
        );
        let ids: Vec<u64> = packed
            .datagrams
            .iter()
            .flat_map(|(d, _)| span_ids(&decode(d, SAMPLED)))
            .collect();
        assert_eq!(ids, [1, 2, 3]);

        // ~600 attributes: ~70 KB, larger than any datagram. Dropped and counted; the rest go.
        let spans = vec![span(1, vec![]), span(2, wide(600)), span(3, vec![])];
        let packed = pack(&spans, &resource(), UNSAMPLED);
        assert_eq!(packed.oversized, 1);
        let ids: Vec<u64> = packed
            .datagrams
            .iter()
            .flat_map(|(d, _)| span_ids(&decode(d, UNSAMPLED)))
            .collect();
        assert_eq!(ids, [1, 3]);
    }

    #[test]
    fn spans_of_one_scope_share_one_scope_spans() {
        let mut spans: Vec<SpanData> = (1..=4u64).map(|id| span(id, vec![])).collect();
        spans[2].instrumentation_scope =
            opentelemetry::InstrumentationScope::builder("user").build();
        let packed = pack(&spans, &resource(), SAMPLED);
        let request = decode(&packed.datagrams[0].0, SAMPLED);
        assert_eq!(request.resource_spans.len(), 1);
        let scopes: Vec<(&str, usize)> = request.resource_spans[0]
            .scope_spans
            .iter()
            .map(|s| {
                (
                    s.scope.as_ref().map_or("", |s| s.name.as_str()),
                    s.spans.len(),
                )
            })
            .collect();
        assert_eq!(scopes, [("tracekit", 3), ("user", 1)]);
        let service = request.resource_spans[0]
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"));
        assert!(service.is_some(), "the resource travels in every datagram");
    }

    #[tokio::test]
    async fn sampled_and_unsampled_spans_go_in_datagrams_of_their_own() {
        let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut agent = Agent::new(receiver.local_addr().expect("address").to_string());
        agent.set_resource(
            &Resource::builder_empty()
                .with_service_name("orders")
                .build(),
        );
        let mut unsampled = span(2, vec![]);
        unsampled.span_context = SpanContext::new(
            unsampled.span_context.trace_id(),
            SpanId::from(2),
            TraceFlags::default(),
            false,
            TraceState::default(),
        );
        agent
            .export([span(1, vec![]), unsampled, span(3, vec![])].iter())
            .await
            .expect("sent");
        let mut buffer = vec![0; 70_000];
        let mut prefixes = Vec::new();
        for _ in 0..2 {
            let length = receiver.recv(&mut buffer).expect("a datagram");
            let datagram = &buffer[..length];
            let prefix = &datagram[HEADER.len()..HEADER.len() + 3];
            let ids = span_ids(&decode(datagram, prefix));
            prefixes.push((String::from_utf8_lossy(prefix).into_owned(), ids));
        }
        assert_eq!(
            prefixes,
            [("T1S".to_owned(), vec![1, 3]), ("T1U".to_owned(), vec![2])]
        );
    }

    #[test]
    fn the_first_refusal_says_what_to_do_in_lambda_and_under_an_emulator() {
        let message = refused_message("127.0.0.1:2000");
        // (what the message must say, reason)
        let cases = [
            (
                "nothing is listening at the X-Ray agent's address 127.0.0.1:2000",
                "what happened",
            ),
            ("spans sent there are lost", "what it costs"),
            (
                "later refusals are counted without another warning",
                "that it is said once",
            ),
            ("tracing mode is Active", "the fix in Lambda"),
            ("cargo lambda watch", "the emulator is recognised"),
            ("run tracekit-view", "the viewer that listens there"),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318",
                "a local receiver",
            ),
            ("OTEL_TRACES_EXPORTER=console", "printing the spans"),
            ("OTEL_TRACES_EXPORTER=none", "sending none"),
        ];
        for (expected, reason) in cases {
            assert!(message.contains(expected), "{reason}: {message}");
        }
    }

    #[tokio::test]
    async fn an_unresolvable_agent_loses_the_batch_and_says_why() {
        let agent = Agent::new("no-such-host.invalid:2000".into());
        let loss = agent
            .export([span(1, vec![]), span(2, vec![])].iter())
            .await
            .expect_err("nothing can be sent");
        assert_eq!(loss.dropped, 2);
        assert!(loss.error.contains("does not resolve"), "{}", loss.error);
    }
}
