//! The trace page: one self-contained HTML file (inline CSS and JavaScript, nothing fetched) with the
//! waterfall and the service map of the spans a run exported, and [`check_in_browser`], which opens it
//! in headless Chromium and checks, on a screenshot, that every span rendered.
//!
//! [`PageServer`] serves the same page over HTTP while spans arrive (`tracekit-view`): the newest
//! trace first, and the page reloads itself when a newer one is shown.
//!
//! The page shows what the X-Ray console would: one row per span under its parent, a bar placed on
//! the trace's timeline, the span kind and service, its key attributes and links, errors in red; and
//! the service map's edges (client → function → the AWS services it calls, SQS → the consumer).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::http::{Body, Server, respond};
use crate::otlp::{ReceivedSpan, SpanKind, SpanStatusCode};
use crate::util::lock;
use crate::{Error, Result};

/// The attributes a row shows inline; every attribute is in the row's details.
pub const KEY_ATTRIBUTES: &[&str] = &[
    "faas.trigger",
    "faas.coldstart",
    "http.response.status_code",
    "url.full",
    "aws.dynamodb.table_names",
    "aws.s3.key",
    "messaging.destination.name",
    "messaging.message.id",
    "error.type",
];

/// One span as the page draws it.
#[derive(Debug, Clone, PartialEq)]
pub struct PageSpan {
    /// 16 hex digits.
    pub span_id: String,
    /// The parent's span id; a span whose parent is not on the page is a root.
    pub parent_span_id: Option<String>,
    /// 32 hex digits.
    pub trace_id: String,
    /// The span name.
    pub name: String,
    /// `SERVER`, `CLIENT`, `PRODUCER`, `CONSUMER` or `INTERNAL`.
    pub kind: String,
    /// The resource's `service.name`.
    pub service: String,
    /// Start and end, in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// End, in nanoseconds since the Unix epoch.
    pub end_unix_nanos: u64,
    /// The status message when the status is ERROR.
    pub error: Option<String>,
    /// Every span attribute, rendered as text.
    pub attributes: BTreeMap<String, String>,
    /// Linked span ids.
    pub links: Vec<String>,
}

impl From<&ReceivedSpan> for PageSpan {
    fn from(span: &ReceivedSpan) -> PageSpan {
        let kind = match span.kind {
            SpanKind::Server => "SERVER",
            SpanKind::Client => "CLIENT",
            SpanKind::Producer => "PRODUCER",
            SpanKind::Consumer => "CONSUMER",
            SpanKind::Internal | SpanKind::Unspecified => "INTERNAL",
        };
        PageSpan {
            span_id: span.span_id.clone(),
            parent_span_id: span.parent_span_id.clone(),
            trace_id: span.trace_id.clone(),
            name: span.name.clone(),
            kind: kind.to_owned(),
            service: service(span).to_owned(),
            start_unix_nanos: span.start_unix_nanos,
            end_unix_nanos: span.end_unix_nanos,
            error: (span.status_code == SpanStatusCode::Error).then(|| span.status_message.clone()),
            attributes: span
                .attributes
                .iter()
                .map(|(key, value)| (key.clone(), value.to_string()))
                .collect(),
            links: span.links.iter().map(|link| link.span_id.clone()).collect(),
        }
    }
}

/// The span's `service.name`, or `?`.
pub fn service(span: &ReceivedSpan) -> &str {
    span.resource_str("service.name").unwrap_or("?")
}

/// The service map's edges, as X-Ray draws its nodes: client → each HTTP-triggered function; each
/// function → the AWS services it calls (`rpc.service`); SQS or SNS → each function that processes
/// their messages.
pub fn service_map(spans: &[ReceivedSpan]) -> BTreeSet<(String, String)> {
    let mut edges = BTreeSet::new();
    for span in spans {
        let from_to = match span.kind {
            SpanKind::Server if span.attr_str("faas.trigger") == Some("http") => {
                Some(("client".to_owned(), service(span).to_owned()))
            }
            // An AWS service by its name; any other HTTP service by its host, as X-Ray names it.
            SpanKind::Client | SpanKind::Producer => span
                .attr_str("rpc.service")
                .or_else(|| span.attr_str("server.address"))
                .map(|remote| (service(span).to_owned(), remote.to_owned())),
            // The queue or topic the message came through, named as the producer's client span names it.
            SpanKind::Consumer => {
                let from = match span.attr_str("messaging.system") {
                    Some("aws.sns") => "SNS",
                    _ => "SQS",
                };
                Some((from.to_owned(), service(span).to_owned()))
            }
            _ => None,
        };
        edges.extend(from_to);
    }
    edges
}

/// The page for these spans and service-map edges: a standalone HTML document. Convert received
/// spans with `PageSpan::from`, and take the edges from [`service_map`].
pub fn render(title: &str, spans: &[PageSpan], edges: &BTreeSet<(String, String)>) -> String {
    render_page(title, spans, edges, None)
}

/// The page, live (served by a [`PageServer`] as its `generation`th page) or a file (`None`).
fn render_page(
    title: &str,
    spans: &[PageSpan],
    edges: &BTreeSet<(String, String)>,
    generation: Option<u64>,
) -> String {
    let data = json!({
        // A live page polls for its successor and shows the newest trace first.
        "live": generation.map(|generation| json!({"poll": GENERATION_PATH, "generation": generation})),
        "title": title,
        "keyAttributes": KEY_ATTRIBUTES,
        "spans": spans.iter().map(|span| json!({
            "id": span.span_id,
            "parent": span.parent_span_id,
            "trace": span.trace_id,
            "name": span.name,
            "kind": span.kind,
            "service": span.service,
            // Microseconds since the Unix epoch fit an f64 exactly; nanoseconds would not.
            "startUs": span.start_unix_nanos / 1_000,
            "endUs": span.end_unix_nanos.max(span.start_unix_nanos) / 1_000,
            "error": span.error,
            "attributes": span.attributes,
            "links": span.links,
        })).collect::<Vec<Value>>(),
        "edges": edges.iter().map(|(from, to)| json!([from, to])).collect::<Vec<Value>>(),
    });
    TEMPLATE
        .replace("{{TITLE}}", &escape_html(title))
        .replace("{{DATA}}", &script_safe_json(&data))
}

/// JSON that cannot end the `<script>` element it sits in: `<`, `>` and `&` become `\u` escapes,
/// which JSON reads back as the same characters.
fn script_safe_json(data: &Value) -> String {
    data.to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Where a [`PageServer`]'s page reads the generation of the page being shown.
const GENERATION_PATH: &str = "/generation";

/// The trace page served over HTTP while spans arrive: `GET /` answers the page last shown
/// ([`PageServer::show`]), `GET /generation` answers `{"generation": N}`, N counting the pages
/// shown. The page asks for the generation every second and reloads when it has changed, keeping the
/// rows a reader opened. Stops when dropped.
#[derive(Debug)]
pub struct PageServer {
    server: Server,
    page: Arc<Mutex<LivePage>>,
}

#[derive(Debug)]
struct LivePage {
    generation: u64,
    html: Bytes,
}

impl PageServer {
    /// Serves an empty page titled `title` on `address` (port 0: a free one). Must be called inside
    /// a Tokio runtime.
    pub fn start(address: SocketAddr, title: &str) -> Result<PageServer> {
        let page = Arc::new(Mutex::new(LivePage {
            generation: 0,
            html: Bytes::from(render_page(title, &[], &BTreeSet::new(), Some(0))),
        }));
        let server = Server::start_at("trace page server", address, {
            let page = Arc::clone(&page);
            move |request| {
                let page = Arc::clone(&page);
                async move { serve_page(&page, &request) }
            }
        })?;
        Ok(PageServer { server, page })
    }

    /// `http://ADDRESS/`, the page.
    pub fn url(&self) -> String {
        format!("http://{}/", self.server.addr())
    }

    /// Replaces the page with one drawing `spans` and `edges`; open pages reload within a second.
    pub fn show(&self, title: &str, spans: &[PageSpan], edges: &BTreeSet<(String, String)>) {
        let mut page = lock(&self.page);
        let generation = page.generation + 1;
        page.html = Bytes::from(render_page(title, spans, edges, Some(generation)));
        page.generation = generation;
    }
}

/// The spans and service-map edges of the page served at `url` (a [`PageServer`]'s), read from its
/// data as the page's script reads them: what it will draw. Attributes and links are left out.
pub async fn served_page(url: &str) -> Result<(Vec<PageSpan>, BTreeSet<(String, String)>)> {
    let request = Request::get(url)
        .body(Bytes::new())
        .map_err(|error| Error::Invalid(format!("GET {url}: {error}")))?;
    let response = crate::http::request(request).await?;
    let html = String::from_utf8_lossy(response.body());
    if response.status() != StatusCode::OK {
        return Err(Error::Invalid(format!(
            "GET {url} answered {}: {html}",
            response.status()
        )));
    }
    let data = html
        .split(r#"<script type="application/json" id="trace-data">"#)
        .nth(1)
        .and_then(|rest| rest.split("</script>").next())
        .ok_or_else(|| Error::Invalid(format!("GET {url}: no trace-data script in the page")))?;
    let data: Value = serde_json::from_str(data).map_err(Error::json(format!("{url}'s data")))?;
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let spans = data["spans"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|span| PageSpan {
            span_id: text(&span["id"]),
            parent_span_id: span["parent"].as_str().map(str::to_owned),
            trace_id: text(&span["trace"]),
            name: text(&span["name"]),
            kind: text(&span["kind"]),
            service: text(&span["service"]),
            start_unix_nanos: span["startUs"].as_u64().unwrap_or_default() * 1_000,
            end_unix_nanos: span["endUs"].as_u64().unwrap_or_default() * 1_000,
            error: span["error"].as_str().map(str::to_owned),
            attributes: BTreeMap::new(),
            links: Vec::new(),
        })
        .collect();
    let edges = data["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|edge| (text(&edge[0]), text(&edge[1])))
        .collect();
    Ok((spans, edges))
}

fn serve_page(page: &Mutex<LivePage>, request: &Request<Incoming>) -> Response<Body> {
    let page = lock(page);
    let (content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/") => ("text/html; charset=utf-8", page.html.clone()),
        (&Method::GET, GENERATION_PATH) => (
            "application/json",
            Bytes::from(json!({"generation": page.generation}).to_string()),
        ),
        _ => {
            let text = format!("only GET / and GET {GENERATION_PATH} are served");
            return respond(StatusCode::NOT_FOUND, text);
        }
    };
    let mut response = respond(StatusCode::OK, body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Each load must show the page as it is now.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// What the browser saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Span rows drawn, each with its bar's colour found at the bar's place in the screenshot.
    pub spans: usize,
    /// Service map nodes drawn.
    pub nodes: usize,
    /// Service map edges drawn.
    pub edges: usize,
    /// The screenshot (PNG) the pixel checks read.
    pub screenshot: PathBuf,
}

/// Opens `page` in headless Chromium (Debian's, driven by playwright-core: `scripts/browser install`)
/// and checks that each of `span_ids` has a visible row with its name and a bar whose colour is in the
/// screenshot where the bar is, and that the service map drew `edges`. Saves the screenshot at
/// `screenshot`. Fails, saying what is missing, when the browser or playwright-core is not installed.
pub async fn check_in_browser(
    page: &Path,
    screenshot: &Path,
    spans: &[PageSpan],
    edges: &BTreeSet<(String, String)>,
) -> Result<Rendered> {
    check(page.as_os_str(), screenshot, spans, edges).await
}

/// [`check_in_browser`] for a page a server serves at `url` (a [`PageServer`]'s): it may fetch from
/// its own origin (the live page polls), nothing else.
pub async fn check_url_in_browser(
    url: &str,
    screenshot: &Path,
    spans: &[PageSpan],
    edges: &BTreeSet<(String, String)>,
) -> Result<Rendered> {
    check(OsStr::new(url), screenshot, spans, edges).await
}

async fn check(
    page: &OsStr,
    screenshot: &Path,
    spans: &[PageSpan],
    edges: &BTreeSet<(String, String)>,
) -> Result<Rendered> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/check-page.mjs");
    let expected = json!({
        "spans": spans.iter().map(|span| json!({"id": span.span_id, "name": span.name})).collect::<Vec<Value>>(),
        "edges": edges.iter().map(|(from, to)| json!([from, to])).collect::<Vec<Value>>(),
    });
    let output = tokio::process::Command::new("node")
        .arg(&script)
        .arg(page)
        .arg(screenshot)
        .arg(expected.to_string())
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(Error::io(format!(
            "running node {} (Node.js 20+ is needed; scripts/browser install)",
            script.display()
        )))?;
    if !output.status.success() {
        return Err(Error::Browser(format!(
            "the page check failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let seen: Value = serde_json::from_slice(&output.stdout).map_err(Error::json(
        "the page check's report (tests/browser/check-page.mjs stdout)",
    ))?;
    let count = |key: &str| {
        seen[key]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| Error::Browser(format!("the page check's report has no {key}: {seen}")))
    };
    Ok(Rendered {
        spans: count("spans")?,
        nodes: count("nodes")?,
        edges: count("edges")?,
        screenshot: screenshot.to_owned(),
    })
}

const TEMPLATE: &str = include_str!("page.html");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_names_cannot_end_the_data_script() {
        let spans = [PageSpan {
            span_id: "00000000000000a1".to_owned(),
            parent_span_id: None,
            trace_id: "6920f6a01a06d4c81cff9d6687c0176c".to_owned(),
            name: "</script><b>&amp;".to_owned(),
            kind: "SERVER".to_owned(),
            service: "svc".to_owned(),
            start_unix_nanos: 1,
            end_unix_nanos: 2,
            error: None,
            attributes: BTreeMap::new(),
            links: Vec::new(),
        }];
        let html = render("<title>", &spans, &BTreeSet::new());
        let data = html
            .split(r#"<script type="application/json" id="trace-data">"#)
            .nth(1)
            .and_then(|rest| rest.split("</script>").next())
            .expect("the data script");
        let parsed: Value = serde_json::from_str(data).expect("the data is JSON");
        assert_eq!(parsed["spans"][0]["name"], "</script><b>&amp;");
        assert!(html.contains("<title>&lt;title&gt;</title>"));
    }
}
