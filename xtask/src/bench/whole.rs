//! Whole-process timing: how long `bus publish` and `bus send` take from
//! exec to exit, against eventail's `publish_event.py` and
//! `send_command.py` doing the same.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::load::{COMMAND, Load, PAYLOAD};
use super::median;
use super::python::Venv;

/// Timed runs of each command; one more runs first, untimed, to warm caches.
pub(crate) const RUNS: usize = 20;
/// The event `publish` sends; nothing needs to listen.
const EVENT: &str = "bench.Timing";

/// One timed command.
pub(crate) struct Row {
    /// What was run.
    pub(crate) label: String,
    /// Median wall time in ms, or why it could not be measured.
    pub(crate) median_ms: Result<f64, String>,
}

/// Times each command; eventail's only with a venv.
pub(crate) fn measure(load: &Load, venv: Option<&Venv>, dir: &Path) -> Result<Vec<Row>, String> {
    let payload = dir.join("message.json");
    std::fs::write(&payload, PAYLOAD)
        .map_err(|e| format!("cannot write {}: {e}", payload.display()))?;
    let mut rows = Vec::new();
    let bus = |args: &[&str]| {
        let mut cmd = Command::new(&load.bus);
        cmd.args(args).arg(&payload).env("AMQP_URL", &load.url);
        cmd
    };
    rows.push(row("`bus publish`", bus(&["publish", EVENT])));
    if let Some(venv) = venv {
        rows.push(row(
            "eventail `publish_event.py`",
            eventail(venv, "publish_event.py", &load.url, EVENT, &payload),
        ));
    }
    rows.push(row("`bus send` (to our pong)", bus(&["send", COMMAND])));
    if let Some(venv) = venv {
        rows.push(row(
            "eventail `send_command.py` (to our pong)",
            eventail(venv, "send_command.py", &load.url, COMMAND, &payload),
        ));
    }
    Ok(rows)
}

fn eventail(venv: &Venv, script: &str, url: &str, key: &str, payload: &Path) -> Command {
    let mut cmd = Command::new(venv.python());
    cmd.arg(venv.script(script)).args([url, key]).arg(payload);
    cmd
}

fn row(label: &str, mut cmd: Command) -> Row {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut times = Vec::with_capacity(RUNS);
    let mut failure = None;
    for i in 0..=RUNS {
        let start = Instant::now();
        match cmd.status() {
            Ok(status) if status.success() => {
                if i > 0 {
                    times.push(start.elapsed().as_secs_f64() * 1000.0);
                }
            }
            Ok(status) => failure = Some(format!("exited with {status}")),
            Err(e) => failure = Some(format!("cannot run: {e}")),
        }
        if failure.is_some() {
            break;
        }
    }
    eprintln!("    {label}: {:.1} ms", median(&times));
    Row {
        label: label.to_owned(),
        median_ms: match failure {
            Some(why) => Err(why),
            None => Ok(median(&times)),
        },
    }
}
