//! `cargo xtask test`: the whole test suite, against a real broker.
//!
//! It gets a broker as `broker up` does, then runs each step below with
//! `$AMQP_URL` set to the broker URL. Every step runs even when an earlier
//! one failed, so one run shows all failures; the command fails if any
//! step did.
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

use crate::broker::{self, Target};
use crate::state::Launcher;

/// One step of the suite.
struct Step {
    /// What it checks, for progress and the summary.
    name: &'static str,
    /// The program; `cargo` means the cargo running xtask.
    program: &'static str,
    args: &'static [&'static str],
}

/// The steps, in order. New suites (the Python interop suite, a benchmark
/// smoke run) are appended here once they exist.
const STEPS: &[Step] = &[
    Step {
        name: "unit and integration tests",
        program: "cargo",
        args: &["test", "--workspace", "--all-targets"],
    },
    Step {
        name: "doc tests",
        program: "cargo",
        args: &["test", "--workspace", "--doc"],
    },
];

/// The container name in `docker/compose.yml`: broker tools must run
/// inside it when xtask started the broker with Docker.
const DOCKER_RABBITMQCTL: &str = "docker exec bus-rabbitmq rabbitmqctl";

pub(crate) fn run(target: &Target, timeout: Duration) -> Result<ExitCode, String> {
    let ready = broker::ensure(target, timeout)?;
    let mut failed = Vec::new();
    for step in STEPS {
        let shown = format!("{} {}", step.program, step.args.join(" "));
        eprintln!("==> {}: {shown}", step.name);
        let started = Instant::now();
        let mut cmd = command(step.program);
        cmd.args(step.args).env("AMQP_URL", &target.raw);
        if ready.started_by_xtask == Some(Launcher::Docker)
            && std::env::var_os("RABBITMQCTL").is_none()
        {
            cmd.env("RABBITMQCTL", DOCKER_RABBITMQCTL);
        }
        let status = cmd
            .status()
            .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
        let secs = started.elapsed().as_secs();
        if status.success() {
            eprintln!("==> {}: passed in {secs}s", step.name);
        } else {
            eprintln!("==> {}: FAILED in {secs}s ({status})", step.name);
            failed.push(step.name);
        }
    }
    if failed.is_empty() {
        eprintln!("==> all {} steps passed", STEPS.len());
        Ok(ExitCode::SUCCESS)
    } else {
        Err(format!("failed: {}", failed.join(", ")))
    }
}

fn command(program: &str) -> Command {
    match program {
        // `cargo xtask` runs under cargo, which says where it is.
        "cargo" => Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())),
        other => Command::new(other),
    }
}
