//! Shared by the `bus` end-to-end tests: running the built binary, watching
//! a long-running one, and setting the broker up around it.
//!
//! Each test binary uses only part of this, hence `dead_code` is allowed.
#![allow(dead_code)]

pub(crate) mod broker;
pub(crate) mod child;

use std::process::Output;
use std::time::Duration;

/// How long any one `bus` run may take before the test fails.
pub(crate) const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The built `bus`, pointed at the test broker, without colour.
pub(crate) fn bus() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_bus"));
    cmd.env("AMQP_URL", bus_test_support::amqp_url())
        // A panic would print a backtrace: errors must never.
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LOG")
        .env_remove("CLICOLOR_FORCE")
        .timeout(RUN_TIMEOUT);
    cmd
}

/// Runs `bus` off the async runtime (tests may run services on it meanwhile).
pub(crate) async fn run(mut cmd: assert_cmd::Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("run bus"))
        .await
        .expect("join")
}

/// Standard output as text.
pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error as text.
pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code, showing both outputs when it differs.
#[track_caller]
pub(crate) fn assert_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

/// Asserts a failure reported the way every error must be: exit `code`,
/// exactly one line on standard error that contains `needle`, starting with
/// `bus: error:`, and no backtrace.
#[track_caller]
pub(crate) fn assert_error(out: &Output, code: i32, needle: &str) {
    assert_code(out, code);
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected on stderr:\n{err}");
    assert!(lines[0].starts_with("bus: error: "), "{err}");
    assert!(lines[0].contains(needle), "{needle:?} not in:\n{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

/// The NDJSON records of standard output.
#[track_caller]
pub(crate) fn records(out: &Output) -> Vec<serde_json::Value> {
    ndjson(&stdout(out))
}

/// The records of NDJSON text.
#[track_caller]
pub(crate) fn ndjson(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}
