//! A Lambda Runtime API server that runs a real function binary as a child process and drives it the way
//! Lambda does: one invocation at a time through the `/next` long poll, the answer through `/response` or
//! `/error`. The test chooses the payload, request id, trace header, deadline and ARN.
//!
//! Timing marks are taken in the server's request handlers, where Lambda would take them, so benchmarks can
//! measure latency (`/next` served → answer received) and turnaround (answer received → next `/next`).
//!
//! The Extensions API's register and `/event/next` calls are served as Lambda serves them to an
//! internal extension that subscribes to no event (the registration is recorded, `/event/next` is
//! never answered); any other request is answered 404 and recorded as a protocol violation.
//!
//! Reference: <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::Value;
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot, watch};

use crate::http::{Body, Server, read_body, respond};
use crate::program::capture_lines;
use crate::util::{excerpt, lock, random_hex, uuid};
use crate::{Error, Result};

const NEXT_PATH: &str = "/2018-06-01/runtime/invocation/next";
const INVOCATION_PATH: &str = "/2018-06-01/runtime/invocation/";
const INIT_ERROR_PATH: &str = "/2018-06-01/runtime/init/error";
// The Extensions API, as far as internal extensions use it:
// https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html
const EXTENSION_REGISTER_PATH: &str = "/2020-01-01/extension/register";
const EXTENSION_NEXT_PATH: &str = "/2020-01-01/extension/event/next";
const EXTENSION_NAME: HeaderName = HeaderName::from_static("lambda-extension-name");
const EXTENSION_ID: HeaderName = HeaderName::from_static("lambda-extension-identifier");

// Headers of the `/next` response and of error posts, as Lambda names them:
// https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html#runtimes-api-next
const REQUEST_ID: HeaderName = HeaderName::from_static("lambda-runtime-aws-request-id");
const DEADLINE_MS: HeaderName = HeaderName::from_static("lambda-runtime-deadline-ms");
const INVOKED_ARN: HeaderName = HeaderName::from_static("lambda-runtime-invoked-function-arn");
const TRACE_ID: HeaderName = HeaderName::from_static("lambda-runtime-trace-id");
const CLIENT_CONTEXT: HeaderName = HeaderName::from_static("lambda-runtime-client-context");
const COGNITO_IDENTITY: HeaderName = HeaderName::from_static("lambda-runtime-cognito-identity");
const ERROR_TYPE: HeaderName = HeaderName::from_static("lambda-runtime-function-error-type");

/// How long a function may take to poll `/next` (at start-up or after its previous answer).
pub const POLL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long past an invocation's deadline the harness waits for the answer (a test may send a deadline
/// that has already passed).
pub const ANSWER_GRACE: Duration = Duration::from_secs(10);
/// How long [`FunctionProcess::shutdown`] waits after SIGTERM before it kills the process.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);
const ACCOUNT_ID: &str = "123456789012";
const REGION: &str = "us-east-1";

/// One invocation as the test wants Lambda to deliver it. Built with [`Invocation::json`] or
/// [`Invocation::raw`], then the builder methods.
#[derive(Debug, Clone)]
pub struct Invocation {
    payload: Bytes,
    request_id: String,
    trace_header: Option<String>,
    deadline: Option<SystemTime>,
    invoked_arn: Option<String>,
    client_context: Option<String>,
    cognito_identity: Option<String>,
}

impl Invocation {
    /// An invocation whose event is `payload`, with a fresh request id, no trace header, a deadline 30 s
    /// from when it is sent, and the function's unqualified ARN.
    pub fn json(payload: Value) -> Invocation {
        Invocation::raw(payload.to_string())
    }

    /// An invocation whose event is exactly these bytes (which need not be valid JSON).
    pub fn raw(payload: impl Into<Bytes>) -> Invocation {
        Invocation {
            payload: payload.into(),
            request_id: uuid(),
            trace_header: None,
            deadline: None,
            invoked_arn: None,
            client_context: None,
            cognito_identity: None,
        }
    }

    /// Sets the request id (`Lambda-Runtime-Aws-Request-Id`).
    pub fn request_id(mut self, request_id: impl Into<String>) -> Invocation {
        self.request_id = request_id.into();
        self
    }

    /// Sets the trace header (`Lambda-Runtime-Trace-Id`); without it the header is not sent.
    pub fn trace_header(mut self, header: impl Into<String>) -> Invocation {
        self.trace_header = Some(header.into());
        self
    }

    /// Sets the deadline (`Lambda-Runtime-Deadline-Ms`).
    pub fn deadline(mut self, deadline: SystemTime) -> Invocation {
        self.deadline = Some(deadline);
        self
    }

    /// Sets the invoked ARN (`Lambda-Runtime-Invoked-Function-Arn`), e.g. one with an alias.
    pub fn invoked_arn(mut self, arn: impl Into<String>) -> Invocation {
        self.invoked_arn = Some(arn.into());
        self
    }

    /// Sets the `Lambda-Runtime-Client-Context` header (JSON, as the mobile SDKs send it).
    pub fn client_context(mut self, json: impl Into<String>) -> Invocation {
        self.client_context = Some(json.into());
        self
    }

    /// Sets the `Lambda-Runtime-Cognito-Identity` header (JSON).
    pub fn cognito_identity(mut self, json: impl Into<String>) -> Invocation {
        self.cognito_identity = Some(json.into());
        self
    }

    /// The `/next` response headers, checked now so that a value HTTP cannot carry fails the call.
    fn headers(&self, default_arn: &str, deadline: SystemTime) -> Result<HeaderMap> {
        let deadline_ms = deadline
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis());
        let deadline_ms = deadline_ms.to_string();
        let arn = self.invoked_arn.as_deref().unwrap_or(default_arn);
        let values = [
            (REQUEST_ID, Some(self.request_id.as_str())),
            (DEADLINE_MS, Some(deadline_ms.as_str())),
            (INVOKED_ARN, Some(arn)),
            (TRACE_ID, self.trace_header.as_deref()),
            (CLIENT_CONTEXT, self.client_context.as_deref()),
            (COGNITO_IDENTITY, self.cognito_identity.as_deref()),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|value| (name, value)));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in values {
            let value = HeaderValue::from_str(value).map_err(|_| {
                Error::Invalid(format!(
                    "{name}: {value:?} cannot be sent as an HTTP header value"
                ))
            })?;
            headers.insert(name, value);
        }
        Ok(headers)
    }
}

/// How the function answered an invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum InvocationOutcome {
    /// `POST /runtime/invocation/{id}/response`: the body as sent.
    Response(Bytes),
    /// `POST /runtime/invocation/{id}/error`.
    Error {
        /// `errorType` from the body; the `Lambda-Runtime-Function-Error-Type` header if the body has none.
        error_type: String,
        /// `errorMessage` from the body (empty if it has none).
        error_message: String,
        /// The body as sent.
        body: Bytes,
    },
}

impl InvocationOutcome {
    /// The response parsed as JSON; an error outcome or a body that is not JSON is an [`Error::Function`].
    pub fn json(&self) -> Result<Value> {
        match self {
            InvocationOutcome::Response(body) => serde_json::from_slice(body).map_err(|error| {
                Error::Function(format!(
                    "the response is not JSON ({error}): {}",
                    String::from_utf8_lossy(body)
                ))
            }),
            InvocationOutcome::Error {
                error_type,
                error_message,
                ..
            } => Err(Error::Function(format!(
                "the function answered with an error, not a response: {error_type}: {error_message}"
            ))),
        }
    }
}

/// An [`InvocationOutcome`] with the marks the server took while it was delivered and answered.
#[derive(Debug)]
pub struct TimedOutcome {
    /// How the function answered.
    pub outcome: InvocationOutcome,
    /// The invocation's request id.
    pub request_id: String,
    /// When the `/next` response carrying the invocation was handed to the HTTP connection.
    pub served_at: Instant,
    /// When the whole `/response` or `/error` request had arrived.
    pub answered_at: Instant,
    function_name: String,
    /// Index (in `polls`) of the `/next` request that carried this invocation.
    poll_index: usize,
    polls: watch::Receiver<Vec<Instant>>,
}

impl TimedOutcome {
    /// From the invocation being served to its answer: what the caller of a Lambda function waits for.
    pub fn latency(&self) -> Duration {
        self.answered_at.saturating_duration_since(self.served_at)
    }

    /// Waits for the function's next `/next` request and returns the time from this invocation's answer
    /// to it: the billed time spent after answering (flushing spans, for example).
    ///
    /// Meaningful for a function that handles one invocation at a time, as Lambda's default runtime does.
    pub async fn turnaround(&self) -> Result<Duration> {
        self.turnaround_within(POLL_TIMEOUT).await
    }

    /// [`TimedOutcome::turnaround`], waiting up to `timeout` for the next `/next` (a function under
    /// valgrind may take much longer than [`POLL_TIMEOUT`] to flush).
    pub async fn turnaround_within(&self, timeout: Duration) -> Result<Duration> {
        let wanted = self.poll_index + 1;
        let mut polls = self.polls.clone();
        let waited = tokio::time::timeout(timeout, polls.wait_for(|polls| polls.len() > wanted));
        match waited.await {
            Ok(Ok(polls)) => Ok(polls[wanted].saturating_duration_since(self.answered_at)),
            _ => Err(Error::Timeout(format!(
                "function {} did not poll /next within {timeout:?} after answering invocation {}",
                self.function_name, self.request_id
            ))),
        }
    }
}

/// A function binary running as a child process against its own Runtime API server.
///
/// The process is killed when this value is dropped; if the thread is panicking (a failed assertion),
/// the function's output is printed first.
#[derive(Debug)]
pub struct FunctionProcess {
    name: String,
    pid: u32,
    spawned_at: Instant,
    runtime: Arc<RuntimeState>,
    queue: mpsc::UnboundedSender<Queued>,
    exit: watch::Receiver<Option<Result<ExitStatus, String>>>,
    stdout: watch::Receiver<Vec<String>>,
    stderr: watch::Receiver<Vec<String>>,
    /// Dropping this makes the task that owns the child kill it.
    _kill: oneshot::Sender<()>,
    server: Server,
}

impl FunctionProcess {
    /// Starts a Runtime API server and `binary` as a child process pointed at it.
    ///
    /// The child inherits the test's environment except `OTEL_*`, `TRACEKIT_*`, `AWS_LAMBDA_*`,
    /// `AWS_XRAY_*` and `_X_AMZN_TRACE_ID`, so a developer's shell cannot change what a test sees. It gets
    /// the variables Lambda sets (`AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_FUNCTION_NAME` (default: the
    /// binary's file name), `AWS_LAMBDA_FUNCTION_VERSION=$LATEST`, `AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128`,
    /// the log group and stream, `AWS_REGION=us-east-1`, `AWS_LAMBDA_INITIALIZATION_TYPE=on-demand`,
    /// `_HANDLER`, `LAMBDA_TASK_ROOT`); entries in `env` override all of them.
    ///
    /// Must be called inside a Tokio runtime.
    pub fn spawn<K, V>(binary: &Path, env: &[(K, V)]) -> Result<FunctionProcess>
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        Self::spawn_under(&[], binary, env)
    }

    /// [`FunctionProcess::spawn`], with `binary` started by `launcher` (a program and its
    /// arguments, such as `valgrind --tool=callgrind`) that runs it in the same process.
    pub fn spawn_under<K, V>(
        launcher: &[&OsStr],
        binary: &Path,
        env: &[(K, V)],
    ) -> Result<FunctionProcess>
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let name = env
            .iter()
            .find(|(key, _)| key.as_ref() == "AWS_LAMBDA_FUNCTION_NAME")
            .map(|(_, value)| value.as_ref().to_string_lossy().into_owned())
            .or_else(|| {
                binary
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "function".to_owned());

        let (queue, queue_rx) = mpsc::unbounded_channel();
        let runtime = Arc::new(RuntimeState {
            queue: tokio::sync::Mutex::new(queue_rx),
            in_flight: Mutex::default(),
            polls: watch::Sender::new(Vec::new()),
            init_error: watch::Sender::new(None),
            violations: Mutex::default(),
            extensions: Mutex::default(),
            function_name: name.clone(),
        });
        let server = Server::start("Lambda Runtime API", {
            let runtime = Arc::clone(&runtime);
            move |request| Arc::clone(&runtime).handle(request)
        })?;

        let mut command = match launcher.split_first() {
            Some((program, arguments)) => {
                let mut command = Command::new(program);
                command.args(arguments).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        for (key, _) in std::env::vars_os() {
            let key_str = key.to_string_lossy();
            let lambda_owned = [
                "OTEL_",
                "TRACEKIT_",
                "AWS_LAMBDA_",
                "AWS_XRAY_",
                "_X_AMZN_TRACE_ID",
            ];
            if lambda_owned
                .iter()
                .any(|prefix| key_str.starts_with(prefix))
            {
                command.env_remove(&key);
            }
        }
        let task_root = binary.parent().unwrap_or(Path::new("/"));
        command
            .envs([
                ("AWS_LAMBDA_RUNTIME_API", server.addr().to_string()),
                ("AWS_LAMBDA_FUNCTION_NAME", name.clone()),
                ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
                ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
                ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream_name()),
                ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
                ("AWS_REGION", REGION.to_owned()),
                ("AWS_DEFAULT_REGION", REGION.to_owned()),
                ("_HANDLER", "bootstrap".to_owned()),
                ("LAMBDA_TASK_ROOT", task_root.to_string_lossy().into_owned()),
            ])
            .envs(env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);

        let spawned_at = Instant::now();
        let mut child = command
            .spawn()
            .map_err(Error::io(format!("starting {}", binary.display())))?;
        let pid = child.id().unwrap_or_default();
        let stdout = capture_lines(child.stdout.take());
        let stderr = capture_lines(child.stderr.take());
        let (kill, kill_rx) = oneshot::channel::<()>();
        let (exit_tx, exit) = watch::channel(None);
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = kill_rx => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            exit_tx.send_replace(Some(status.map_err(|error| error.to_string())));
        });

        Ok(FunctionProcess {
            name,
            pid,
            spawned_at,
            runtime,
            queue,
            exit,
            stdout,
            stderr,
            _kill: kill,
            server,
        })
    }

    /// The process's resident memory now and at its peak (`VmRSS`, `VmHWM` from `/proc`), in KiB.
    pub fn memory_kib(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .map_err(Error::io(format!("reading /proc/{}/status", self.pid)))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .ok_or_else(|| Error::Function(format!("no {name} in /proc/{}/status", self.pid)))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// CPU time the process's threads have spent running so far, from each thread's
    /// `/proc/PID/task/TID/schedstat` (nanoseconds, unlike the tick-counted `stat`). Read while the
    /// function waits on `/next`, it is what its init cost in CPU, free of the scheduling delays a
    /// wall clock also counts. Threads that have already exited are not counted.
    pub fn cpu_time(&self) -> Result<Duration> {
        let tasks = format!("/proc/{}/task", self.pid);
        let mut total = 0u64;
        for task in std::fs::read_dir(&tasks).map_err(Error::io(format!("listing {tasks}")))? {
            let path = task.map_err(Error::io(format!("listing {tasks}")))?.path();
            // A thread may exit between the listing and the read.
            let Ok(stat) = std::fs::read_to_string(path.join("schedstat")) else {
                continue;
            };
            total += stat
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .ok_or_else(|| {
                    Error::Function(format!("unreadable {}/schedstat", path.display()))
                })?;
        }
        Ok(Duration::from_nanos(total))
    }

    /// The function name (`AWS_LAMBDA_FUNCTION_NAME`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id of the child (0 if it had already exited when it was spawned).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `127.0.0.1:PORT`, the address of this function's Runtime API (its `AWS_LAMBDA_RUNTIME_API`).
    pub fn runtime_api_address(&self) -> String {
        self.server.addr().to_string()
    }

    /// The function's default invoked ARN: `arn:aws:lambda:us-east-1:123456789012:function:<name>`.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{}",
            self.name
        )
    }

    /// Delivers `invocation` and waits for the answer. See [`FunctionProcess::invoke_timed`].
    pub async fn invoke(&self, invocation: Invocation) -> Result<InvocationOutcome> {
        Ok(self.invoke_timed(invocation).await?.outcome)
    }

    /// Delivers `invocation` on the function's next `/next` poll and waits for its answer, with the
    /// server's timing marks.
    ///
    /// Fails if the function does not poll within [`POLL_TIMEOUT`], does not answer by the deadline plus
    /// [`ANSWER_GRACE`], exits, or reports an init error; the message quotes the function's output.
    /// After a timeout the invocation may still be delivered later: end the test rather than invoke again.
    pub async fn invoke_timed(&self, invocation: Invocation) -> Result<TimedOutcome> {
        let deadline = invocation
            .deadline
            .unwrap_or_else(|| SystemTime::now() + DEFAULT_DEADLINE);
        let answer_timeout = deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            + ANSWER_GRACE;
        let (served_tx, served) = oneshot::channel();
        let (answer_tx, answer) = oneshot::channel();
        let request_id = invocation.request_id.clone();
        let queued = Queued {
            request_id: request_id.clone(),
            status: StatusCode::OK,
            headers: invocation.headers(&self.arn(), deadline)?,
            payload: invocation.payload,
            served: served_tx,
            answer: answer_tx,
        };
        if self.queue.send(queued).is_err() {
            return Err(Error::Function(
                "the Runtime API server has stopped".to_owned(),
            ));
        }

        self.until_function(async { served.await.ok() }, POLL_TIMEOUT, "poll /next")
            .await?;
        let what = format!("answer invocation {request_id}");
        let answer = self
            .until_function(async { answer.await.ok() }, answer_timeout, &what)
            .await?;
        Ok(TimedOutcome {
            outcome: answer.outcome,
            request_id,
            served_at: answer.served_at,
            answered_at: answer.answered_at,
            function_name: self.name.clone(),
            poll_index: answer.poll_index,
            polls: self.runtime.polls.subscribe(),
        })
    }

    /// Delivers `invocation` on the function's next `/next` poll and returns once it is served,
    /// without waiting for an answer (for invocations the function is expected never to answer, or
    /// to answer after the test has moved on).
    pub async fn deliver(&self, invocation: Invocation) -> Result<()> {
        let deadline = invocation
            .deadline
            .unwrap_or_else(|| SystemTime::now() + DEFAULT_DEADLINE);
        let (served_tx, served) = oneshot::channel();
        let (answer, _) = oneshot::channel();
        let queued = Queued {
            request_id: invocation.request_id.clone(),
            status: StatusCode::OK,
            headers: invocation.headers(&self.arn(), deadline)?,
            payload: invocation.payload,
            served: served_tx,
            answer,
        };
        self.enqueue(queued, served).await
    }

    /// Answers the function's next `/next` poll with `status` and no invocation (Lambda's Runtime
    /// API answers 500 when it fails), and returns once it is served.
    pub async fn fail_next(&self, status: StatusCode) -> Result<()> {
        let (served_tx, served) = oneshot::channel();
        let (answer, _) = oneshot::channel();
        let queued = Queued {
            request_id: String::new(),
            status,
            headers: HeaderMap::new(),
            payload: Bytes::new(),
            served: served_tx,
            answer,
        };
        self.enqueue(queued, served).await
    }

    async fn enqueue(&self, queued: Queued, served: oneshot::Receiver<Instant>) -> Result<()> {
        if self.queue.send(queued).is_err() {
            return Err(Error::Function(
                "the Runtime API server has stopped".to_owned(),
            ));
        }
        self.until_function(async { served.await.ok() }, POLL_TIMEOUT, "poll /next")
            .await?;
        Ok(())
    }

    /// Sends `signal` (a `kill` name: `TERM`, `INT`) to the process, and returns at once.
    pub async fn signal(&self, signal: &str) -> Result<()> {
        // `kill` the command, not libc: `unsafe_code` is forbidden workspace-wide.
        Command::new("kill")
            .args([format!("-{signal}"), self.pid.to_string()])
            .status()
            .await
            .map_err(Error::io("running `kill`"))?;
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit by itself, and returns its exit status once its
    /// output has been read to the end.
    pub async fn wait_for_exit(&self, timeout: Duration) -> Result<ExitStatus> {
        let mut exit = self.exit.clone();
        if tokio::time::timeout(timeout, exit.wait_for(Option::is_some))
            .await
            .is_err()
        {
            return Err(Error::Timeout(format!(
                "function {} did not exit within {timeout:?}\n{}",
                self.name,
                self.output_excerpt()
            )));
        }
        self.exited().await
    }

    /// The exit status of a process that has exited, once its output has been read to the end.
    async fn exited(&self) -> Result<ExitStatus> {
        self.drain_output().await;
        match self.exit.borrow().clone() {
            Some(Ok(status)) => Ok(status),
            Some(Err(error)) => Err(Error::Function(format!(
                "waiting for function {} failed: {error}",
                self.name
            ))),
            None => Err(Error::Function(format!(
                "lost track of function {}",
                self.name
            ))),
        }
    }

    /// Waits for the function's first `/next` poll and returns the time from spawning the process to it
    /// (the init phase, as far as the Runtime API can see it).
    pub async fn init_duration(&self) -> Result<Duration> {
        let mut polls = self.runtime.polls.subscribe();
        let first_poll = async move {
            let polls = polls.wait_for(|polls| !polls.is_empty()).await.ok()?;
            polls.first().copied()
        };
        let first = self
            .until_function(first_poll, POLL_TIMEOUT, "poll /next")
            .await?;
        Ok(first.saturating_duration_since(self.spawned_at))
    }

    /// Sends SIGTERM (as Lambda does at shutdown) and waits up to [`SHUTDOWN_TIMEOUT`] for the process
    /// to exit; kills it if it does not. Returns the exit status; calling it again returns the same.
    pub async fn shutdown(&self) -> Result<ExitStatus> {
        if self.exit.borrow().is_none() {
            // `kill` the command, not libc: `unsafe_code` is forbidden workspace-wide.
            Command::new("kill")
                .args(["-TERM", &self.pid.to_string()])
                .status()
                .await
                .map_err(Error::io("running `kill -TERM`"))?;
        }
        let mut exit = self.exit.clone();
        let exited = tokio::time::timeout(SHUTDOWN_TIMEOUT, exit.wait_for(Option::is_some)).await;
        if exited.is_err() {
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status()
                .await;
            return Err(Error::Timeout(format!(
                "function {} did not exit within {SHUTDOWN_TIMEOUT:?} of SIGTERM and was killed\n{}",
                self.name,
                self.output_excerpt()
            )));
        }
        self.exited().await
    }

    /// The exit status, if the process has exited.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.exit.borrow().clone().and_then(Result::ok)
    }

    /// The lines the function has written to stdout so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.borrow().clone()
    }

    /// The lines the function has written to stderr so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.borrow().clone()
    }

    /// Waits until the function writes a stdout line matching `predicate` (or has written one) and
    /// returns it. Output is read asynchronously, so a log line may arrive after the invocation's answer.
    pub async fn wait_for_stdout(
        &self,
        predicate: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String> {
        match crate::util::first_matching(&self.stdout, predicate, timeout).await {
            Some(line) => Ok(line),
            None => Err(Error::Timeout(format!(
                "function {} wrote no matching stdout line within {timeout:?}\n{}",
                self.name,
                self.output_excerpt()
            ))),
        }
    }

    /// Names of the extensions the function registered through the Extensions API, in order.
    pub fn extensions(&self) -> Vec<String> {
        lock(&self.runtime.extensions)
            .iter()
            .map(|extension| extension.name.clone())
            .collect()
    }

    /// Requests to the Runtime API that Lambda would reject: unknown paths, wrong methods, answers for
    /// request ids that are not in flight. Each entry is `METHOD /path: reason`.
    pub fn protocol_violations(&self) -> Vec<String> {
        lock(&self.runtime.violations).clone()
    }

    /// Waits for `received` unless the function exits, reports an init error, or `timeout` passes first.
    /// `received` yields `None` if the server side went away.
    async fn until_function<T>(
        &self,
        received: impl Future<Output = Option<T>>,
        timeout: Duration,
        what: &str,
    ) -> Result<T> {
        let mut exit = self.exit.clone();
        let mut init_error = self.runtime.init_error.subscribe();
        let failure = tokio::select! {
            // An answer that arrived just before the process exited still counts.
            biased;
            received = received => return received.ok_or_else(|| Error::Function(format!(
                "the Runtime API server dropped the invocation while waiting for function {} to {what}",
                self.name
            ))),
            _ = init_error.wait_for(Option::is_some) => format!("reported an init error before it could {what}"),
            _ = exit.wait_for(Option::is_some) => format!("exited before it could {what}"),
            () = tokio::time::sleep(timeout) => {
                return Err(Error::Timeout(format!(
                    "function {} did not {what} within {timeout:?}\n{}",
                    self.name,
                    self.output_excerpt()
                )));
            }
        };
        // A runtime exits after an init error: give it a moment, and let its last lines reach us.
        let exiting = tokio::time::timeout(Duration::from_secs(1), exit.wait_for(Option::is_some));
        if exiting.await.is_ok() {
            self.drain_output().await;
        }
        let init_error = self
            .runtime
            .init_error
            .borrow()
            .as_ref()
            .map(|error| format!("\ninit error: {error}"))
            .unwrap_or_default();
        let status = match self.exit.borrow().as_ref() {
            // `ExitStatus` displays as "exit status: 1" or "signal: 15 (SIGTERM)".
            Some(Ok(status)) => format!("\n{status}"),
            Some(Err(error)) => format!("\nexit status unknown: {error}"),
            None => String::new(),
        };
        Err(Error::Function(format!(
            "function {} {failure}{init_error}{status}\n{}",
            self.name,
            self.output_excerpt()
        )))
    }

    /// Waits (briefly) until both output pipes are closed, i.e. everything the process wrote was read.
    async fn drain_output(&self) {
        let mut stdout = self.stdout.clone();
        let mut stderr = self.stderr.clone();
        let closed = async {
            // `wait_for` with a predicate that never holds returns once the reader task has finished.
            let _ = stdout.wait_for(|_| false).await;
            let _ = stderr.wait_for(|_| false).await;
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), closed).await;
    }

    fn output_excerpt(&self) -> String {
        crate::util::output_excerpt(&self.stderr.borrow(), &self.stdout.borrow())
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- function {} (pid {}) ---\nstdout:\n{}stderr:\n{}protocol violations: {:?}",
                self.name,
                self.pid,
                excerpt(&self.stdout.borrow()),
                excerpt(&self.stderr.borrow()),
                self.protocol_violations()
            );
        }
    }
}

/// An invocation waiting for the function's `/next` poll.
#[derive(Debug)]
struct Queued {
    request_id: String,
    /// What `/next` answers: 200 with the invocation, or a failure with no invocation.
    status: StatusCode,
    headers: HeaderMap,
    payload: Bytes,
    served: oneshot::Sender<Instant>,
    answer: oneshot::Sender<Answer>,
}

/// An invocation the function has received and not yet answered.
#[derive(Debug)]
struct InFlight {
    served_at: Instant,
    poll_index: usize,
    answer: oneshot::Sender<Answer>,
}

#[derive(Debug)]
struct Answer {
    outcome: InvocationOutcome,
    served_at: Instant,
    answered_at: Instant,
    poll_index: usize,
}

/// The Runtime API endpoints the server answers.
#[derive(Debug, PartialEq)]
enum Route {
    Next,
    Answer { request_id: String, is_error: bool },
    InitError,
    ExtensionRegister,
    ExtensionNext,
}

impl Route {
    fn parse(path: &str) -> Option<Route> {
        if path == NEXT_PATH {
            return Some(Route::Next);
        }
        if path == INIT_ERROR_PATH {
            return Some(Route::InitError);
        }
        if path == EXTENSION_REGISTER_PATH {
            return Some(Route::ExtensionRegister);
        }
        if path == EXTENSION_NEXT_PATH {
            return Some(Route::ExtensionNext);
        }
        let (request_id, kind) = path.strip_prefix(INVOCATION_PATH)?.split_once('/')?;
        let is_error = match kind {
            "response" => false,
            "error" => true,
            _ => return None,
        };
        (!request_id.is_empty()).then(|| Route::Answer {
            request_id: request_id.to_owned(),
            is_error,
        })
    }
}

/// What the Runtime API server shares with the [`FunctionProcess`] that owns it.
#[derive(Debug)]
struct RuntimeState {
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
    in_flight: Mutex<HashMap<String, InFlight>>,
    /// When each `/next` request arrived, in order.
    polls: watch::Sender<Vec<Instant>>,
    /// `errorType: errorMessage` from `/runtime/init/error`.
    init_error: watch::Sender<Option<String>>,
    violations: Mutex<Vec<String>>,
    extensions: Mutex<Vec<RegisteredExtension>>,
    function_name: String,
}

/// An extension registered by the function process (an internal extension).
#[derive(Debug)]
struct RegisteredExtension {
    id: String,
    name: String,
}

impl RuntimeState {
    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let Some(route) = Route::parse(&path) else {
            let reason = "not a Runtime API path";
            return self.violation(&method, &path, StatusCode::NOT_FOUND, reason);
        };
        let expected = if matches!(route, Route::Next | Route::ExtensionNext) {
            Method::GET
        } else {
            Method::POST
        };
        if method != expected {
            let reason = format!("expected {expected}");
            return self.violation(&method, &path, StatusCode::METHOD_NOT_ALLOWED, &reason);
        }
        match route {
            Route::Next => self.next().await,
            Route::Answer {
                request_id,
                is_error,
            } => self.answer(&request_id, is_error, request).await,
            Route::InitError => self.init_error(request).await,
            Route::ExtensionRegister => self.register_extension(request).await,
            Route::ExtensionNext => self.extension_next(request).await,
        }
    }

    /// `POST /extension/register`. Every extension here runs inside the function process, so the
    /// rules of internal extensions apply: register before the runtime's first `/next`, and no
    /// `SHUTDOWN` subscription. Subscribing to `INVOKE` is refused too, loudly: this harness does not
    /// deliver extension events.
    async fn register_extension(&self, request: Request<Incoming>) -> Response<Body> {
        let path = EXTENSION_REGISTER_PATH;
        let name = header_str(request.headers(), &EXTENSION_NAME).unwrap_or_default();
        let Some(body) = read_body(request).await else {
            return respond(StatusCode::BAD_REQUEST, "");
        };
        if name.is_empty() {
            return self.violation(
                &Method::POST,
                path,
                StatusCode::BAD_REQUEST,
                "no Lambda-Extension-Name",
            );
        }
        if !self.polls.borrow().is_empty() {
            let reason = format!("extension {name} registered after the runtime's first /next");
            return self.violation(&Method::POST, path, StatusCode::FORBIDDEN, &reason);
        }
        let events = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|body| body.get("events").cloned())
            .and_then(|events| serde_json::from_value::<Vec<String>>(events).ok());
        let Some(events) = events else {
            return self.violation(
                &Method::POST,
                path,
                StatusCode::BAD_REQUEST,
                "body is not {\"events\": [...]}",
            );
        };
        if let Some(event) = events.first() {
            let reason = format!(
                "extension {name} subscribes to {event}: internal extensions here may subscribe to no event"
            );
            return self.violation(&Method::POST, path, StatusCode::FORBIDDEN, &reason);
        }
        let id = uuid();
        {
            let mut extensions = lock(&self.extensions);
            if extensions.iter().any(|extension| extension.name == name) {
                let reason = format!("extension {name} is already registered");
                drop(extensions);
                return self.violation(&Method::POST, path, StatusCode::CONFLICT, &reason);
            }
            extensions.push(RegisteredExtension {
                id: id.clone(),
                name,
            });
        }
        let body = serde_json::json!({
            "functionName": self.function_name,
            "functionVersion": "$LATEST",
            "handler": "bootstrap",
            "accountId": ACCOUNT_ID,
        });
        let mut response = respond(StatusCode::OK, body.to_string());
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(EXTENSION_ID, value);
        }
        response
    }

    /// `GET /extension/event/next`: an extension with no subscription waits for the life of the
    /// process, as in Lambda.
    async fn extension_next(&self, request: Request<Incoming>) -> Response<Body> {
        let id = header_str(request.headers(), &EXTENSION_ID).unwrap_or_default();
        let known = lock(&self.extensions)
            .iter()
            .any(|extension| extension.id == id);
        if !known {
            let reason = format!("unknown Lambda-Extension-Identifier {id:?}");
            return self.violation(
                &Method::GET,
                EXTENSION_NEXT_PATH,
                StatusCode::FORBIDDEN,
                &reason,
            );
        }
        std::future::pending().await
    }

    /// `GET /next`: waits for an invocation and hands it over.
    async fn next(&self) -> Response<Body> {
        let mut poll_index = 0;
        self.polls.send_modify(|polls| {
            poll_index = polls.len();
            polls.push(Instant::now());
        });
        let queued = self.queue.lock().await.recv().await;
        let Some(queued) = queued else {
            return respond(StatusCode::INTERNAL_SERVER_ERROR, "the harness has stopped");
        };
        let served_at = Instant::now();
        if queued.status != StatusCode::OK {
            let _ = queued.served.send(served_at);
            return respond(queued.status, "");
        }
        let in_flight = InFlight {
            served_at,
            poll_index,
            answer: queued.answer,
        };
        lock(&self.in_flight).insert(queued.request_id, in_flight);
        // The invoking test may have given up; the function still gets the event, as it would in Lambda.
        let _ = queued.served.send(served_at);
        let mut response = respond(StatusCode::OK, queued.payload);
        *response.headers_mut() = queued.headers;
        response
    }

    /// `POST /invocation/{id}/response` and `/invocation/{id}/error`.
    async fn answer(
        &self,
        request_id: &str,
        is_error: bool,
        request: Request<Incoming>,
    ) -> Response<Body> {
        let path = request.uri().path().to_owned();
        let header_error_type = header_str(request.headers(), &ERROR_TYPE);
        let Some(body) = read_body(request).await else {
            return respond(StatusCode::BAD_REQUEST, "");
        };
        let answered_at = Instant::now();
        let Some(in_flight) = lock(&self.in_flight).remove(request_id) else {
            let reason = format!("invocation {request_id} is not in flight");
            return self.violation(&Method::POST, &path, StatusCode::BAD_REQUEST, &reason);
        };
        let outcome = if is_error {
            let (error_type, error_message) = error_fields(&body);
            InvocationOutcome::Error {
                error_type: error_type.or(header_error_type).unwrap_or_default(),
                error_message: error_message.unwrap_or_default(),
                body,
            }
        } else {
            InvocationOutcome::Response(body)
        };
        let answer = Answer {
            outcome,
            served_at: in_flight.served_at,
            answered_at,
            poll_index: in_flight.poll_index,
        };
        let _ = in_flight.answer.send(answer);
        respond(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
    }

    /// `POST /init/error`.
    async fn init_error(&self, request: Request<Incoming>) -> Response<Body> {
        let header_error_type = header_str(request.headers(), &ERROR_TYPE);
        let body = read_body(request).await.unwrap_or_default();
        let (error_type, error_message) = error_fields(&body);
        let description = format!(
            "{}: {}",
            error_type.or(header_error_type).unwrap_or_default(),
            error_message.unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned())
        );
        self.init_error.send_replace(Some(description));
        respond(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
    }

    fn violation(
        &self,
        method: &Method,
        path: &str,
        status: StatusCode,
        reason: &str,
    ) -> Response<Body> {
        lock(&self.violations).push(format!("{method} {path}: {reason}"));
        respond(status, format!(r#"{{"errorMessage":"{reason}"}}"#))
    }
}

fn header_str(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// `errorType` and `errorMessage` of an error body, when it is the JSON Lambda expects.
fn error_fields(body: &[u8]) -> (Option<String>, Option<String>) {
    let json: Value = serde_json::from_slice(body).unwrap_or_default();
    let field = |name: &str| json.get(name).and_then(Value::as_str).map(str::to_owned);
    (field("errorType"), field("errorMessage"))
}

/// `YYYY/MM/DD/[$LATEST]<32 hex>`, the shape of Lambda's log stream names.
fn log_stream_name() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() / 86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm, days_from_civil inverted).
    let z = days + 719_468;
    let (era, day_of_era) = (z / 146_097, z % 146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    format!("{year}/{month:02}/{day:02}/[$LATEST]{}", random_hex(32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_api_paths_route_to_their_endpoint() {
        let answer = |request_id: &str, is_error| {
            Some(Route::Answer {
                request_id: request_id.to_owned(),
                is_error,
            })
        };
        let cases = [
            (
                "/2018-06-01/runtime/invocation/next",
                Some(Route::Next),
                "the long poll",
            ),
            (
                "/2018-06-01/runtime/init/error",
                Some(Route::InitError),
                "init error",
            ),
            (
                "/2018-06-01/runtime/invocation/abc-1/response",
                answer("abc-1", false),
                "response",
            ),
            (
                "/2018-06-01/runtime/invocation/abc-1/error",
                answer("abc-1", true),
                "error",
            ),
            (
                "/2018-06-01/runtime/invocation//response",
                None,
                "empty request id",
            ),
            (
                "/2018-06-01/runtime/invocation/abc-1/result",
                None,
                "unknown answer kind",
            ),
            (
                "/2018-06-01/runtime/invocation/a/b/response",
                None,
                "request id with a slash",
            ),
            (
                "/2020-01-01/extension/register",
                Some(Route::ExtensionRegister),
                "Extensions API registration",
            ),
            (
                "/2020-01-01/extension/event/next",
                Some(Route::ExtensionNext),
                "Extensions API next event",
            ),
            (
                "/2020-01-01/extension/init/error",
                None,
                "extension errors are not served",
            ),
            (
                "/2018-06-01/runtime/invocation/next/",
                None,
                "trailing slash",
            ),
        ];
        for (path, expected, reason) in cases {
            assert_eq!(Route::parse(path), expected, "{reason}: {path}");
        }
    }

    #[test]
    fn error_fields_come_from_the_json_body_only() {
        let cases = [
            (
                r#"{"errorType":"E","errorMessage":"m"}"#,
                Some("E"),
                Some("m"),
                "Lambda's shape",
            ),
            (r#"{"errorType":"E"}"#, Some("E"), None, "no message"),
            ("boom", None, None, "not JSON"),
        ];
        for (body, error_type, message, reason) in cases {
            let (got_type, got_message) = error_fields(body.as_bytes());
            assert_eq!(got_type.as_deref(), error_type, "{reason}");
            assert_eq!(got_message.as_deref(), message, "{reason}");
        }
    }
}
