//! A program a test runs that is not a Lambda function (a tool such as `tracekit-view`): started with
//! its arguments, its stdout and stderr read line by line as it writes them, killed on drop.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::{oneshot, watch};

use crate::util::first_matching;
use crate::{Error, Result};

/// A running program. Killed when dropped; if the thread is panicking (a failed assertion), its
/// output is printed first.
#[derive(Debug)]
pub struct Program {
    name: String,
    stdout: watch::Receiver<Vec<String>>,
    stderr: watch::Receiver<Vec<String>>,
    exit: watch::Receiver<Option<ExitStatus>>,
    /// Dropping this makes the task that owns the child kill it.
    _kill: oneshot::Sender<()>,
}

impl Program {
    /// Starts `binary` with `args`, stdin closed. Must be called inside a Tokio runtime.
    pub fn spawn<S: AsRef<OsStr>>(binary: &Path, args: &[S]) -> Result<Program> {
        let mut command = Command::new(binary);
        command.args(args);
        Program::start(command)
    }

    /// Starts `command` as the caller set it up (arguments, environment, directory), stdin
    /// closed. Must be called inside a Tokio runtime.
    pub fn start(mut command: Command) -> Result<Program> {
        let program = command.as_std().get_program();
        let name = Path::new(program).file_name().unwrap_or(program);
        let name = name.to_string_lossy().into_owned();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(Error::io(format!("starting {name}")))?;
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
            exit_tx.send_replace(status.ok());
        });
        Ok(Program {
            name,
            stdout,
            stderr,
            exit,
            _kill: kill,
        })
    }

    /// The lines written to stdout so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.borrow().clone()
    }

    /// The lines written to stderr so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.borrow().clone()
    }

    /// The exit status, once the program has exited.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        *self.exit.borrow()
    }

    /// Waits until the program exits and its output has been read; fails after `timeout`.
    pub async fn wait_for_exit(&self, timeout: Duration) -> Result<ExitStatus> {
        let mut exit = self.exit.clone();
        let (mut stdout, mut stderr) = (self.stdout.clone(), self.stderr.clone());
        let finished = async {
            let status = exit.wait_for(Option::is_some).await.ok().and_then(|s| *s);
            // `wait_for` with a predicate that never holds returns once the reader task has finished.
            let _ = stdout.wait_for(|_| false).await;
            let _ = stderr.wait_for(|_| false).await;
            status
        };
        match tokio::time::timeout(timeout, finished).await {
            Ok(Some(status)) => Ok(status),
            _ => Err(Error::Timeout(format!(
                "{} did not exit within {timeout:?}\n{}",
                self.name,
                self.output_excerpt()
            ))),
        }
    }

    /// Waits until a stdout line matches `predicate` (or one already has) and returns it.
    pub async fn wait_for_stdout(
        &self,
        predicate: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String> {
        self.wait_for_line(&self.stdout, "stdout", predicate, timeout)
            .await
    }

    /// [`Program::wait_for_stdout`] for stderr.
    pub async fn wait_for_stderr(
        &self,
        predicate: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String> {
        self.wait_for_line(&self.stderr, "stderr", predicate, timeout)
            .await
    }

    async fn wait_for_line(
        &self,
        lines: &watch::Receiver<Vec<String>>,
        which: &str,
        predicate: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String> {
        match first_matching(lines, predicate, timeout).await {
            Some(line) => Ok(line),
            None => Err(Error::Timeout(format!(
                "{} wrote no matching {which} line within {timeout:?} (exit status: {:?})\n{}",
                self.name,
                self.exit_status(),
                self.output_excerpt()
            ))),
        }
    }

    fn output_excerpt(&self) -> String {
        crate::util::output_excerpt(&self.stderr.borrow(), &self.stdout.borrow())
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {} ---\n{}", self.name, self.output_excerpt());
        }
    }
}

/// Reads lines from a child's pipe in a task; the receiver sees every line read so far and is closed at
/// end of file.
pub(crate) fn capture_lines(
    pipe: Option<impl AsyncRead + Unpin + Send + 'static>,
) -> watch::Receiver<Vec<String>> {
    let (lines_tx, lines) = watch::channel(Vec::new());
    if let Some(pipe) = pipe {
        tokio::spawn(async move {
            let mut reader = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                lines_tx.send_modify(|lines| lines.push(line));
            }
        });
    }
    lines
}
