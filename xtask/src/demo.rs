//! `cargo xtask demo`: the bus at work, in about fifteen seconds.
//!
//! It gets a broker as `broker up` does, builds the `pong` and `ping`
//! examples and the `bus` command, then runs `bus logger` (started first,
//! so it sees everything), `pong` and `ping`, showing their output live,
//! one line each, behind the program's name. After the watch it sends one
//! command with `bus send` and shows the result, then stops the programs
//! with SIGTERM, newest first, and waits for each.
//!
//! The programs run in process groups of their own, so a Ctrl-C in the
//! terminal reaches only xtask, which stops them in order as above rather
//! than leaving them to race each other. A program that has not exited
//! within [`STOP_TIMEOUT`] of its SIGTERM is killed, and a kill-on-drop
//! guard covers every other way out: the demo leaves nothing running.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::JoinHandle;

use crate::broker::{self, Ready, Target};
use crate::paths;
use crate::test::{cargo, point_at_broker};

/// The command the demo sends, and its payload.
const COMMAND: &str = "pong.EchoMessage";
const PAYLOAD: &str = r#"{"message": "hello from the demo"}"#;

/// How long `bus send` may keep failing because `pong` has not declared
/// its queue yet (exit code 3, unroutable).
const SEND_PATIENCE: Duration = Duration::from_secs(30);
/// How long a program may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the logger may take to show the last records.
const DRAIN: Duration = Duration::from_millis(500);
/// The width of the name column in front of the programs' lines.
const NAME_WIDTH: usize = 6;

/// `cargo xtask demo`.
pub(crate) fn run(target: &Target, timeout: Duration, watch: Duration) -> Result<ExitCode, String> {
    let ready = broker::ensure(target, timeout)?;
    build()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a Tokio runtime: {e}"))?;
    runtime.block_on(show(target, &ready, watch))?;
    eprintln!("demo: done; everything is stopped");
    Ok(ExitCode::SUCCESS)
}

fn build() -> Result<(), String> {
    let args = [
        "build",
        "--package",
        "bus-service",
        "--package",
        "bus-cli",
        "--example",
        "pong",
        "--example",
        "ping",
        "--bin",
        "bus",
    ];
    eprintln!(
        "demo: building pong, ping and bus: cargo {}",
        args.join(" ")
    );
    let status = cargo()
        .args(args)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("building the demo failed ({status})"))
    }
}

/// The binaries `build` made, in the debug profile.
fn binary(path: &[&str]) -> PathBuf {
    path.iter()
        .fold(paths::target_dir().join("debug"), |dir, part| {
            dir.join(part)
        })
}

/// Runs the programs, then stops them whatever happened, a Ctrl-C
/// included.
async fn show(target: &Target, ready: &Ready, watch: Duration) -> Result<(), String> {
    let mut programs = Programs::default();
    let outcome = tokio::select! {
        outcome = steps(&mut programs, target, ready, watch) => outcome,
        why = interrupted() => Err(why),
    };
    if let Err(why) = &outcome {
        eprintln!("demo: {why}; stopping");
    }
    let stopped = programs.stop_all().await;
    outcome.and(stopped)
}

async fn steps(
    programs: &mut Programs,
    target: &Target,
    ready: &Ready,
    watch: Duration,
) -> Result<(), String> {
    eprintln!("demo: starting bus logger, which shows the logs exchange");
    let mut logger = Command::new(binary(&["bus"]));
    let color = if std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
        "always"
    } else {
        "never"
    };
    logger.args(["--color", color, "logger"]);
    let (watching_tx, watching) = tokio::sync::oneshot::channel();
    programs.start(
        "logger",
        logger,
        target,
        ready,
        Some(("watching", watching_tx)),
    )?;
    tokio::time::timeout(Duration::from_secs(30), watching)
        .await
        .map_err(|_| "bus logger did not start watching within 30s".to_owned())?
        .map_err(|_| "bus logger exited before watching".to_owned())?;

    eprintln!("demo: starting pong (answers {COMMAND}) and ping (sends it every second)");
    let mut pong = Command::new(binary(&["examples", "pong"]));
    pong.arg(&target.raw);
    programs.start("pong", pong, target, ready, None)?;
    let mut ping = Command::new(binary(&["examples", "ping"]));
    ping.args(["ping", &target.raw]);
    programs.start("ping", ping, target, ready, None)?;

    eprintln!("demo: watching for {}s", watch.as_secs());
    let until = Instant::now() + watch;
    while Instant::now() < until {
        programs.check_running()?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    send(target, ready).await
}

/// `bus send`, again while nobody listens yet (exit code 3).
async fn send(target: &Target, ready: &Ready) -> Result<(), String> {
    eprintln!("demo: $ bus send {COMMAND} --data '{PAYLOAD}'");
    let deadline = Instant::now() + SEND_PATIENCE;
    loop {
        let mut cmd = Command::new(binary(&["bus"]));
        cmd.args(["send", COMMAND, "--data", PAYLOAD, "--timeout", "10"])
            .stdin(Stdio::null())
            .kill_on_drop(true);
        point_at_broker(cmd.as_std_mut(), target, ready);
        let output = cmd
            .output()
            .await
            .map_err(|e| format!("cannot run bus send: {e}"))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.success() {
            print!("{}", String::from_utf8_lossy(&output.stdout));
            return Ok(());
        }
        if output.status.code() == Some(3) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let why = stderr.lines().last().unwrap_or("no error message");
        return Err(format!("bus send failed ({}): {why}", output.status));
    }
}

/// Resolves on SIGINT (Ctrl-C), SIGTERM or SIGHUP, saying which.
async fn interrupted() -> String {
    let listen = |kind| signal(kind).ok();
    let (mut int, mut term, mut hup) = (
        listen(SignalKind::interrupt()),
        listen(SignalKind::terminate()),
        listen(SignalKind::hangup()),
    );
    tokio::select! {
        Some(()) = recv(&mut int) => "interrupted (SIGINT)".into(),
        Some(()) = recv(&mut term) => "terminated (SIGTERM)".into(),
        Some(()) = recv(&mut hup) => "hung up (SIGHUP)".into(),
        else => std::future::pending().await,
    }
}

async fn recv(stream: &mut Option<Signal>) -> Option<()> {
    match stream {
        Some(stream) => stream.recv().await,
        None => None,
    }
}

/// A program the demo started.
struct Program {
    name: &'static str,
    child: Child,
    /// The tasks copying its output: awaited after it exits, so its last
    /// lines are shown.
    copies: Vec<JoinHandle<()>>,
}

/// The programs running, in the order they started.
#[derive(Default)]
struct Programs(Vec<Program>);

impl Programs {
    /// Starts a program with its output shown behind its name; `signal`
    /// fires when a line of its standard error contains the word.
    fn start(
        &mut self,
        name: &'static str,
        mut cmd: Command,
        target: &Target,
        ready: &Ready,
        signal: Option<(&'static str, tokio::sync::oneshot::Sender<()>)>,
    ) -> Result<(), String> {
        point_at_broker(cmd.as_std_mut(), target, ready);
        // The services' own tracing: warnings only, the bus logs say the rest.
        cmd.env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let mut copies = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            copies.push(tokio::spawn(copy(name, stdout, None)));
        }
        if let Some(stderr) = child.stderr.take() {
            copies.push(tokio::spawn(copy(name, stderr, signal)));
        }
        self.0.push(Program {
            name,
            child,
            copies,
        });
        Ok(())
    }

    /// Fails if a program has exited on its own.
    fn check_running(&mut self) -> Result<(), String> {
        for program in &mut self.0 {
            if let Ok(Some(status)) = program.child.try_wait() {
                return Err(format!("{} exited early ({status})", program.name));
            }
        }
        Ok(())
    }

    /// Stops every program, newest first (the logger last, so it shows the
    /// services stopping); fails if one did not exit successfully.
    async fn stop_all(&mut self) -> Result<(), String> {
        let mut failures = Vec::new();
        while let Some(mut program) = self.0.pop() {
            if self.0.is_empty() {
                // The first program, the logger, gets a moment to show
                // what the others logged while stopping.
                tokio::time::sleep(DRAIN).await;
            }
            if let Err(why) = stop(&mut program).await {
                failures.push(format!("{}: {why}", program.name));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }
}

async fn stop(program: &mut Program) -> Result<(), String> {
    if let Ok(Some(status)) = program.child.try_wait() {
        return Err(format!("had already exited ({status})"));
    }
    eprintln!("demo: stopping {} (SIGTERM)", program.name);
    if let Some(pid) = program.child.id() {
        // std has no way to send SIGTERM, and unsafe code is forbidden.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let waited = tokio::time::timeout(STOP_TIMEOUT, program.child.wait()).await;
    for copy in program.copies.drain(..) {
        let _ = copy.await;
    }
    match waited {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("exited with {status} after SIGTERM")),
        Ok(Err(e)) => Err(format!("cannot wait for it: {e}")),
        Err(_) => {
            let _ = program.child.kill().await;
            Err(format!(
                "still running {}s after SIGTERM; killed",
                STOP_TIMEOUT.as_secs()
            ))
        }
    }
}

/// Copies a stream line by line behind `name`.
async fn copy(
    name: &'static str,
    stream: impl AsyncRead + Unpin,
    mut signal: Option<(&'static str, tokio::sync::oneshot::Sender<()>)>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        signal = match signal.take() {
            Some((word, tx)) if line.contains(word) => {
                let _ = tx.send(());
                None
            }
            other => other,
        };
        println!("{name:>NAME_WIDTH$} | {line}");
    }
}
