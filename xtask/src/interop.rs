//! `cargo xtask interop`: the interoperability suite with the reference
//! Python implementation, eventail 2.3.6 (`tests/interop`).
//!
//! It gets a broker as `broker up` does, makes sure the venv
//! `target/pyref` has the pinned eventail (see [`crate::pyenv`]), builds
//! what the Rust side runs (the `bus` binary, the `pong` and `ping`
//! examples), then runs the suite, which prints `PASS name` or
//! `FAIL name: reason` per scenario and `N passed, M failed`.

use std::process::{Command, ExitCode};
use std::time::Duration;

use crate::broker::{self, Ready, Target};
use crate::{paths, pyenv, test};

/// `cargo xtask interop [FILTER...]`.
pub(crate) fn run(
    target: &Target,
    timeout: Duration,
    filters: &[String],
) -> Result<ExitCode, String> {
    let ready = broker::ensure(target, timeout)?;
    if let Some(why) = pyenv::missing_python() {
        return Err(format!("cannot run the interoperability suite: {why}"));
    }
    if suite(target, &ready, filters)? {
        Ok(ExitCode::SUCCESS)
    } else {
        Err("the interoperability suite failed".into())
    }
}

/// Sets the suite up and runs it against the broker `ready` at `target`:
/// `Ok(true)` when every scenario passed, `Ok(false)` when one failed, and
/// an error when it could not be set up (venv, install or build).
pub(crate) fn suite(target: &Target, ready: &Ready, filters: &[String]) -> Result<bool, String> {
    let venv = pyenv::ensure()?;
    let build = [
        "build",
        "-p",
        "bus-cli",
        "--bin",
        "bus",
        "-p",
        "bus-service",
        "--example",
        "pong",
        "--example",
        "ping",
    ];
    eprintln!("==> interop: cargo {}", build.join(" "));
    let built = test::cargo()
        .args(build)
        .status()
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    if !built.success() {
        return Err(format!("building the Rust side failed ({built})"));
    }
    let mut cmd: Command = test::cargo();
    cmd.args(["test", "-p", "bus-interop-tests", "--test", "interop", "--"])
        .args(filters)
        .env("BUS_INTEROP_VENV", &venv)
        .env("BUS_INTEROP_REQUIRE_MATCH", "1")
        .env("BUS_INTEROP_BIN_DIR", paths::target_dir().join("debug"));
    test::point_at_broker(&mut cmd, target, ready);
    eprintln!("==> interop: cargo test -p bus-interop-tests --test interop");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run the interoperability suite: {e}"))?;
    Ok(status.success())
}
