//! Runs the scenarios a few at a time and reports one line for each.
//!
//! Each scenario runs on a thread of its own, named after it, with a tokio
//! runtime of its own, under an overall deadline. A scenario fails by
//! panicking (assertions, or a wait that timed out, whose message carries
//! the output of the programs involved): the panic hook keeps the message,
//! the `FAIL` line shows its first line, and the full message is printed
//! at the end.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// A scenario's body.
pub(crate) type Body = fn() -> Pin<Box<dyn Future<Output = ()>>>;

/// A named scenario.
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    pub(crate) body: Body,
}

/// `scenario!("name", path::to::async_fn)`.
macro_rules! scenario {
    ($name:literal, $body:path) => {
        $crate::runner::Scenario {
            name: $name,
            body: || Box::pin($body()),
        }
    };
}
pub(crate) use scenario;

/// How long one scenario may take in all. Its own waits are shorter: this
/// only catches a scenario stuck where no wait has a deadline.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(240);

/// Panic messages by thread name.
static PANICS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// Keeps panic messages for the report instead of printing them.
pub(crate) fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current().name().unwrap_or("?").to_owned();
        let message = panic_text(info.payload());
        let location = info
            .location()
            .map(|l| format!(" (at {}:{})", l.file(), l.line()))
            .unwrap_or_default();
        PANICS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((thread, format!("{message}{location}")));
    }));
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic".to_owned())
}

/// Runs `f`, turning a panic into its message.
pub(crate) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| panic_text(&*p))
}

fn panics_of(name: &str) -> Vec<String> {
    PANICS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(thread, _)| thread == name)
        .map(|(_, message)| message.clone())
        .collect()
}

/// The outcome of one scenario.
struct Outcome {
    name: &'static str,
    failure: Option<String>,
    took: Duration,
}

/// Runs one scenario on the current thread (named after it).
fn run_one(scenario: &Scenario) -> Option<String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(format!("{} (worker)", scenario.name))
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => return Some(format!("cannot start a tokio runtime: {e}")),
    };
    let body = scenario.body;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async move {
            tokio::time::timeout(SCENARIO_TIMEOUT, body())
                .await
                .map_err(|_| format!("did not finish within {SCENARIO_TIMEOUT:?}"))
        })
    }));
    // Services still running on the runtime get a moment to close their
    // connections; the rest is dropped.
    runtime.shutdown_timeout(Duration::from_secs(5));
    match result {
        Ok(Ok(())) => None,
        Ok(Err(timeout)) => Some(timeout),
        Err(_) => Some(
            panics_of(scenario.name)
                .into_iter()
                .next()
                .unwrap_or_else(|| "panicked".to_owned()),
        ),
    }
}

/// Runs `scenarios`, `jobs` at a time; prints `PASS name` or
/// `FAIL name: reason` as each ends, the details of failures, then
/// `N passed, M failed`. Returns whether all passed.
pub(crate) fn run_all(scenarios: Vec<Scenario>, jobs: usize) -> bool {
    let started = Instant::now();
    let total = scenarios.len();
    let scenarios = Arc::new(scenarios);
    let next = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel::<Outcome>();
    for _ in 0..jobs.clamp(1, total.max(1)) {
        let (scenarios, next, tx) = (Arc::clone(&scenarios), Arc::clone(&next), tx.clone());
        std::thread::spawn(move || {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(scenario) = scenarios.get(i) else {
                    break;
                };
                let start = Instant::now();
                let scenarios = Arc::clone(&scenarios);
                let failure = std::thread::Builder::new()
                    .name(scenario.name.to_owned())
                    .spawn(move || run_one(&scenarios[i]))
                    .map_err(|e| format!("cannot start a thread: {e}"))
                    .and_then(|t| t.join().map_err(|_| "the runner panicked".to_owned()))
                    .unwrap_or_else(Some);
                let outcome = Outcome {
                    name: scenario.name,
                    failure,
                    took: start.elapsed(),
                };
                if tx.send(outcome).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let mut failures: HashMap<&'static str, String> = HashMap::new();
    let mut order = Vec::new();
    let mut passed = 0;
    let mut took: Vec<(Duration, &str)> = Vec::new();
    for outcome in rx {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        match &outcome.failure {
            None => {
                passed += 1;
                let _ = writeln!(out, "PASS {}", outcome.name);
            }
            Some(message) => {
                let reason = message.lines().next().unwrap_or_default();
                let reason: String = reason.chars().take(300).collect();
                let _ = writeln!(out, "FAIL {}: {reason}", outcome.name);
                failures.insert(outcome.name, message.clone());
                order.push(outcome.name);
            }
        }
        let _ = out.flush();
        took.push((outcome.took, outcome.name));
    }
    for name in &order {
        eprintln!("\n---- {name} ----\n{}", failures[name]);
    }
    took.sort_unstable_by(|a, b| b.cmp(a));
    let slowest: Vec<String> = took
        .iter()
        .take(3)
        .map(|(d, name)| format!("{name} {:.1} s", d.as_secs_f64()))
        .collect();
    eprintln!(
        "interop: {total} scenarios in {:.1} s, {jobs} at a time (slowest: {})",
        started.elapsed().as_secs_f64(),
        slowest.join(", ")
    );
    let failed = total - passed;
    println!("{passed} passed, {failed} failed");
    failed == 0
}
