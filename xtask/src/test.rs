//! `cargo xtask test`: the whole test suite, against a real broker.
//!
//! It gets a broker as `broker up` does, then runs each step below with
//! `$AMQP_URL` set to the broker URL. Every step runs even when an earlier
//! one failed, so one run shows all failures; the command fails if any
//! step did. The last step is the interoperability suite
//! ([`crate::interop`]); where `python3` is missing it is reported as
//! skipped, on a line that says why, and the other steps decide.
//!
//! Tests that disturb the whole broker (stopping its app, lowering its
//! memory watermark) need no orchestration here: they all live in one test
//! binary and hold `bus_test_support::serial()` while they run, and
//! `cargo test` runs the workspace's test binaries one after another, so
//! while such a test runs no other binary's test is talking to the broker.
//! Tests inside one binary do run in parallel, which the lock covers. A
//! runner that runs several binaries at once (cargo-nextest) would break
//! this.

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use crate::broker::{self, Ready, Target};
use crate::state::Launcher;
use crate::{interop, pyenv};

/// What a step runs.
enum Action {
    /// `cargo` (the cargo running xtask) with these arguments.
    Cargo(&'static [&'static str]),
    /// The interoperability suite, as `cargo xtask interop`. Skipped, on a
    /// line that says why, when `python3` is missing; failed when the venv
    /// or the install fails.
    Interop,
}

/// One step of the suite.
struct Step {
    /// What it checks, for progress and the summary.
    name: &'static str,
    action: Action,
}

/// The steps, in order. New suites (a benchmark smoke run) are appended
/// here once they exist.
const STEPS: &[Step] = &[
    Step {
        name: "unit and integration tests",
        // The interop suite needs its venv and binaries: its own step.
        // `--all-features` brings in bus-service's test kit (`testing`):
        // its own tests, pong's, and the conformance suite.
        action: Action::Cargo(&[
            "test",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--exclude",
            "bus-interop-tests",
        ]),
    },
    Step {
        name: "doc tests",
        action: Action::Cargo(&["test", "--workspace", "--all-features", "--doc"]),
    },
    Step {
        name: "interoperability suite with eventail 2.3.6",
        action: Action::Interop,
    },
];

/// How a step ended.
enum Verdict {
    Passed,
    Failed(String),
    Skipped(String),
}

/// The container name in `docker/compose.yml`: broker tools must run
/// inside it when xtask started the broker with Docker.
const DOCKER_RABBITMQCTL: &str = "docker exec bus-rabbitmq rabbitmqctl";

pub(crate) fn run(target: &Target, timeout: Duration) -> Result<ExitCode, String> {
    let ready = broker::ensure(target, timeout)?;
    let mut failed = Vec::new();
    let mut skipped = Vec::new();
    for step in STEPS {
        let started = Instant::now();
        let verdict = match step.action {
            Action::Cargo(args) => {
                eprintln!("==> {}: cargo {}", step.name, args.join(" "));
                let mut cmd = cargo();
                cmd.args(args);
                point_at_broker(&mut cmd, target, &ready);
                let status = cmd
                    .status()
                    .map_err(|e| format!("cannot run `cargo {}`: {e}", args.join(" ")))?;
                if status.success() {
                    Verdict::Passed
                } else {
                    Verdict::Failed(status.to_string())
                }
            }
            Action::Interop => match pyenv::missing_python() {
                Some(why) => Verdict::Skipped(why),
                None => {
                    eprintln!("==> {}: cargo xtask interop", step.name);
                    match interop::suite(target, &ready, &[]) {
                        Ok(true) => Verdict::Passed,
                        Ok(false) => Verdict::Failed("some scenarios failed".into()),
                        Err(e) => Verdict::Failed(e),
                    }
                }
            },
        };
        let secs = started.elapsed().as_secs();
        match verdict {
            Verdict::Passed => eprintln!("==> {}: passed in {secs}s", step.name),
            Verdict::Failed(why) => {
                eprintln!("==> {}: FAILED in {secs}s ({why})", step.name);
                failed.push(step.name);
            }
            Verdict::Skipped(why) => {
                eprintln!("==> {}: SKIPPED: {why}", step.name);
                skipped.push(step.name);
            }
        }
    }
    if !failed.is_empty() {
        return Err(format!("failed: {}", failed.join(", ")));
    }
    if skipped.is_empty() {
        eprintln!("==> all {} steps passed", STEPS.len());
    } else {
        eprintln!(
            "==> {} steps passed, {} SKIPPED: {}",
            STEPS.len() - skipped.len(),
            skipped.len(),
            skipped.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Points a child process at the broker: `$AMQP_URL`, and `$RABBITMQCTL`
/// when xtask started the broker in Docker.
pub(crate) fn point_at_broker(cmd: &mut Command, target: &Target, ready: &Ready) {
    cmd.env("AMQP_URL", &target.raw);
    if ready.started_by_xtask == Some(Launcher::Docker) && std::env::var_os("RABBITMQCTL").is_none()
    {
        cmd.env("RABBITMQCTL", DOCKER_RABBITMQCTL);
    }
}

/// A command running the cargo that runs xtask (cargo says where it is).
pub(crate) fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}
