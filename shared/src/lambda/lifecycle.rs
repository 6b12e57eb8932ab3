//! What runs beside the runtime: tracekit's internal extension (so that Lambda sends SIGTERM),
//! the background flush under managed concurrency, and the flush on SIGTERM.

use super::*;

/// Under the `amortized` strategy, registers tracekit's internal extension with the Extensions API,
/// which must happen before the runtime's first `/next`. The extension subscribes to no event: it
/// exists so that Lambda sends SIGTERM, and waits, before shutting the sandbox down, and the spans
/// still buffered are exported then.
///
/// If the registration fails (an emulator without the Extensions API, say), tracekit warns and
/// flushes at the end of each invocation instead, so no span waits for a shutdown it would not see.
async fn start_extension(telemetry: &Telemetry) {
    if !matches!(
        telemetry.config().flush,
        crate::config::FlushStrategy::Amortized { .. }
    ) {
        return;
    }
    match extension::register().await {
        Ok(()) => telemetry.set_amortized(true),
        Err(error) => tracing::warn!(
            target: "tracekit",
            %error,
            "cannot register tracekit's extension: spans are flushed at the end of each invocation"
        ),
    }
}

mod extension {
    //! The two Extensions API calls an internal extension with no subscription makes, through the
    //! Runtime API client lambda_runtime already links.
    //! [Extensions API](https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html)
    use lambda_runtime_api_client::{PooledClient, body::Body, build_request};

    /// Internal extension names are unique per function.
    const NAME: &str = "tracekit";
    const REGISTER_PATH: &str = "/2020-01-01/extension/register";
    const NEXT_PATH: &str = "/2020-01-01/extension/event/next";
    const NAME_HEADER: &str = "Lambda-Extension-Name";
    const ID_HEADER: &str = "Lambda-Extension-Identifier";

    type Error = Box<dyn std::error::Error + Send + Sync>;

    /// Registers for no event, then parks a `/event/next` request for the life of the process:
    /// Lambda counts the extension ready once it asks, and never answers it.
    pub(super) async fn register() -> Result<(), Error> {
        let client = PooledClient::builder().build();
        let request = build_request()
            .method(http::Method::POST)
            .uri(REGISTER_PATH)
            .header(NAME_HEADER, NAME)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"events":[]}"#))?;
        let response = client.call(request).await?;
        if !response.status().is_success() {
            return Err(format!("registration answered {}", response.status()).into());
        }
        let id = response
            .headers()
            .get(ID_HEADER)
            .cloned()
            .ok_or("registration answered without an extension identifier")?;
        let next = build_request()
            .method(http::Method::GET)
            .uri(NEXT_PATH)
            .header(ID_HEADER, id)
            .body(Body::empty())?;
        tokio::spawn(async move {
            // Only an error ends this request; the process goes on either way.
            if let Err(error) = client.call(next).await {
                tracing::debug!(target: "tracekit", %error, "tracekit's extension stopped waiting");
            }
        });
        Ok(())
    }
}

/// How long the flush on SIGTERM may take. Lambda waits 500 ms between SIGTERM and SIGKILL when
/// external extensions (such as the ADOT collector layer) run, 300 ms with internal ones only.
/// [Lambda execution environment: shutdown](https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html#runtimes-lifecycle-shutdown)
const SHUTDOWN_FLUSH: Duration = Duration::from_millis(250);

/// How the runtime came to stop.
enum Ending {
    /// The process got this signal.
    Signal(&'static str),
    /// The runtime's future ended: with `Ok` (it never does by itself) or its error.
    Returned(Result<(), lambda_runtime::Error>),
    /// The runtime panicked (lambda_runtime 1.5 does on a `/next` answer with no request id, such
    /// as a 500), with the panic's message.
    Panicked(String),
}

/// Registers tracekit's extension when the flush is `amortized` (before `runtime` first polls
/// `/next`), then runs `runtime` until it ends or the process gets SIGTERM or SIGINT. However it
/// stops (a signal, the runtime's error, its panic) the invocations under way are cut short (their
/// spans end as errors naming the shutdown), what is buffered is exported within
/// [`SHUTDOWN_FLUSH`], and one line says what ended the runtime and what was flushed. A signal
/// returns `Ok`, so `main` exits cleanly; the runtime's error, or its panic as an error, is
/// returned.
///
/// lambda_runtime 1.5 ends the runtime (sequential) or one worker for good (`run_concurrent`) when an
/// invocation's `Lambda-Runtime-Client-Context` or `Lambda-Runtime-Cognito-Identity` header is not
/// the JSON it expects: it fails before any layer sees the invocation, so tracekit cannot answer it
/// and keep the worker. What tracekit can do, it does: nothing buffered is lost with the runtime.
///
/// The runtime arrives boxed as a trait object: nested inline, its future type made the layout of a
/// user's `main` deeper than the compiler's default recursion limit.
pub(super) async fn run_until_terminated(
    telemetry: &Telemetry,
    mut runtime: Pin<Box<dyn Future<Output = Result<(), lambda_runtime::Error>> + '_>>,
) -> Result<(), lambda_runtime::Error> {
    let signals = Signals::watch();
    start_extension(telemetry).await;
    let background = start_background_flush(telemetry);
    // Init ends here: what follows is the runtime asking for the first invocation.
    telemetry.init_done();
    // A panic inside the runtime (not a handler's: lambda_runtime catches those) is caught here, so
    // that it cannot take the buffer with it.
    let caught = std::future::poll_fn(|cx| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.as_mut().poll(cx)))
            .map_or_else(|panic| Poll::Ready(Err(panic)), |poll| poll.map(Ok))
    });
    let ending = tokio::select! {
        result = caught => match result {
            Ok(result) => Ending::Returned(result),
            Err(panic) => Ending::Panicked(panic_message(panic.as_ref())),
        },
        signal = signals.received() => Ending::Signal(signal),
    };
    let reason = match &ending {
        Ending::Signal(signal) => signal,
        Ending::Returned(_) | Ending::Panicked(_) => "the runtime stopped",
    };
    // Concurrent invocations, on tasks of their own, are told to stop; a sequential one is dropped
    // with the runtime's future.
    let cut = telemetry.cut_invocations(reason);
    drop(runtime);
    shut_down(telemetry, cut, background, &ending).await;
    match ending {
        Ending::Signal(_) => Ok(()),
        Ending::Returned(result) => result,
        Ending::Panicked(message) => Err(format!("lambda_runtime panicked: {message}").into()),
    }
}

/// What [`run_until_terminated`] does around a runtime, for a runtime `main` runs itself
/// ([`runtime`]): the extension now, the background flush, and a task that, on SIGTERM or SIGINT,
/// cuts the invocations under way short, flushes, and then ends the process, as the runtime would
/// not. The runtime's own end (its error or panic) is `main`'s to see: see [`runtime`] for the
/// flush to call then.
pub(super) async fn start_beside_a_runtime(telemetry: &Telemetry) {
    let signals = Signals::watch();
    start_extension(telemetry).await;
    let background = start_background_flush(telemetry);
    // Init ends here: what follows is the runtime asking for the first invocation.
    telemetry.init_done();
    let telemetry = telemetry.clone();
    tokio::spawn(async move {
        let signal = signals.received().await;
        let cut = telemetry.cut_invocations(signal);
        shut_down(&telemetry, cut, background, &Ending::Signal(signal)).await;
        std::process::exit(0);
    });
}

/// How long, at most, of [`SHUTDOWN_FLUSH`], the invocations under way get to end their spans: the
/// wait ends as soon as the last has, which on an idle worker is well under a millisecond.
const CUT_BOUND: Duration = Duration::from_millis(100);

/// The last flush, once the `cut` invocations under way were told to stop: their spans ended, the background flush stopped (what it had
/// taken is counted by the flush below), what is buffered exported within [`SHUTDOWN_FLUSH`], and
/// one line that says what ended the runtime and what was flushed.
async fn shut_down(
    telemetry: &Telemetry,
    cut: usize,
    background: Option<tokio::task::JoinHandle<()>>,
    ending: &Ending,
) {
    let started = tokio::time::Instant::now();
    telemetry.invocations_settled(CUT_BOUND).await;
    if let Some(background) = background {
        background.abort();
        // Aborted, it lets go of the flush gate and books the batch it held.
        let _ = background.await;
    }
    // The whole shutdown stays within SHUTDOWN_FLUSH: the flush has what the cut left.
    let report = telemetry
        .shutdown(SHUTDOWN_FLUSH.saturating_sub(started.elapsed()))
        .await;
    let totals = telemetry.flush_totals();
    let (exported, dropped, unconfirmed) = (report.exported, report.dropped, report.unconfirmed);
    // This flush's counts, and the process's since it started.
    let (total_exported, total_dropped, total_unconfirmed) =
        (totals.exported, totals.dropped, totals.unconfirmed);
    macro_rules! ended {
        ($level:ident, $($message:tt)+) => {
            tracing::$level!(
                target: "tracekit",
                exported, dropped, unconfirmed, cut,
                total_exported, total_dropped, total_unconfirmed,
                $($message)+
            )
        };
    }
    match ending {
        Ending::Signal(signal) => ended!(info, "{signal}: buffered spans flushed, exiting"),
        Ending::Returned(Ok(())) => ended!(
            warn,
            "the Lambda runtime stopped: buffered spans flushed, exiting"
        ),
        Ending::Returned(Err(error)) => ended!(
            error,
            "the Lambda runtime failed ({error}): buffered spans flushed, exiting"
        ),
        Ending::Panicked(message) => ended!(
            error,
            "the Lambda runtime panicked ({message}): buffered spans flushed, exiting"
        ),
    }
}

/// A panic's message, when it is text.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Under managed concurrency with the `amortized` flush in force, the task that flushes: when an
/// invocation finds a flush due (size or age) it wakes the task instead of flushing itself, and
/// every `max_age` the task looks by itself, so spans of a quiet environment do not wait for the
/// next invocation. No invocation waits for it, so its bound is the exporter's own timeout
/// (`OTEL_EXPORTER_OTLP_TIMEOUT` for OTLP/HTTP), not the end-of-invocation flush timeout: a slow
/// collector delays spans instead of losing them. Elsewhere nothing: a classic sandbox is frozen
/// between invocations, and a timer would fire inside the next.
fn start_background_flush(telemetry: &Telemetry) -> Option<tokio::task::JoinHandle<()>> {
    let config = telemetry.config();
    let crate::config::FlushStrategy::Amortized { max_spans, max_age } = config.flush else {
        return None;
    };
    if config.max_concurrency <= 1 || !telemetry.is_amortized() || max_age.is_zero() {
        return None;
    }
    let bound = match &config.exporter {
        crate::config::ExporterConfig::Otlp(otlp) => otlp.timeout.max(config.flush_timeout),
        _ => config.flush_timeout,
    };
    telemetry.flush_in_background();
    let telemetry = telemetry.clone();
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(max_age);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = telemetry.background_woken() => {}
            }
            if telemetry.is_due(max_spans, max_age) {
                telemetry.force_flush(bound).await;
            }
        }
    }))
}

/// The signals that end the process: SIGTERM (Lambda's shutdown) and SIGINT (Ctrl-C, and
/// `cargo lambda watch` stopping its emulator). Their handlers are installed at once: before the
/// runtime's first `/next`, so that no signal can find the default action (ending the process
/// unflushed) however the tasks are scheduled. A signal that cannot be watched is warned about.
struct Signals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    #[cfg(unix)]
    fn watch() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        let watch = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(signal) => Some(signal),
            Err(error) => {
                tracing::warn!(target: "tracekit", %error, "cannot watch {name}; spans buffered when it comes may be lost");
                None
            }
        };
        Signals {
            terminate: watch(SignalKind::terminate(), "SIGTERM"),
            interrupt: watch(SignalKind::interrupt(), "SIGINT"),
        }
    }

    #[cfg(not(unix))]
    fn watch() -> Signals {
        Signals {}
    }

    /// Resolves with the signal's name when the process gets one; never, where none can be watched.
    #[cfg(unix)]
    async fn received(mut self) -> &'static str {
        async fn recv(signal: Option<&mut tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            () = recv(self.terminate.as_mut()) => "SIGTERM",
            () = recv(self.interrupt.as_mut()) => "SIGINT",
        }
    }

    #[cfg(not(unix))]
    async fn received(self) -> &'static str {
        std::future::pending::<&'static str>().await
    }
}
