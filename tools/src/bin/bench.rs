//! `make bench`: the whole-process benchmark. The Runtime API harness drives the same function built
//! as separate binaries (`bench/`), untraced and traced in each way a Rust Lambda can be, and writes
//! what each costs against the untraced baseline of the same run to `BENCHMARKS.md`.
//!
//! Each round spawns every variant once, in an order that rotates from round to round, and invokes
//! it `--invocations` times with a fresh `Lambda-Runtime-Trace-Id` each time. The handler creates 10
//! child spans under the invocation span. Spans go to the OTLP receiver (a collector's stand-in), to
//! an HTTPS OTLP receiver that checks SigV4 as X-Ray's OTLP endpoint does, or to the X-Ray agent
//! stand-in over UDP: OTLP datagrams on the agent path (tracekit's default in Lambda), segment
//! documents for the X-Ray exporters.
//!
//! ```text
//! bench --functions DIR [--rounds 30] [--invocations 1000] [--variants a,b,...] [--out BENCHMARKS.md]
//!       [--instructions [--profiles DIR]] [--criterion target/criterion]
//! ```
//!
//! Each round also runs the function built for Lambda Managed Instances (`run_concurrent`), untraced
//! and traced by tracekit, with 64 invocations in flight, and reports invocations per second of the
//! process's CPU time (`--variants` names this comparison `managed-instances`).
//!
//! `--instructions` also runs each variant under valgrind's callgrind, once for
//! [`COUNTED_FROM`] invocations and once for [`COUNTED_TO`], each flushed before SIGTERM, and reports
//! the difference per invocation: instructions the function's threads executed, a cost that
//! scheduling on shared cores does not blur; and the one-time rest. `--profiles DIR` keeps those
//! callgrind profiles (`callgrind_annotate` reads them), to see where a variant's instructions go.
//! `--criterion DIR` reports the micro-benchmarks criterion has just written there beside the
//! whole-process figures.
//!
//! The goals at the end are ratios to figures of the same run: each of tracekit's export paths
//! against the best peer (the lowest figure among the other ways to trace a Rust function), or
//! against the untraced baseline. Absolute times do not hold on shared cores; ratios measured side
//! by side do.

use futures_util::{StreamExt as _, stream};
use integration_tests::{
    Auth, CredentialStore, FunctionProcess, Invocation, OtlpReceiver, TestCa, TestCredentials,
    TlsOptions, XrayDaemon, xray,
};
use serde_json::json;
use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::{
    collections::HashSet,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant, SystemTime},
};

/// Spans each traced invocation should deliver: the invocation span and 10 children.
const SPANS_PER_INVOCATION: usize = 11;
/// How long the sink waits for late spans after a process has exited.
const DELIVERY_WAIT: Duration = Duration::from_secs(3);
/// When the resident set is read for the first time.
const EARLY_RSS_AT: usize = 100;
/// The two runs under callgrind: their difference is [`COUNTED_TO`] − [`COUNTED_FROM`] invocations
/// with init, the first invocation's one-time work and shutdown cancelled out. (The shorter run
/// serves one invocation: what is left of it once that invocation's share is taken away is then
/// hardly touched by the noise of the per-invocation figure.) Both runs wait for the function's
/// `/next` after their last invocation before SIGTERM, so that both have flushed: the first flush's
/// one-time work (a TLS connection's) then cancels out too, instead of being cut off by SIGTERM in
/// the short run and spread over the invocations of the long one.
const COUNTED_FROM: usize = 1;
const COUNTED_TO: usize = 1001;
/// How long a function under callgrind may take to flush after an invocation: the first TLS
/// connection's start-up alone takes seconds there.
const COUNTED_FLUSH_WAIT: Duration = Duration::from_secs(120);

/// Where a variant's spans go.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sink {
    None,
    Otlp,
    /// OTLP/HTTPS, SigV4-signed, to the receiver standing in for X-Ray's OTLP endpoint.
    OtlpSigned,
    /// OTLP over UDP to the agent stand-in: no OTLP endpoint in the function's environment.
    Agent,
    Xray,
}

/// What a variant is to the goals.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    /// The untraced function: every Δ is against it.
    Baseline,
    /// One of tracekit's export paths: every goal holds it.
    Tracekit,
    /// tracekit recording or sending less by design (unsampled invocations, the SDK disabled):
    /// reported, held to no goal but its own.
    TracekitMode,
    /// Another way to trace a Rust function: the goals' yardstick. `after_response`: it exports
    /// once the response is sent, as tracekit's default path does.
    Peer { after_response: bool },
}

#[derive(Debug)]
struct Variant {
    /// Name on the command line and in the table.
    name: &'static str,
    /// What it is, in the table.
    label: &'static str,
    /// Binary in `--functions`.
    binary: &'static str,
    env: &'static [(&'static str, &'static str)],
    sink: Sink,
    /// The invocations' trace headers say `Sampled=1` (else `Sampled=0`, which X-Ray backends honour).
    sampled: bool,
    role: Role,
}

const VARIANTS: &[Variant] = &[
    Variant {
        name: "baseline",
        label: "untraced baseline (lambda_runtime 1.5)",
        binary: "bench-baseline",
        env: &[],
        sink: Sink::None,
        sampled: true,
        role: Role::Baseline,
    },
    Variant {
        name: "tracekit",
        label: "**tracekit, `end-of-invocation`** (OTLP/HTTP)",
        binary: "bench-tracekit",
        env: &[("TRACEKIT_FLUSH", "end-of-invocation")],
        sink: Sink::Otlp,
        sampled: true,
        role: Role::Tracekit,
    },
    Variant {
        name: "tracekit-amortized",
        label: "**tracekit, `amortized`** (OTLP/HTTP)",
        binary: "bench-tracekit",
        env: &[("TRACEKIT_FLUSH", "amortized")],
        sink: Sink::Otlp,
        sampled: true,
        role: Role::Tracekit,
    },
    Variant {
        name: "tracekit-agent",
        label: "**tracekit, `end-of-invocation`** (agent: OTLP over UDP, the default in Lambda)",
        binary: "bench-tracekit",
        env: &[("TRACEKIT_FLUSH", "end-of-invocation")],
        sink: Sink::Agent,
        sampled: true,
        role: Role::Tracekit,
    },
    Variant {
        name: "tracekit-agent-amortized",
        label: "**tracekit, `amortized`** (agent: OTLP over UDP)",
        binary: "bench-tracekit",
        env: &[("TRACEKIT_FLUSH", "amortized")],
        sink: Sink::Agent,
        sampled: true,
        role: Role::Tracekit,
    },
    Variant {
        name: "tracekit-agent-unsampled",
        label: "tracekit, agent, `Sampled=0` invocations: nothing recorded (Application Signals off, the default)",
        binary: "bench-tracekit",
        env: &[("TRACEKIT_FLUSH", "end-of-invocation")],
        sink: Sink::Agent,
        sampled: false,
        role: Role::TracekitMode,
    },
    Variant {
        name: "tracekit-agent-unsampled-appsignals",
        label: "tracekit, agent, `Sampled=0` invocations with Application Signals: recorded, sent as `T1U`",
        binary: "bench-tracekit",
        env: &[
            ("TRACEKIT_FLUSH", "end-of-invocation"),
            ("OTEL_AWS_APPLICATION_SIGNALS_ENABLED", "true"),
        ],
        sink: Sink::Agent,
        sampled: false,
        role: Role::TracekitMode,
    },
    Variant {
        name: "tracekit-agent-metrics",
        label: "tracekit, agent, `end-of-invocation`, and 3 CloudWatch metrics per invocation (`tracekit::metrics`: an EMF line)",
        binary: "bench-tracekit-metrics",
        env: &[
            ("TRACEKIT_FLUSH", "end-of-invocation"),
            ("TRACEKIT_METRICS_NAMESPACE", "Bench"),
        ],
        sink: Sink::Agent,
        sampled: true,
        role: Role::TracekitMode,
    },
    Variant {
        name: "tracekit-otlp-https",
        label: "**tracekit, `end-of-invocation`** (OTLP/HTTPS + SigV4: X-Ray's OTLP endpoint)",
        binary: "bench-tracekit-sigv4",
        // Under callgrind the first TLS connection (aws-lc's entropy source starts up: ~420M
        // instructions) takes seconds, far over the default 500 ms bound, and a flush cut off
        // mid-handshake starts the next one over: the instruction count would measure valgrind. In
        // the timed runs every flush ends in well under a millisecond either way.
        env: &[
            ("TRACEKIT_FLUSH", "end-of-invocation"),
            ("TRACEKIT_FLUSH_TIMEOUT_MS", "60000"),
        ],
        sink: Sink::OtlpSigned,
        sampled: true,
        role: Role::Tracekit,
    },
    Variant {
        name: "tracekit-disabled",
        label: "tracekit with `OTEL_SDK_DISABLED=true`: nothing recorded or exported, logs as ever",
        binary: "bench-tracekit",
        env: &[("OTEL_SDK_DISABLED", "true")],
        sink: Sink::None,
        sampled: true,
        role: Role::TracekitMode,
    },
    Variant {
        name: "tracekit-xray",
        label: "**tracekit, `end-of-invocation`** (X-Ray daemon, UDP)",
        binary: "bench-tracekit-xray",
        env: &[
            ("TRACEKIT_FLUSH", "end-of-invocation"),
            ("OTEL_TRACES_EXPORTER", "xray"),
        ],
        sink: Sink::Xray,
        sampled: true,
        role: Role::Tracekit,
    },
    Variant {
        name: "lambda-runtime-otel",
        label: "lambda_runtime `OpenTelemetryLayer` + OTLP/HTTP, force_flush after the response",
        binary: "bench-lambda-runtime-otel",
        env: &[],
        sink: Sink::Otlp,
        sampled: true,
        role: Role::Peer {
            after_response: true,
        },
    },
    Variant {
        name: "otel-lite",
        label: "lambda-otel-lite → OTLP/HTTP, `AWS_LAMBDA_LOG_LEVEL=INFO`",
        binary: "bench-otel-lite",
        env: &[("AWS_LAMBDA_LOG_LEVEL", "INFO")],
        sink: Sink::Otlp,
        sampled: true,
        role: Role::Peer {
            after_response: false,
        },
    },
    Variant {
        name: "otel-xray",
        label: "OTel SDK + opentelemetry-aws X-Ray exporter (UDP)",
        binary: "bench-otel-xray",
        env: &[],
        sink: Sink::Xray,
        sampled: true,
        role: Role::Peer {
            after_response: false,
        },
    },
    Variant {
        name: "awssdk-instrumentation",
        label: "awssdk-instrumentation 0.3 `make_lambda_runtime!`, its defaults (X-Ray exporter, UDP; batch, force_flush after the response)",
        binary: "bench-awssdk-instrumentation",
        env: &[],
        sink: Sink::Xray,
        sampled: true,
        role: Role::Peer {
            after_response: true,
        },
    },
    Variant {
        name: "fastrace",
        label: "fastrace 0.7 + fastrace-opentelemetry → OTLP/HTTP, flushed after the response",
        binary: "bench-fastrace",
        env: &[],
        sink: Sink::Otlp,
        sampled: true,
        role: Role::Peer {
            after_response: true,
        },
    },
];

/// `--variants` name of the throughput comparison under Lambda Managed Instances.
const MANAGED_INSTANCES: &str = "managed-instances";
/// Invocations in flight at once under Lambda Managed Instances (`AWS_LAMBDA_MAX_CONCURRENCY`).
const CONCURRENCY: usize = 64;
/// Invocations served before the CPU time is read: the first of each worker (cold start, the
/// exporter's connection) are not the throughput.
const CONCURRENT_WARM_UP: usize = 2 * CONCURRENCY;
/// Invocations the CPU time is read around: a window of seconds, whatever `--invocations` says
/// (which sizes the sequential runs).
const CONCURRENT_MEASURED: usize = 5_000;
/// Invocations offered per second under Lambda Managed Instances, at most [`CONCURRENCY`] in
/// flight: a busy function whose spans an exporter can keep up with (every one is checked to
/// arrive).
const CONCURRENT_RATE: u32 = 2_000;

/// A function built for Lambda Managed Instances (`run_concurrent`).
#[derive(Debug)]
struct ConcurrentVariant {
    name: &'static str,
    label: &'static str,
    binary: &'static str,
    sink: Sink,
}

/// The throughput comparison: the untraced baseline first, every ratio is against it.
const CONCURRENT: [ConcurrentVariant; 2] = [
    ConcurrentVariant {
        name: "baseline-concurrent",
        label: "untraced baseline, `lambda_runtime::run_concurrent`",
        binary: "bench-baseline-concurrent",
        sink: Sink::None,
    },
    ConcurrentVariant {
        name: "tracekit-concurrent",
        label: "**tracekit, `run_concurrent`** (OTLP/HTTP, the default `amortized` flush)",
        binary: "bench-tracekit-concurrent",
        sink: Sink::Otlp,
    },
];

/// What one process under Lambda Managed Instances did in its measured window.
#[derive(Debug)]
struct ThroughputSample {
    /// CPU time (user + system) of every thread of the process over the window.
    cpu: Duration,
    wall: Duration,
    delivered: usize,
    under_given_trace: usize,
}

/// What one fresh process did.
#[derive(Debug, Default)]
struct Sample {
    init: Duration,
    /// CPU time the process spent before its first `/next`.
    init_cpu: Duration,
    latencies: Vec<Duration>,
    turnarounds: Vec<Duration>,
    rss_early_kib: u64,
    rss_end_kib: u64,
    peak_rss_kib: u64,
    /// Requests or datagrams the sink got before the first invocation.
    sink_traffic_during_init: usize,
    delivered: usize,
    /// Spans whose trace id is the one the invocation was given.
    under_given_trace: usize,
}

#[derive(Debug)]
struct Args {
    functions: PathBuf,
    rounds: usize,
    invocations: usize,
    variants: Vec<&'static Variant>,
    out: PathBuf,
    /// Also count each variant's instructions under callgrind.
    instructions: bool,
    /// Where to keep the callgrind profiles; `None`: they are deleted once counted.
    profiles: Option<PathBuf>,
    /// Where criterion wrote this run's micro-benchmarks (`target/criterion`), to report beside.
    criterion: Option<PathBuf>,
    /// Also compare throughput under Lambda Managed Instances ([`MANAGED_INSTANCES`]).
    managed_instances: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        functions: PathBuf::from("bench/target/release"),
        rounds: 30,
        invocations: 1000,
        variants: VARIANTS.iter().collect(),
        out: PathBuf::from("BENCHMARKS.md"),
        instructions: false,
        profiles: None,
        criterion: None,
        managed_instances: true,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--functions" => args.functions = PathBuf::from(value()?),
            "--rounds" => args.rounds = value()?.parse().map_err(|_| "--rounds: a number")?,
            "--invocations" => {
                args.invocations = value()?.parse().map_err(|_| "--invocations: a number")?;
            }
            "--variants" => {
                let wanted = value()?;
                args.managed_instances = wanted.split(',').any(|name| name == MANAGED_INSTANCES);
                args.variants = wanted
                    .split(',')
                    .filter(|name| *name != MANAGED_INSTANCES)
                    .map(|name| {
                        VARIANTS
                            .iter()
                            .find(|v| v.name == name)
                            .ok_or(format!("unknown variant {name}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--out" => args.out = PathBuf::from(value()?),
            "--instructions" => args.instructions = true,
            "--profiles" => args.profiles = Some(PathBuf::from(value()?)),
            "--criterion" => args.criterion = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.invocations <= EARLY_RSS_AT || args.rounds == 0 {
        return Err(format!(
            "need at least 1 round and more than {EARLY_RSS_AT} invocations"
        ));
    }
    if args.variants.first().map(|v| v.name) != Some("baseline") {
        return Err("the variants must start with baseline: every figure is relative to it".into());
    }
    Ok(args)
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("bench: {error}");
            std::process::exit(2);
        }
    };
    if let Err(error) = run(&args).await {
        eprintln!("bench: {error}");
        std::process::exit(1);
    }
}

async fn run(args: &Args) -> Result<(), String> {
    // Read first: a missing benchmark fails the run before it starts, not half an hour in.
    let criterion = args.criterion.as_deref().map(read_criterion).transpose()?;
    let concurrent = CONCURRENT
        .iter()
        .filter(|_| args.managed_instances)
        .map(|c| c.binary);
    for binary in args.variants.iter().map(|v| v.binary).chain(concurrent) {
        let binary = args.functions.join(binary);
        if !binary.is_file() {
            return Err(format!(
                "{} is missing: build bench/ first (make bench does)",
                binary.display()
            ));
        }
    }
    if args.instructions {
        let version = Command::new("valgrind").arg("--version").output();
        if !version.is_ok_and(|output| output.status.success()) {
            return Err(
                "--instructions needs valgrind (Debian: apt-get install valgrind), which is missing"
                    .into(),
            );
        }
    }
    let receiver = Sinks::start()?;
    let mut samples: Vec<Vec<Sample>> = args.variants.iter().map(|_| Vec::new()).collect();
    let mut throughput: [Vec<ThroughputSample>; 2] = Default::default();
    let started = Instant::now();
    let count = args.variants.len();
    for round in 0..args.rounds {
        for offset in 0..count {
            let index = (offset + round) % count;
            let variant = args.variants[index];
            let sample = run_process(args, variant, &receiver)
                .await
                .map_err(|e| format!("{} (round {round}): {e}", variant.name))?;
            samples[index].push(sample);
        }
        if args.managed_instances {
            // The traced process first in one round, the baseline first in the next.
            for offset in 0..CONCURRENT.len() {
                let index = (offset + round) % CONCURRENT.len();
                let variant = &CONCURRENT[index];
                let sample = run_concurrent_process(args, variant, &receiver)
                    .await
                    .map_err(|e| format!("{} (round {round}): {e}", variant.name))?;
                throughput[index].push(sample);
            }
        }
        eprintln!(
            "bench: round {}/{} done after {:.0?}",
            round + 1,
            args.rounds,
            started.elapsed()
        );
    }
    let instructions = if args.instructions {
        Some(count_all_instructions(args, &receiver).await?)
    } else {
        None
    };
    let report = report(
        args,
        &samples,
        &throughput,
        instructions.as_deref(),
        criterion.as_deref(),
        started.elapsed(),
    )?;
    std::fs::write(&args.out, report)
        .map_err(|e| format!("writing {}: {e}", args.out.display()))?;
    eprintln!("bench: wrote {}", args.out.display());
    Ok(())
}

/// Where spans are received: the collector's stand-in, and X-Ray's OTLP endpoint's (HTTPS, SigV4
/// checked against the credentials the functions are given).
struct Sinks {
    otlp: OtlpReceiver,
    signed: OtlpReceiver,
    ca_file: PathBuf,
    credentials: TestCredentials,
}

impl Sinks {
    fn start() -> Result<Sinks, String> {
        let err = |e: integration_tests::Error| e.to_string();
        let ca = std::sync::Arc::new(TestCa::new().map_err(err)?);
        let store = CredentialStore::new();
        let credentials = store.issue(Duration::from_secs(12 * 3600));
        Ok(Sinks {
            otlp: OtlpReceiver::start().map_err(err)?,
            signed: OtlpReceiver::start_tls(
                TlsOptions::new(&ca).auth(Auth::sigv4("us-east-1", &store)),
            )
            .map_err(err)?,
            ca_file: ca.pem_file().map_err(err)?,
            credentials,
        })
    }

    /// The receiver `sink` sends to.
    fn receiver(&self, sink: Sink) -> &OtlpReceiver {
        match sink {
            Sink::OtlpSigned => &self.signed,
            _ => &self.otlp,
        }
    }
}

async fn run_process(args: &Args, variant: &Variant, sinks: &Sinks) -> Result<Sample, String> {
    let err = |e: integration_tests::Error| e.to_string();
    let receiver = sinks.receiver(variant.sink);
    receiver.clear();
    let requests_before = receiver.request_count();
    let daemon = XrayDaemon::recording().map_err(err)?;
    let env = function_env(variant, sinks, &daemon);
    let function =
        FunctionProcess::spawn(&args.functions.join(variant.binary), &env).map_err(err)?;

    let mut sample = Sample {
        init: function.init_duration().await.map_err(err)?,
        ..Sample::default()
    };
    // The function now waits on `/next`: what it has run so far is its init.
    sample.init_cpu = function.cpu_time().map_err(err)?;
    // What reached the sinks while the process initialised (the first `/next` has been polled).
    sample.sink_traffic_during_init =
        receiver.request_count() - requests_before + daemon.datagram_count();

    let mut given = HashSet::with_capacity(args.invocations);
    for n in 0..args.invocations {
        let (invocation, trace_id) = traced_invocation(n, variant.sampled);
        given.insert(trace_id);
        let timed = function.invoke_timed(invocation).await.map_err(err)?;
        timed.outcome.json().map_err(err)?;
        sample.latencies.push(timed.latency());
        sample
            .turnarounds
            .push(timed.turnaround().await.map_err(err)?);
        if n + 1 == EARLY_RSS_AT {
            sample.rss_early_kib = function.memory_kib().map_err(err)?.0;
        }
    }
    let (rss, peak) = function.memory_kib().map_err(err)?;
    sample.rss_end_kib = rss;
    sample.peak_rss_kib = peak;
    let status = function.shutdown().await.map_err(err)?;
    // A function that does not handle SIGTERM is ended by it, as in Lambda.
    if !status.success() && status.signal() != Some(15) {
        return Err(format!("exited with {status} after SIGTERM"));
    }
    let violations = function.protocol_violations();
    if !violations.is_empty() {
        return Err(format!("Runtime API violations: {violations:?}"));
    }
    // The metrics variant is measured only if it wrote what it claims: one valid EMF line per
    // invocation (and every other variant none).
    let metric_lines = integration_tests::emf::checked(&function.stdout())?.len();
    let expected_lines = if writes_metrics(variant) {
        args.invocations
    } else {
        0
    };
    if metric_lines != expected_lines {
        return Err(format!(
            "wrote {metric_lines} EMF metric lines, not {expected_lines}"
        ));
    }

    let trace_ids = delivered(variant, receiver, &daemon, args.invocations).await;
    sample.delivered = trace_ids.len();
    sample.under_given_trace = trace_ids.iter().filter(|id| given.contains(*id)).count();
    Ok(sample)
}

/// Whether `variant`'s handler adds metrics (and its process writes them).
fn writes_metrics(variant: &Variant) -> bool {
    variant
        .env
        .iter()
        .any(|(name, _)| *name == "TRACEKIT_METRICS_NAMESPACE")
}

/// The trace id of each span `variant`'s process delivered to its sink, once the sink has all
/// `invocations`' spans or [`DELIVERY_WAIT`] has passed.
async fn delivered(
    variant: &Variant,
    receiver: &OtlpReceiver,
    daemon: &XrayDaemon,
    invocations: usize,
) -> Vec<String> {
    let expected = invocations * SPANS_PER_INVOCATION;
    match variant.sink {
        Sink::None => Vec::new(),
        Sink::Otlp | Sink::OtlpSigned => {
            // Some variants may deliver fewer: what arrived within the wait is what counts.
            let _ = receiver.wait_for_spans(expected, DELIVERY_WAIT).await;
            receiver.spans().into_iter().map(|s| s.trace_id).collect()
        }
        Sink::Agent if variant.sampled => {
            let _ = daemon.wait_for_spans(expected, DELIVERY_WAIT).await;
            daemon.spans().into_iter().map(|s| s.trace_id).collect()
        }
        Sink::Agent => {
            // Unsampled invocations: only Application Signals sends them, as T1U.
            let _ = daemon
                .wait_for_unsampled_spans(expected, DELIVERY_WAIT)
                .await;
            daemon
                .unsampled_spans()
                .into_iter()
                .chain(daemon.spans())
                .map(|s| s.trace_id)
                .collect()
        }
        Sink::Xray => {
            let _ = daemon.wait_for_documents(expected, DELIVERY_WAIT).await;
            xray_span_trace_ids(&daemon.documents())
        }
    }
}

/// One process of `variant` under Lambda Managed Instances: [`CONCURRENT_WARM_UP`] invocations,
/// then [`CONCURRENT_MEASURED`] more, [`CONCURRENCY`] in flight at a time, the process's CPU time
/// read around the second batch.
async fn run_concurrent_process(
    args: &Args,
    variant: &ConcurrentVariant,
    sinks: &Sinks,
) -> Result<ThroughputSample, String> {
    let err = |e: integration_tests::Error| e.to_string();
    let receiver = sinks.receiver(variant.sink);
    receiver.clear();
    let mut env = vec![
        ("OTEL_SERVICE_NAME", "bench".to_owned()),
        ("AWS_LAMBDA_MAX_CONCURRENCY", CONCURRENCY.to_string()),
    ];
    if variant.sink == Sink::Otlp {
        env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", sinks.otlp.endpoint()));
    }
    let function =
        FunctionProcess::spawn(&args.functions.join(variant.binary), &env).map_err(err)?;
    function.init_duration().await.map_err(err)?;
    let total = CONCURRENT_WARM_UP + CONCURRENT_MEASURED;
    let mut given = HashSet::with_capacity(total);
    serve_concurrently(&function, 0..CONCURRENT_WARM_UP, &mut given).await?;
    let threads = thread_ids(function.pid())?;
    let (cpu_before, started) = (function.cpu_time().map_err(err)?, Instant::now());
    serve_concurrently(&function, CONCURRENT_WARM_UP..total, &mut given).await?;
    let (cpu_after, wall) = (function.cpu_time().map_err(err)?, started.elapsed());
    // The CPU time is summed over the threads alive when it is read: one gone would be lost.
    let gone = threads.difference(&thread_ids(function.pid())?).count();
    if gone > 0 {
        return Err(format!(
            "{gone} threads exited while the CPU time was measured"
        ));
    }
    let status = function.shutdown().await.map_err(err)?;
    if !status.success() && status.signal() != Some(15) {
        return Err(format!("exited with {status} after SIGTERM"));
    }
    let violations = function.protocol_violations();
    if !violations.is_empty() {
        return Err(format!("Runtime API violations: {violations:?}"));
    }
    let trace_ids: Vec<String> = if variant.sink == Sink::None {
        Vec::new()
    } else {
        let _ = receiver
            .wait_for_spans(total * SPANS_PER_INVOCATION, DELIVERY_WAIT)
            .await;
        receiver.spans().into_iter().map(|s| s.trace_id).collect()
    };
    Ok(ThroughputSample {
        cpu: cpu_after.saturating_sub(cpu_before),
        wall,
        delivered: trace_ids.len(),
        under_given_trace: trace_ids.iter().filter(|id| given.contains(*id)).count(),
    })
}

/// Invocations `range`, [`CONCURRENCY`] in flight at a time; their trace ids go into `given`.
async fn serve_concurrently(
    function: &FunctionProcess,
    range: std::ops::Range<usize>,
    given: &mut HashSet<String>,
) -> Result<(), String> {
    let invocations: Vec<Invocation> = range
        .map(|n| {
            let (invocation, trace_id) = traced_invocation(n, true);
            given.insert(trace_id);
            invocation
        })
        .collect();
    // Offered at CONCURRENT_RATE: the untraced handler answers at once, and a flood would outrun
    // any exporter (tracekit drops what its buffer cannot hold, and would look cheaper for it).
    let mut pace = tokio::time::interval(Duration::from_secs(1) / CONCURRENT_RATE);
    let paced = stream::unfold(
        (invocations.into_iter(), &mut pace),
        |(mut invocations, pace)| async move {
            let invocation = invocations.next()?;
            pace.tick().await;
            Some((invocation, (invocations, pace)))
        },
    );
    let mut answers = std::pin::pin!(
        paced
            .map(|invocation| function.invoke(invocation))
            .buffer_unordered(CONCURRENCY)
    );
    while let Some(outcome) = answers.next().await {
        outcome
            .and_then(|outcome| outcome.json())
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The ids of `pid`'s threads now.
fn thread_ids(pid: u32) -> Result<HashSet<std::ffi::OsString>, String> {
    let tasks = format!("/proc/{pid}/task");
    std::fs::read_dir(&tasks)
        .and_then(|entries| entries.map(|entry| entry.map(|e| e.file_name())).collect())
        .map_err(|e| format!("listing {tasks}: {e}"))
}

/// The environment of one of `variant`'s processes: its sinks, then its own settings.
fn function_env(
    variant: &Variant,
    sinks: &Sinks,
    daemon: &XrayDaemon,
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("AWS_XRAY_DAEMON_ADDRESS", daemon.address().to_owned()),
        ("OTEL_SERVICE_NAME", "bench".to_owned()),
    ];
    match variant.sink {
        // An OTLP endpoint would take tracekit off the agent path.
        Sink::Agent => {}
        // X-Ray's OTLP endpoint as Lambda runs it: credentials in the environment.
        Sink::OtlpSigned => {
            let credentials = &sinks.credentials;
            env.extend([
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    sinks.signed.traces_url(),
                ),
                (
                    "OTEL_EXPORTER_OTLP_CERTIFICATE",
                    sinks.ca_file.display().to_string(),
                ),
                ("TRACEKIT_OTLP_XRAY_REGION", "us-east-1".to_owned()),
                ("AWS_ACCESS_KEY_ID", credentials.access_key_id.clone()),
                (
                    "AWS_SECRET_ACCESS_KEY",
                    credentials.secret_access_key.clone(),
                ),
                ("AWS_SESSION_TOKEN", credentials.session_token.clone()),
            ]);
        }
        _ => env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", sinks.otlp.endpoint())),
    }
    env.extend(variant.env.iter().map(|(k, v)| (*k, (*v).to_owned())));
    env
}

/// Invocation `n`, with a fresh Lambda trace header; and its trace id in OpenTelemetry form.
fn traced_invocation(n: usize, sampled: bool) -> (Invocation, String) {
    let trace_id = xray::new_trace_id();
    let header = format!(
        "Root={trace_id};Parent={};Sampled={}",
        xray::new_segment_id(),
        u8::from(sampled)
    );
    let invocation = Invocation::json(json!({ "n": n })).trace_header(header);
    (invocation, xray::otel_trace_id(&trace_id))
}

/// Instructions per invocation and one-time instructions, per variant (in `args.variants` order).
async fn count_all_instructions(
    args: &Args,
    receiver: &Sinks,
) -> Result<Vec<Instructions>, String> {
    let mut counts = Vec::with_capacity(args.variants.len());
    for variant in &args.variants {
        let (from, delivered_from) =
            count_instructions(args, variant, receiver, COUNTED_FROM).await?;
        let (to, delivered_to) = count_instructions(args, variant, receiver, COUNTED_TO).await?;
        let per_invocation = to.saturating_sub(from) as f64 / (COUNTED_TO - COUNTED_FROM) as f64;
        counts.push(Instructions {
            per_invocation,
            one_time: from as f64 - per_invocation * COUNTED_FROM as f64,
            delivered: [delivered_from, delivered_to],
        });
        eprintln!("bench: {} counted under callgrind", variant.name);
    }
    Ok(counts)
}

/// What callgrind counts for one process of `variant` that serves `invocations` invocations, and
/// the spans it delivered.
async fn count_instructions(
    args: &Args,
    variant: &Variant,
    sinks: &Sinks,
    invocations: usize,
) -> Result<(u64, usize), String> {
    let err = |e: integration_tests::Error| format!("{} under callgrind: {e}", variant.name);
    let out = std::env::temp_dir().join(format!(
        "tracekit-bench-callgrind-{}-{}-{invocations}.out",
        std::process::id(),
        variant.name
    ));
    let out_flag = format!("--callgrind-out-file={}", out.display());
    let launcher: [&OsStr; 4] = [
        "valgrind".as_ref(),
        "--tool=callgrind".as_ref(),
        "--quiet".as_ref(),
        out_flag.as_ref(),
    ];
    let receiver = sinks.receiver(variant.sink);
    receiver.clear();
    let daemon = XrayDaemon::recording().map_err(err)?;
    let env = function_env(variant, sinks, &daemon);
    let function =
        FunctionProcess::spawn_under(&launcher, &args.functions.join(variant.binary), &env)
            .map_err(err)?;
    for n in 0..invocations {
        let (invocation, _) = traced_invocation(n, variant.sampled);
        // The flush after an invocation is bounded by its deadline too: far off here.
        let invocation = invocation.deadline(SystemTime::now() + COUNTED_FLUSH_WAIT);
        let timed = function.invoke_timed(invocation).await.map_err(err)?;
        timed.outcome.json().map_err(err)?;
        if n + 1 == invocations {
            // Its flush is done once it asks for the next invocation: SIGTERM cuts nothing short.
            timed
                .turnaround_within(COUNTED_FLUSH_WAIT)
                .await
                .map_err(err)?;
        }
    }
    function.shutdown().await.map_err(err)?;
    let delivered = delivered(variant, receiver, &daemon, invocations)
        .await
        .len();
    let profile = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    match &args.profiles {
        Some(dir) => {
            let kept = dir.join(format!("callgrind.{}.{invocations}.out", variant.name));
            std::fs::create_dir_all(dir)
                .and_then(|()| {
                    std::fs::rename(&out, &kept).or_else(|_| std::fs::copy(&out, &kept).map(drop))
                })
                .map_err(|e| format!("keeping {}: {e}", kept.display()))?;
        }
        None => {
            let _ = std::fs::remove_file(&out);
        }
    }
    profile
        .lines()
        .find_map(|line| {
            line.strip_prefix("summary:")
                .or(line.strip_prefix("totals:"))
        })
        .and_then(|count| count.trim().parse().ok())
        .map(|count| (count, delivered))
        .ok_or_else(|| format!("{}: no instruction total", out.display()))
}

/// One variant's instruction counts.
#[derive(Debug)]
struct Instructions {
    per_invocation: f64,
    /// Init, the first invocation's one-time work (connections, lazy statics) and shutdown.
    one_time: f64,
    /// Spans the two runs delivered to the sink: a count that measured no export is seen.
    delivered: [usize; 2],
}

/// One OTel trace id per span in the X-Ray documents: segments and their subsegments, embedded or
/// sent on their own.
fn xray_span_trace_ids(documents: &[serde_json::Value]) -> Vec<String> {
    fn count(document: &serde_json::Value) -> usize {
        1 + document["subsegments"]
            .as_array()
            .map_or(0, |subsegments| subsegments.iter().map(count).sum())
    }
    documents
        .iter()
        .flat_map(|document| {
            let trace_id = document["trace_id"]
                .as_str()
                .map(xray::otel_trace_id)
                .unwrap_or_default();
            std::iter::repeat_n(trace_id, count(document))
        })
        .collect()
}

/// Median and 99th percentile.
fn percentiles(values: &mut [Duration]) -> (Duration, Duration) {
    values.sort_unstable();
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn median_u64(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// What one variant cost, summarised over its rounds.
#[derive(Debug)]
struct Summary {
    init: Duration,
    init_cpu: Duration,
    latency: (Duration, Duration),
    /// Each round's median latency, in the order of the rounds.
    latency_rounds: Vec<Duration>,
    turnaround: (Duration, Duration),
    peak_rss_kib: u64,
    rss_early_kib: u64,
    rss_end_kib: u64,
    sink_traffic_during_init: usize,
    delivered_per_invocation: f64,
    under_given_per_invocation: f64,
    binary: u64,
    zipped: u64,
}

fn summarise(args: &Args, variant: &Variant, samples: &[Sample]) -> Result<Summary, String> {
    let mut inits: Vec<Duration> = samples.iter().map(|s| s.init).collect();
    let mut init_cpus: Vec<Duration> = samples.iter().map(|s| s.init_cpu).collect();
    let mut latencies: Vec<Duration> = samples.iter().flat_map(|s| s.latencies.clone()).collect();
    let mut turnarounds: Vec<Duration> =
        samples.iter().flat_map(|s| s.turnarounds.clone()).collect();
    let invocations = (samples.len() * args.invocations) as f64;
    let binary = args.functions.join(variant.binary);
    Ok(Summary {
        init: percentiles(&mut inits).0,
        init_cpu: percentiles(&mut init_cpus).0,
        latency: percentiles(&mut latencies),
        latency_rounds: samples
            .iter()
            .map(|s| percentiles(&mut s.latencies.clone()).0)
            .collect(),
        turnaround: percentiles(&mut turnarounds),
        peak_rss_kib: median_u64(samples.iter().map(|s| s.peak_rss_kib).collect()),
        rss_early_kib: median_u64(samples.iter().map(|s| s.rss_early_kib).collect()),
        rss_end_kib: median_u64(samples.iter().map(|s| s.rss_end_kib).collect()),
        sink_traffic_during_init: samples.iter().map(|s| s.sink_traffic_during_init).sum(),
        delivered_per_invocation: samples.iter().map(|s| s.delivered).sum::<usize>() as f64
            / invocations,
        under_given_per_invocation: samples.iter().map(|s| s.under_given_trace).sum::<usize>()
            as f64
            / invocations,
        binary: std::fs::metadata(&binary)
            .map_err(|e| format!("{}: {e}", binary.display()))?
            .len(),
        zipped: zipped_size(&binary)?,
    })
}

/// Size of `binary` alone in a `zip -9` archive, as a Lambda deployment package holds it.
fn zipped_size(binary: &Path) -> Result<u64, String> {
    let dir = std::env::temp_dir().join(format!("tracekit-bench-zip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let archive = dir.join("function.zip");
    let _ = std::fs::remove_file(&archive);
    let status = Command::new("zip")
        .args(["-9", "-q", "-j"])
        .arg(&archive)
        .arg(binary)
        .status()
        .map_err(|e| format!("running zip: {e}"))?;
    if !status.success() {
        return Err(format!("zip failed on {}", binary.display()));
    }
    let size = std::fs::metadata(&archive)
        .map_err(|e| e.to_string())?
        .len();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(size)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .map_or_else(
            || "?".to_owned(),
            |kib| format!("{} GiB", kib / 1024 / 1024),
        );
    let output = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    format!(
        "{cpu}, {cores} cores, {memory}; Linux {}; {}",
        output("uname", &["-r"]),
        output("rustc", &["--version"])
    )
}

fn report(
    args: &Args,
    samples: &[Vec<Sample>],
    throughput: &[Vec<ThroughputSample>; 2],
    instructions: Option<&[Instructions]>,
    criterion: Option<&[f64]>,
    elapsed: Duration,
) -> Result<String, String> {
    let summaries: Vec<Summary> = args
        .variants
        .iter()
        .zip(samples)
        .map(|(variant, samples)| summarise(args, variant, samples))
        .collect::<Result<_, _>>()?;
    let base = &summaries[0];
    let delta = |a: Duration, b: Duration| micros(a) - micros(b);
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# Benchmarks\n");
    let _ = writeln!(
        w,
        "What tracing costs a Rust Lambda function, measured side by side in one run of `make bench` \
         (`{}`), {} rounds × {} invocations per variant, variants in rotation, each round a fresh \
         process per variant. Run took {:.0} s.\n",
        std::env::args().collect::<Vec<_>>().join(" "),
        args.rounds,
        args.invocations,
        elapsed.as_secs_f64()
    );
    let _ = writeln!(w, "Machine: {}.\n", machine());
    let _ = writeln!(
        w,
        "The handler creates 10 child spans per invocation (11 with the invocation span). \
         **init**: spawn → first `/next` (wall clock), and the CPU time the process's threads ran \
         before that first `/next` (from `/proc/PID/task/*/schedstat`: on two shared cores the wall \
         clock also counts waiting to be scheduled); **latency**: `/next` served → `/response` received (what the \
         caller waits for); **turnaround**: `/response` → the next `/next` (billed time spent after \
         answering). Medians over every invocation of every round, p99 in brackets; Δ against the \
         baseline of this run. RSS: medians over rounds. Binary: release, lto, stripped; zip: `zip -9`.\n"
    );
    let _ = writeln!(
        w,
        "| variant | init ms (×base) | init CPU ms (×base) | latency µs (Δ) [p99] | turnaround µs (Δ) [p99] | latency+turnaround Δ µs | peak RSS KiB (Δ) | RSS @{EARLY_RSS_AT} → @{} KiB | binary / zip KiB (Δ binary) | spans delivered per invocation (under the given trace id) | sink traffic during init |",
        args.invocations
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|---|---|");
    for (variant, s) in args.variants.iter().zip(&summaries) {
        let spans = if variant.sink == Sink::None {
            "–".to_owned()
        } else {
            format!(
                "{:.2} ({:.2})",
                s.delivered_per_invocation, s.under_given_per_invocation
            )
        };
        let _ = writeln!(
            w,
            "| {} | {:.2} ({:.2}) | {:.2} ({:.2}) | {:.0} ({:+.0}) [{:.0}] | {:.0} ({:+.0}) [{:.0}] | {:+.0} | {} ({:+}) | {} → {} | {} / {} ({:+}) | {} | {} |",
            variant.label,
            s.init.as_secs_f64() * 1e3,
            s.init.as_secs_f64() / base.init.as_secs_f64(),
            s.init_cpu.as_secs_f64() * 1e3,
            s.init_cpu.as_secs_f64() / base.init_cpu.as_secs_f64(),
            micros(s.latency.0),
            delta(s.latency.0, base.latency.0),
            micros(s.latency.1),
            micros(s.turnaround.0),
            delta(s.turnaround.0, base.turnaround.0),
            micros(s.turnaround.1),
            delta(s.latency.0, base.latency.0) + delta(s.turnaround.0, base.turnaround.0),
            s.peak_rss_kib,
            s.peak_rss_kib as i64 - base.peak_rss_kib as i64,
            s.rss_early_kib,
            s.rss_end_kib,
            s.binary / 1024,
            s.zipped / 1024,
            (s.binary as i64 - base.binary as i64) / 1024,
            spans,
            s.sink_traffic_during_init,
        );
    }
    let throughput_ratio = args
        .managed_instances
        .then(|| throughput_table(w, throughput));
    if let Some(counts) = instructions {
        instruction_table(w, args, counts);
    }
    if let (Some(dir), Some(medians)) = (&args.criterion, criterion) {
        criterion_table(w, dir, medians);
    }
    goals(
        w,
        args,
        &summaries,
        instructions,
        criterion,
        throughput_ratio,
    );
    Ok(out)
}

/// Lambda Managed Instances: invocations per second of the function process's CPU, traced against
/// untraced. Returns that ratio (of the medians), and whether the traced process delivered every
/// span.
fn throughput_table(w: &mut String, throughput: &[Vec<ThroughputSample>; 2]) -> (f64, bool) {
    let mut all_delivered = true;
    let per_invocation =
        |sample: &ThroughputSample| sample.cpu.as_secs_f64() / CONCURRENT_MEASURED as f64;
    let median = |mut values: Vec<f64>| {
        values.sort_unstable_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let cpu: Vec<f64> = throughput
        .iter()
        .map(|samples| median(samples.iter().map(per_invocation).collect()))
        .collect();
    // Each round ran both: the ratio of the round, the spread of the run.
    let ratios: Vec<f64> = throughput[0]
        .iter()
        .zip(&throughput[1])
        .map(|(base, traced)| per_invocation(base) / per_invocation(traced))
        .collect();
    let (low, high) = ratios
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), r| {
            (low.min(*r), high.max(*r))
        });
    let _ = writeln!(
        w,
        "\n## Lambda Managed Instances: throughput per CPU second\n"
    );
    let _ = writeln!(
        w,
        "Each round, one more process of each: built for `run_concurrent` with \
         `AWS_LAMBDA_MAX_CONCURRENCY={CONCURRENCY}`, invoked {CONCURRENT_RATE} times a second \
         with up to {CONCURRENCY} invocations in flight (the handler answers at once: a flood would \
         outrun any exporter, and spans tracekit drops would make it look cheaper). After \
         {CONCURRENT_WARM_UP} invocations (every worker's first, the exporter's connection), the \
         CPU time (user + system, every thread's `schedstat`) the process spends on \
         {CONCURRENT_MEASURED} more: invocations per CPU second, medians over rounds. tracekit \
         exports as it does by default under managed concurrency (`amortized`: 128 spans or 10 s, \
         checked after each invocation and in the background), so up to 127 spans' export falls \
         either side of the window; every span must arrive (last column). **×baseline**: the \
         throughput against the untraced baseline's (each round's own \
         ratio in brackets, lowest to highest).\n"
    );
    let _ = writeln!(
        w,
        "| variant | CPU µs per invocation (Δ) | invocations per CPU second | ×baseline | wall s per round (median) | spans delivered per invocation (under the given trace id) |"
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|");
    for (i, (variant, samples)) in CONCURRENT.iter().zip(throughput).enumerate() {
        let ratio = if i == 0 {
            "1".to_owned()
        } else {
            format!("**{:.3}×** [{low:.3}–{high:.3}]", cpu[0] / cpu[i])
        };
        let invocations = (samples.len() * (CONCURRENT_WARM_UP + CONCURRENT_MEASURED)) as f64;
        let spans = if variant.sink == Sink::None {
            "–".to_owned()
        } else {
            let delivered = samples.iter().map(|s| s.delivered).sum::<usize>() as f64;
            let under_given = samples.iter().map(|s| s.under_given_trace).sum::<usize>() as f64;
            let lost = if delivered < invocations * SPANS_PER_INVOCATION as f64 {
                all_delivered = false;
                ": **spans lost, their export is not in the figure**"
            } else {
                ""
            };
            format!(
                "{:.2} ({:.2}){lost}",
                delivered / invocations,
                under_given / invocations
            )
        };
        let _ = writeln!(
            w,
            "| {} | {:.1} ({:+.1}) | {:.0} | {ratio} | {:.2} | {spans} |",
            variant.label,
            cpu[i] * 1e6,
            (cpu[i] - cpu[0]) * 1e6,
            1.0 / cpu[i],
            median(samples.iter().map(|s| s.wall.as_secs_f64()).collect()),
        );
    }
    (cpu[0] / cpu[1], all_delivered)
}

/// The callgrind counts: what each variant makes the CPU do, whatever the machine's load.
fn instruction_table(w: &mut String, args: &Args, counts: &[Instructions]) {
    let base = &counts[0];
    let _ = writeln!(w, "\n## Instructions (callgrind)\n");
    let _ = writeln!(
        w,
        "Each variant once more, under `valgrind --tool=callgrind`: one process serving \
         {COUNTED_FROM} invocation, one serving {COUNTED_TO}, each sent SIGTERM only once it has \
         asked for the invocation after its last (its flush done). **per invocation** is the \
         difference between the two, divided by {}: the instructions every thread of the \
         function executed per invocation, one-time work cancelled out, whatever else the \
         machine was doing. Instructions are not time (no cache misses, no time in the kernel) but \
         they do not move much with the load on the cores. **one-time** is the shorter run less \
         one invocation's share: init, the first invocation's one-time work (the first flush's \
         connection among it) and shutdown. **spans delivered**: what each run's sink received \
         ({SPANS_PER_INVOCATION} per invocation when everything is exported).\n",
        COUNTED_TO - COUNTED_FROM
    );
    let _ = writeln!(
        w,
        "| variant | per invocation (Δ) | one-time: init, first invocation, shutdown (Δ) | spans delivered ({COUNTED_FROM}-invocation run / {COUNTED_TO}) |"
    );
    let _ = writeln!(w, "|---|---|---|---|");
    for (variant, c) in args.variants.iter().zip(counts) {
        let delivered = if variant.sink == Sink::None {
            "–".to_owned()
        } else {
            format!("{} / {}", c.delivered[0], c.delivered[1])
        };
        let _ = writeln!(
            w,
            "| {} | {:.0} ({:+.0}) | {:.0} ({:+.0}) | {delivered} |",
            variant.label,
            c.per_invocation,
            c.per_invocation - base.per_invocation,
            c.one_time,
            c.one_time - base.one_time,
        );
    }
    // X-Ray's OTLP endpoint's one-time cost, beside the per-invocation figure it no longer inflates.
    let position = |wanted: &str| args.variants.iter().position(|v| v.name == wanted);
    if let (Some(https), Some(http)) = (position("tracekit-otlp-https"), position("tracekit")) {
        let _ = writeln!(
            w,
            "\nOTLP/HTTPS + SigV4's one-time work beyond OTLP/HTTP's (`tracekit-otlp-https` − \
             `tracekit`, one-time): {:+.1}M instructions, once per process: the first TLS \
             connection (aws-lc's CPU-jitter entropy source starting up, the certificate store, the \
             handshake) and the credentials.",
            (counts[https].one_time - counts[http].one_time) / 1e6
        );
    }
}

/// A criterion benchmark the report reads: its group/function id, and what it measures.
const CRITERION: &[(&str, &str)] = &[
    (
        "span/tracing",
        "one `tracing` span with two fields through tracekit's subscriber (tracing-opentelemetry, the SDK's span, tracekit's processor)",
    ),
    (
        "span/sdk",
        "the same span through the OpenTelemetry SDK directly, simple processor into memory",
    ),
    (
        "span/fastrace",
        "the same span as a fastrace `LocalSpan`, recorded (roots of 1,000) and handed to its collector",
    ),
    (
        "processor/tracekit",
        "an invocation's 11 `tracing` spans, created and exported into memory by tracekit's processor",
    ),
    (
        "processor/sdk_batch",
        "the same through tracing-opentelemetry and the SDK's batch processor, `force_flush` after",
    ),
    (
        "processor/fastrace",
        "the same 11 spans through fastrace (the caller's share; it reports on its own thread)",
    ),
    (
        "otlp_encode/tracekit",
        "11 spans encoded as one OTLP request by tracekit's encoder",
    ),
    (
        "otlp_encode/opentelemetry_otlp",
        "the same request built as opentelemetry-otlp builds it (opentelemetry-proto, prost)",
    ),
    (
        "sdk_call_cpu/untraced",
        "one DynamoDB `GetItem` to a local endpoint, the calling thread's CPU, no interceptor",
    ),
    (
        "sdk_call_cpu/traced",
        "the same call with tracekit's interceptor and its client span",
    ),
    (
        "inject/sqs",
        "the current context into an SQS message's attributes, as the interceptor does",
    ),
    (
        "inject/sqs_propagator",
        "the same through the SDK's propagators into a map, copied into the attributes",
    ),
    (
        "inject/sns",
        "the current context into an SNS `Publish`'s attributes, as the interceptor does",
    ),
    (
        "inject/sns_propagator",
        "the same through the SDK's propagators",
    ),
    (
        "inject/eventbridge",
        "the X-Ray header into a `PutEvents` entry, as the interceptor does",
    ),
    (
        "inject/eventbridge_propagator",
        "the same through opentelemetry-aws's `XrayPropagator`",
    ),
    ("xray/parse", "an X-Ray header parsed by tracekit"),
    ("xray/write", "an X-Ray header written by tracekit"),
    (
        "xray/extract",
        "an X-Ray header extracted through opentelemetry-aws's propagator",
    ),
    (
        "xray/inject",
        "an X-Ray header injected through opentelemetry-aws's propagator",
    ),
    (
        "w3c/extract",
        "`traceparent` + `tracestate` extracted through the W3C propagator",
    ),
    (
        "w3c/inject",
        "`traceparent` + `tracestate` injected through the W3C propagator",
    ),
    (
        "invocation/bare",
        "one invocation through the runtime's service stack, untraced",
    ),
    (
        "invocation/traced",
        "the same inside tracekit's invocation layer (no export)",
    ),
];

/// The criterion medians, in ns, in [`CRITERION`] order, read from `dir` (`target/criterion`).
fn read_criterion(dir: &Path) -> Result<Vec<f64>, String> {
    CRITERION
        .iter()
        .map(|(id, _)| {
            let path = dir.join(id).join("new/estimates.json");
            let text = std::fs::read_to_string(&path).map_err(|e| {
                format!(
                    "{}: {e} (run the criterion benchmarks first: make bench does)",
                    path.display()
                )
            })?;
            let estimates: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            estimates["median"]["point_estimate"]
                .as_f64()
                .ok_or_else(|| format!("{}: no median", path.display()))
        })
        .collect()
}

/// The criterion table: each benchmark's median.
fn criterion_table(w: &mut String, dir: &Path, medians: &[f64]) {
    let _ = writeln!(w, "\n## Micro-benchmarks (criterion)\n");
    let _ = writeln!(
        w,
        "`cargo bench -p tracekit --features testing,sns,eventbridge --bench spans --bench aws_sdk`, \
         in the same `make bench` run, read from `{}`: the median of each benchmark's samples \
         (`shared/benches/` says what each measures and how).\n",
        dir.display()
    );
    let _ = writeln!(w, "| benchmark | what | median ns |");
    let _ = writeln!(w, "|---|---|---|");
    for ((id, what), median) in CRITERION.iter().zip(medians) {
        let _ = writeln!(w, "| `{id}` | {what} | {median:.1} |");
    }
}

/// `value` against `limit × yardstick`: the cell's text, and whether the goal is met.
fn against(value: f64, yardstick: f64, limit: f64, unit: &str) -> (String, bool) {
    let met = value <= limit * yardstick;
    let ratio = if yardstick > 0.0 {
        format!("{:.2}×", value / yardstick)
    } else {
        // No ratio to a yardstick of nothing: the goal asks for no more than it.
        "against a yardstick ≤ 0".to_owned()
    };
    (format!("{value:+.0} {unit} ({ratio})"), met)
}

fn yes(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}

/// tracekit's goals, each as measured, met or not: every one a ratio to a figure of this run.
fn goals(
    w: &mut String,
    args: &Args,
    summaries: &[Summary],
    instructions: Option<&[Instructions]>,
    criterion: Option<&[f64]>,
    throughput: Option<(f64, bool)>,
) {
    let base = &summaries[0];
    let d = |a: Duration, b: Duration| micros(a) - micros(b);
    // Every span of every invocation: the figures are means, so a single lost span shows.
    let eleven = |x: f64| (x - SPANS_PER_INVOCATION as f64).abs() < f64::EPSILON;
    let variants = || args.variants.iter().zip(summaries).enumerate();
    let peers: Vec<usize> = variants()
        .filter(|(_, (v, _))| matches!(v.role, Role::Peer { .. }))
        .map(|(i, _)| i)
        .collect();
    // The best peer by `measure` (the lowest), among `among`: its index and its figure.
    let best = |among: &[usize], measure: &dyn Fn(usize) -> f64| {
        among
            .iter()
            .map(|&i| (i, measure(i)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    };
    let name = |i: usize| args.variants[i].name;
    let latency = |i: usize| d(summaries[i].latency.0, base.latency.0);
    let latency_deltas = |i: usize| -> Vec<f64> {
        summaries[i]
            .latency_rounds
            .iter()
            .zip(&base.latency_rounds)
            .map(|(ours, base)| d(*ours, *base))
            .collect()
    };
    let spread = |mut deltas: Vec<f64>| {
        deltas.sort_unstable_by(f64::total_cmp);
        match (deltas.first(), deltas.last()) {
            (Some(low), Some(high)) => {
                format!("{:+.0} µs [{low:+.0}…{high:+.0}]", deltas[deltas.len() / 2])
            }
            _ => "–".to_owned(),
        }
    };
    let turnaround = |i: usize| d(summaries[i].turnaround.0, base.turnaround.0);
    let rss = |i: usize| (summaries[i].peak_rss_kib as i64 - base.peak_rss_kib as i64) as f64;
    let binary = |i: usize| (summaries[i].binary as i64 - base.binary as i64) as f64 / 1024.0;
    let added =
        |i: usize| instructions.map_or(f64::NAN, |c| c[i].per_invocation - c[0].per_invocation);
    let after_response: Vec<usize> = peers
        .iter()
        .copied()
        .filter(|&i| {
            args.variants[i].role
                == Role::Peer {
                    after_response: true,
                }
        })
        .collect();

    let _ = writeln!(w, "\n## tracekit's goals in this run\n");
    let _ = writeln!(
        w,
        "Every goal is a ratio to a figure of this same run: the best peer's (the lowest), or the \
         untraced baseline's. The yardsticks:\n"
    );
    let _ = writeln!(w, "| yardstick | peer | Δ against the baseline |");
    let _ = writeln!(w, "|---|---|---|");
    let instructions_yardstick = instructions.and_then(|_| best(&peers, &added));
    let latency_yardstick = best(&peers, &latency);
    let turnaround_yardstick = best(&after_response, &turnaround);
    let rss_yardstick = best(&peers, &rss);
    let binary_yardstick = best(&peers, &binary);
    for (what, peer, unit) in [
        (
            "cheapest peer: instructions per invocation",
            instructions_yardstick,
            "instructions",
        ),
        ("best peer: latency", latency_yardstick, "µs"),
        (
            "best peer exporting after the response: turnaround",
            turnaround_yardstick,
            "µs",
        ),
        ("best peer: peak RSS", rss_yardstick, "KiB"),
        ("best peer: binary", binary_yardstick, "KiB"),
    ] {
        match peer {
            Some((i, figure)) => {
                let _ = writeln!(w, "| {what} | {} | {figure:+.0} {unit} |", name(i));
            }
            None => {
                let _ = writeln!(w, "| {what} | – (not in this run) | – |");
            }
        }
    }
    let figure = |yardstick: Option<(usize, f64)>| yardstick.map(|(_, figure)| figure);
    let mut met_count = 0;
    let mut goal_count = 0;
    let mut tally = |met: bool| {
        goal_count += 1;
        met_count += usize::from(met);
        yes(met)
    };

    let _ = writeln!(
        w,
        "\nOn each of tracekit's export paths (a cell: the figure, its ratio to the yardstick, met or not):\n"
    );
    let _ = writeln!(
        w,
        "| tracekit path | instructions per invocation Δ ≤ 0.2× cheapest peer's | latency Δ, median [rounds' spread], beside the best peer's (reported, not a goal) | init CPU ≤ 1.10× baseline, nothing sent before the first invocation | peak RSS Δ ≤ 0.5× best peer's | RSS growth (invocation {EARLY_RSS_AT} → {}) ≤ baseline's | binary Δ ≤ 0.6× best peer's | 11 of 11 spans per invocation, under the given trace id |",
        args.invocations
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|---|---|");
    for (i, (variant, s)) in variants().filter(|(_, (v, _))| v.role == Role::Tracekit) {
        let mut cells = Vec::new();
        match figure(instructions_yardstick) {
            Some(yardstick) => {
                let (text, met) = against(added(i), yardstick, 0.2, "instructions");
                cells.push(format!("{text}: {}", tally(met)));
            }
            None => cells.push("– (no `--instructions`)".to_owned()),
        }
        if let Some((peer, _)) = latency_yardstick {
            // The best peer's Δ is within the noise of a ~110 µs baseline on shared cores: each
            // round's Δ against the baseline's same round shows how wide that noise is.
            cells.push(format!(
                "{} beside {} ({})",
                spread(latency_deltas(i)),
                spread(latency_deltas(peer)),
                name(peer)
            ));
        }
        let cpu_ratio = s.init_cpu.as_secs_f64() / base.init_cpu.as_secs_f64();
        let met = cpu_ratio <= 1.10 && s.sink_traffic_during_init == 0;
        cells.push(format!(
            "{cpu_ratio:.3}×, {} sent: {}",
            s.sink_traffic_during_init,
            tally(met)
        ));
        if let Some(yardstick) = figure(rss_yardstick) {
            let (text, met) = against(rss(i), yardstick, 0.5, "KiB");
            cells.push(format!("{text}: {}", tally(met)));
        }
        let growth = s.rss_end_kib as i64 - s.rss_early_kib as i64;
        let base_growth = base.rss_end_kib as i64 - base.rss_early_kib as i64;
        // A page of allocator noise either way is not growth.
        let met = growth <= base_growth + 64;
        cells.push(format!(
            "{growth:+} KiB (baseline {base_growth:+}): {}",
            tally(met)
        ));
        if let Some(yardstick) = figure(binary_yardstick) {
            let (text, met) = against(binary(i), yardstick, 0.6, "KiB");
            cells.push(format!("{text}: {}", tally(met)));
        }
        let met = eleven(s.delivered_per_invocation) && eleven(s.under_given_per_invocation);
        cells.push(format!(
            "{:.2} ({:.2}): {}",
            s.delivered_per_invocation,
            s.under_given_per_invocation,
            tally(met)
        ));
        let _ = writeln!(w, "| `{}` | {} |", variant.name, cells.join(" | "));
    }

    let _ = writeln!(w, "\nThe rest:\n");
    let _ = writeln!(w, "| goal | measured | met |");
    let _ = writeln!(w, "|---|---|---|");
    let position = |wanted: &str| args.variants.iter().position(|v| v.name == wanted);
    if let (Some(agent), Some(yardstick)) =
        (position("tracekit-agent"), figure(turnaround_yardstick))
    {
        let (text, met) = against(turnaround(agent), yardstick, 0.25, "µs");
        let _ = writeln!(
            w,
            "| the default path (`tracekit-agent`): turnaround Δ ≤ 0.25× the best peer's that exports after the response | {text} | {} |",
            tally(met)
        );
    }
    if let (Some(off), Some(on)) = (
        position("tracekit-agent-unsampled"),
        position("tracekit-agent-unsampled-appsignals"),
    ) {
        let (off, on) = (&summaries[off], &summaries[on]);
        // What recording an unsampled invocation costs: the choice of Application Signals' default.
        let cost = d(on.latency.0, off.latency.0) + d(on.turnaround.0, off.turnaround.0);
        let met = eleven(on.under_given_per_invocation) && off.delivered_per_invocation == 0.0;
        let _ = writeln!(
            w,
            "| Application Signals on `Sampled=0` invocations: every span sent as T1U, none without it | {:.2} spans per invocation with it, {:.2} without; it costs {cost:+.0} µs latency + turnaround | {} |",
            on.delivered_per_invocation,
            off.delivered_per_invocation,
            tally(met)
        );
    }
    if let (Some(plain), Some(with)) = (
        position("tracekit-agent"),
        position("tracekit-agent-metrics"),
    ) {
        let instructions = instructions.map_or_else(
            || "– (no `--instructions`)".to_owned(),
            |counts| {
                format!(
                    "{:+.0} instructions",
                    counts[with].per_invocation - counts[plain].per_invocation
                )
            },
        );
        let _ = writeln!(
            w,
            "| metrics (reported): 3 per invocation, one EMF line, over the default path without them | {instructions}, {:+.0} µs turnaround, {:+.0} µs latency per invocation | – |",
            d(summaries[with].turnaround.0, summaries[plain].turnaround.0),
            d(summaries[with].latency.0, summaries[plain].latency.0),
        );
    }
    if let Some((ratio, all_delivered)) = throughput {
        let met = ratio >= 0.9 && all_delivered;
        let _ = writeln!(
            w,
            "| Lambda Managed Instances: traced throughput ≥ 0.9× untraced (every span delivered) | {ratio:.3}×{} | {} |",
            if all_delivered { "" } else { ", spans lost" },
            tally(met)
        );
    }
    if let Some(medians) = criterion {
        let median = |id: &str| {
            CRITERION
                .iter()
                .position(|(known, _)| *known == id)
                .map_or(f64::NAN, |i| medians[i])
        };
        for (goal, ours, yardstick, limit) in [
            (
                "a span (`span/tracing`) ≤ 1.0× a recorded fastrace span (`span/fastrace`)",
                "span/tracing",
                "span/fastrace",
                1.0,
            ),
            (
                "interceptor CPU per SDK call (`sdk_call_cpu/traced`) ≤ 1.02× an untraced call's",
                "sdk_call_cpu/traced",
                "sdk_call_cpu/untraced",
                1.02,
            ),
            (
                "SQS injection ≤ 0.5× the generic way's (`inject/sqs_propagator`)",
                "inject/sqs",
                "inject/sqs_propagator",
                0.5,
            ),
            (
                "SNS injection ≤ 0.5× the generic way's",
                "inject/sns",
                "inject/sns_propagator",
                0.5,
            ),
            (
                "EventBridge injection ≤ 0.5× the generic way's",
                "inject/eventbridge",
                "inject/eventbridge_propagator",
                0.5,
            ),
        ] {
            let (ours, yardstick) = (median(ours), median(yardstick));
            let met = ours <= limit * yardstick;
            let _ = writeln!(
                w,
                "| {goal} | {ours:.1} ns against {yardstick:.1} ns: {:.2}× | {} |",
                ours / yardstick,
                tally(met)
            );
        }
    }
    let _ = writeln!(w, "\n{met_count} of {goal_count} goals met in this run.");
}
