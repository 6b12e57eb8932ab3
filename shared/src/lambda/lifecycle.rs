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

/// Registers tracekit's extension when the flush is `amortized` (before `runtime` first polls
/// `/next`), then runs `runtime` until it ends or the process gets SIGTERM. On SIGTERM, an invocation
/// cut short is dropped (which ends its spans), what is buffered is exported within
/// [`SHUTDOWN_FLUSH`], and the function returns `Ok`, so `main` exits cleanly.
///
/// The runtime arrives boxed as a trait object: nested inline, its future type made the layout of a
/// user's `main` deeper than the compiler's default recursion limit.
pub(super) async fn run_until_terminated(
    telemetry: &Telemetry,
    mut runtime: Pin<Box<dyn Future<Output = Result<(), lambda_runtime::Error>> + '_>>,
) -> Result<(), lambda_runtime::Error> {
    let sigterm = watch_sigterm();
    start_extension(telemetry).await;
    let background = start_background_flush(telemetry);
    // Init ends here: what follows is the runtime asking for the first invocation.
    telemetry.init_done();
    tokio::select! {
        result = &mut runtime => return result,
        () = terminated(sigterm) => {}
    }
    drop(runtime);
    if let Some(background) = background {
        background.abort();
    }
    flush_at_shutdown(telemetry).await;
    Ok(())
}

/// What [`run_until_terminated`] does around a runtime, for a runtime `main` runs itself
/// ([`runtime`]): the extension now, the background flush, and a task that flushes on SIGTERM and
/// then ends the process, as the runtime would not.
pub(super) async fn start_beside_a_runtime(telemetry: &Telemetry) {
    let sigterm = watch_sigterm();
    start_extension(telemetry).await;
    let background = start_background_flush(telemetry);
    // Init ends here: what follows is the runtime asking for the first invocation.
    telemetry.init_done();
    let telemetry = telemetry.clone();
    tokio::spawn(async move {
        terminated(sigterm).await;
        if let Some(background) = background {
            background.abort();
        }
        flush_at_shutdown(&telemetry).await;
        std::process::exit(0);
    });
}

/// The SIGTERM flush: what is buffered, within [`SHUTDOWN_FLUSH`].
async fn flush_at_shutdown(telemetry: &Telemetry) {
    let report = telemetry.shutdown(SHUTDOWN_FLUSH).await;
    tracing::info!(
        target: "tracekit",
        exported = report.exported,
        dropped = report.dropped,
        "SIGTERM: buffered spans flushed, exiting"
    );
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

/// SIGTERM's handler, installed now: before the runtime's first `/next`, so that no SIGTERM can
/// find the default action (ending the process unflushed) however the tasks are scheduled. `None`
/// where the signal cannot be watched, with a warning.
#[cfg(unix)]
fn watch_sigterm() -> Option<tokio::signal::unix::Signal> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(sigterm) => Some(sigterm),
        Err(error) => {
            tracing::warn!(target: "tracekit", %error, "cannot watch SIGTERM; spans buffered at shutdown may be lost");
            None
        }
    }
}

#[cfg(not(unix))]
fn watch_sigterm() -> Option<()> {
    None
}

/// Resolves when the process gets SIGTERM; never, where that signal cannot be watched.
#[cfg(unix)]
async fn terminated(sigterm: Option<tokio::signal::unix::Signal>) {
    if let Some(mut sigterm) = sigterm {
        sigterm.recv().await;
        return;
    }
    std::future::pending::<()>().await;
}

#[cfg(not(unix))]
async fn terminated(_sigterm: Option<()>) {
    std::future::pending::<()>().await;
}
