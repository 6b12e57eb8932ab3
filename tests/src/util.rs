//! Small helpers shared by the modules: random ids without a `rand` dependency, and a lock that shrugs
//! off poisoning (a panicking test must still be able to print what the harness saw).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// 64 random-enough bits: each `RandomState` is freshly keyed; the counter and the clock keep two calls
/// in the same instant apart.
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(unix_nanos());
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// `len` random lowercase hex digits.
pub(crate) fn random_hex(len: usize) -> String {
    let mut out = String::with_capacity(len + 16);
    while out.len() < len {
        out.push_str(&format!("{:016x}", random_u64()));
    }
    out.truncate(len);
    out
}

/// A version-4-shaped UUID, the form of Lambda's request ids.
pub(crate) fn uuid() -> String {
    let hex = random_hex(32);
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

pub(crate) fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos())
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Lines for an error message, indented: all of them when there are few, else the first `HEAD` (where a
/// panic message is, before its backtrace) and the last `TAIL`.
pub(crate) fn excerpt(lines: &[String]) -> String {
    const HEAD: usize = 10;
    const TAIL: usize = 30;
    let mut out = String::new();
    let mut push = |line: &str| {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    };
    if lines.len() <= HEAD + TAIL {
        lines.iter().for_each(|line| push(line));
    } else {
        lines[..HEAD].iter().for_each(|line| push(line));
        push(&format!(
            "... {} lines left out ...",
            lines.len() - HEAD - TAIL
        ));
        lines[lines.len() - TAIL..]
            .iter()
            .for_each(|line| push(line));
    }
    out
}

/// The first of `lines` (a reader's lines so far) that matches `predicate`, waiting up to `timeout`
/// for one to be read.
pub(crate) async fn first_matching(
    lines: &tokio::sync::watch::Receiver<Vec<String>>,
    predicate: impl Fn(&str) -> bool,
    timeout: std::time::Duration,
) -> Option<String> {
    let mut lines = lines.clone();
    let found = tokio::time::timeout(
        timeout,
        lines.wait_for(|lines| lines.iter().any(|line| predicate(line))),
    );
    match found.await {
        Ok(Ok(lines)) => lines.iter().find(|line| predicate(line)).cloned(),
        _ => None,
    }
}

/// What a process wrote, for an error message: the ends of its stderr and stdout.
pub(crate) fn output_excerpt(stderr: &[String], stdout: &[String]) -> String {
    format!(
        "its stderr:\n{}its stdout:\n{}",
        excerpt(stderr),
        excerpt(stdout)
    )
}
