//! `tracekit-view`: a local trace viewer for any function traced with tracekit.
//!
//! It listens where a function's spans go on a developer's machine and shows each trace as it
//! arrives:
//!
//! - the X-Ray agent's address, UDP 127.0.0.1:2000: tracekit's default under `cargo lambda watch`
//!   (as in Lambda: OTLP `T1S` datagrams to `AWS_XRAY_DAEMON_ADDRESS`), so a function sends here
//!   with no variable set;
//! - OTLP/HTTP, 127.0.0.1:4318 (`POST /v1/traces`, protobuf or JSON): where an OTLP exporter sends
//!   outside Lambda, or with `OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318`.
//!
//! What arrives is read by the test harness's own stand-ins (`integration_tests::xray::XrayDaemon`,
//! `integration_tests::OtlpReceiver`), so it is checked exactly as tracekit's tests check it: a
//! datagram or request the agent or a collector would refuse is refused here too, said on stderr
//! with the reason, and the viewer carries on.
//!
//! Each trace gets one line on stdout (its X-Ray id, root span, span count, duration, errors), and
//! the trace page (the waterfall, every attribute on click, links, the service map: the page `make
//! demo` draws) is served at http://127.0.0.1:4319/, newest trace first; the page asks every second
//! whether a newer one is there and reloads itself. The last 100 traces are kept.
//!
//! ```text
//! tracekit-view [--agent ADDR] [--otlp ADDR] [--page ADDR]
//! ```

use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use integration_tests::otlp::{ReceivedSpan, SpanStatusCode};
use integration_tests::page::{PageServer, PageSpan, service, service_map};
use integration_tests::{OtlpReceiver, XrayDaemon};

const AGENT: &str = "127.0.0.1:2000";
const OTLP: &str = "127.0.0.1:4318";
const PAGE: &str = "127.0.0.1:4319";
/// Traces kept for the page; older ones are dropped as new ones arrive.
const KEEP_TRACES: usize = 100;
/// A flush sends its datagrams (or request) back to back: waiting this long after the first lets a
/// trace's spans arrive together, so that it gets one summary line, not one per datagram.
const SETTLE: Duration = Duration::from_millis(50);

const USAGE: &str = "usage: tracekit-view [--agent ADDR] [--otlp ADDR] [--page ADDR]

  --agent ADDR   UDP address for the X-Ray agent's datagrams (default 127.0.0.1:2000,
                 where tracekit sends under `cargo lambda watch` with no variable set)
  --otlp ADDR    OTLP/HTTP address, POST /v1/traces (default 127.0.0.1:4318)
  --page ADDR    where the trace page is served (default 127.0.0.1:4319)

Port 0 picks a free port; the addresses taken are printed at start.";

struct Args {
    agent: SocketAddr,
    otlp: SocketAddr,
    page: SocketAddr,
}

fn parse_args() -> Result<Args, String> {
    let address = |text: &str| {
        text.parse::<SocketAddr>()
            .map_err(|_| format!("{text:?} is not an address such as 127.0.0.1:2000"))
    };
    let mut args = Args {
        agent: address(AGENT)?,
        otlp: address(OTLP)?,
        page: address(PAGE)?,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or(format!("{flag} needs an address"));
        match flag.as_str() {
            "--agent" => args.agent = address(&value()?)?,
            "--otlp" => args.otlp = address(&value()?)?,
            "--page" => args.page = address(&value()?)?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            if !error.is_empty() {
                eprintln!("tracekit-view: {error}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(error) = run(&args).await {
        eprintln!("tracekit-view: {error}");
        std::process::exit(1);
    }
}

async fn run(args: &Args) -> Result<(), String> {
    let taken = |what: &str, flag: &str| {
        let what = what.to_owned();
        let flag = flag.to_owned();
        move |error: integration_tests::Error| {
            format!(
                "{error} (is another tracekit-view, or a {what}, running? {flag} ADDR listens elsewhere)"
            )
        }
    };
    let agent = XrayDaemon::listen(args.agent).map_err(taken("X-Ray daemon", "--agent"))?;
    let otlp = OtlpReceiver::start_at(args.otlp).map_err(taken("collector", "--otlp"))?;
    let page = PageServer::start(
        args.page,
        &format!(
            "tracekit-view: waiting for spans on udp {} and {}",
            agent.address(),
            otlp.traces_url()
        ),
    )
    .map_err(taken("viewer", "--page"))?;
    // Watched before the addresses are announced: whatever is sent once they are wakes the loop.
    let mut datagrams = agent.datagrams();
    let mut answered = otlp.answered();
    say(&format!(
        "tracekit-view: page   {}\n\
         tracekit-view: agent  udp {} (AWS_XRAY_DAEMON_ADDRESS: where tracekit sends in Lambda and under cargo lambda watch)\n\
         tracekit-view: otlp   {} (OTEL_EXPORTER_OTLP_ENDPOINT={})",
        page.url(),
        agent.address(),
        otlp.traces_url(),
        otlp.endpoint()
    ));

    let mut viewer = Viewer::default();
    loop {
        // Either watch closes only when its stand-in is gone, which this loop outlives.
        let woken = tokio::select! {
            changed = datagrams.changed() => changed,
            changed = answered.changed() => changed,
        };
        woken.map_err(|_| "a listener stopped".to_owned())?;
        tokio::time::sleep(SETTLE).await;
        // Marked seen before reading: whatever arrives after this wakes the next round.
        datagrams.borrow_and_update();
        answered.borrow_and_update();
        let arrived = viewer.read(&agent, &otlp);
        if arrived {
            page.show(&viewer.title(), &viewer.page_spans(), &viewer.edges());
        }
    }
}

/// One trace as the viewer keeps it.
struct Trace {
    id: String,
    spans: Vec<ReceivedSpan>,
}

#[derive(Default)]
struct Viewer {
    /// Oldest first.
    traces: Vec<Trace>,
    /// Refusals already said, per listener.
    datagrams_refused: usize,
    requests_refused: usize,
}

impl Viewer {
    /// Takes what the listeners received, says what was refused or left out on stderr and each
    /// trace that grew on stdout; whether any span arrived.
    fn read(&mut self, agent: &XrayDaemon, otlp: &OtlpReceiver) -> bool {
        let rejected = agent.rejected();
        for reason in rejected.iter().skip(self.datagrams_refused) {
            complain(&format!(
                "refused a datagram on udp {}: {reason}",
                agent.address()
            ));
        }
        self.datagrams_refused = rejected.len();
        let rejections = otlp.rejections();
        for reason in rejections.iter().skip(self.requests_refused) {
            complain(&format!(
                "refused a request on {}: {reason}",
                otlp.endpoint()
            ));
        }
        self.requests_refused = rejections.len();

        let documents = agent.take_documents().len();
        if documents > 0 {
            complain(&format!(
                "{documents} X-Ray segment documents (OTEL_TRACES_EXPORTER=xray) received and not \
                 drawn: the page draws OTLP spans, tracekit's default; unset OTEL_TRACES_EXPORTER"
            ));
        }
        let unsampled = agent.take_unsampled_spans().len();
        if unsampled > 0 {
            complain(&format!(
                "{unsampled} unsampled spans (T1U: an invocation with Sampled=0, sent for \
                 Application Signals) received and not drawn: X-Ray keeps no trace of them"
            ));
        }

        let mut grown: Vec<(String, usize)> = Vec::new();
        for span in agent.take_spans().into_iter().chain(otlp.take_spans()) {
            match grown.iter_mut().find(|(id, _)| *id == span.trace_id) {
                Some((_, added)) => *added += 1,
                None => grown.push((span.trace_id.clone(), 1)),
            }
            match self.traces.iter_mut().find(|t| t.id == span.trace_id) {
                Some(trace) => trace.spans.push(span),
                None => self.traces.push(Trace {
                    id: span.trace_id.clone(),
                    spans: vec![span],
                }),
            }
        }
        for (id, added) in &grown {
            if let Some(trace) = self.traces.iter().find(|trace| trace.id == *id) {
                say(&summary(trace, *added));
            }
        }
        let excess = self.traces.len().saturating_sub(KEEP_TRACES);
        self.traces.drain(..excess);
        !grown.is_empty()
    }

    fn title(&self) -> String {
        format!(
            "tracekit-view: the last {} traces, newest first",
            self.traces.len()
        )
    }

    fn spans(&self) -> impl Iterator<Item = &ReceivedSpan> {
        self.traces.iter().flat_map(|trace| &trace.spans)
    }

    fn page_spans(&self) -> Vec<PageSpan> {
        self.spans().map(PageSpan::from).collect()
    }

    fn edges(&self) -> BTreeSet<(String, String)> {
        service_map(&self.spans().cloned().collect::<Vec<_>>())
    }
}

/// `1-<8>-<24>  <root> (<service>)  <n> spans  <ms> ms  <errors>`: the trace's X-Ray id, its
/// root span (the earliest whose parent is not in the trace: under Lambda, the invocation, whose
/// parent is Lambda's segment), and, when it had arrived in part before, how many spans are new.
fn summary(trace: &Trace, added: usize) -> String {
    let ids: BTreeSet<&str> = trace.spans.iter().map(|s| s.span_id.as_str()).collect();
    let root = trace
        .spans
        .iter()
        .filter(|s| s.parent_span_id.as_deref().is_none_or(|p| !ids.contains(p)))
        .min_by_key(|s| s.start_unix_nanos);
    let start = trace.spans.iter().map(|s| s.start_unix_nanos).min();
    let end = trace.spans.iter().map(|s| s.end_unix_nanos).max();
    let millis = match (start, end) {
        (Some(start), Some(end)) => end.saturating_sub(start) as f64 / 1e6,
        _ => 0.0,
    };
    let errors: Vec<&ReceivedSpan> = trace
        .spans
        .iter()
        .filter(|s| s.status_code == SpanStatusCode::Error)
        .collect();
    let errors = match errors.first() {
        None => "no errors".to_owned(),
        Some(first) => format!(
            "{} error{} ({}: {})",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            first.name,
            first.status_message
        ),
    };
    let count = trace.spans.len();
    let grew = if added < count {
        format!(" (+{added})")
    } else {
        String::new()
    };
    let hex = &trace.id;
    let xray_id = if hex.len() == 32 {
        format!("1-{}-{}", &hex[..8], &hex[8..])
    } else {
        hex.clone()
    };
    let root = root.map_or_else(
        || "?".to_owned(),
        |root| format!("{} ({})", root.name, service(root)),
    );
    format!(
        "{xray_id}  {root}  {count} span{}{grew}  {millis:.1} ms  {errors}",
        if count == 1 { "" } else { "s" }
    )
}

/// A line on stdout, where the traces are summarised.
fn say(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// A line on stderr: what was refused or left out.
fn complain(line: &str) {
    eprintln!("tracekit-view: {line}");
}
