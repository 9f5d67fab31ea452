//! Programs the scenarios run: Python services, eventail's tools, `bus`,
//! our examples. Each is watched line by line, waited for with deadlines,
//! and killed if the scenario ends first.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// How long one expected line or exit may take. Generous: the suite runs
/// on loaded 2-core machines, and a failing wait costs only time.
pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Out,
    Err,
}

/// A running program and everything it printed so far.
pub(crate) struct Proc {
    label: String,
    child: Child,
    lines: mpsc::UnboundedReceiver<(Stream, String)>,
    out: Vec<String>,
    err: Vec<String>,
}

/// How a program ended and what it printed.
pub(crate) struct Finished {
    pub(crate) status: ExitStatus,
    pub(crate) out: String,
    pub(crate) err: String,
}

impl Finished {
    /// Both outputs, for failure messages.
    pub(crate) fn transcript(&self) -> String {
        format!(
            "exit status: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.out, self.err
        )
    }
}

fn pump(
    stream: impl Read + Send + 'static,
    which: Stream,
    tx: mpsc::UnboundedSender<(Stream, String)>,
) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    let text = text.trim_end_matches(['\n', '\r']).to_owned();
                    if tx.send((which, text)).is_err() {
                        break;
                    }
                }
            }
        }
    });
}

impl Proc {
    /// Starts `cmd` with piped output; `label` names it in failure messages.
    pub(crate) fn spawn(label: &str, mut cmd: Command) -> Proc {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {label} ({cmd:?}): {e}"));
        let (tx, lines) = mpsc::unbounded_channel();
        if let Some(out) = child.stdout.take() {
            pump(out, Stream::Out, tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            pump(err, Stream::Err, tx);
        }
        Proc {
            label: label.to_owned(),
            child,
            lines,
            out: Vec::new(),
            err: Vec::new(),
        }
    }

    /// The process id.
    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    /// Everything printed so far, for failure messages.
    pub(crate) fn transcript(&self) -> String {
        format!(
            "{} (pid {})\n--- stdout\n{}\n--- stderr\n{}",
            self.label,
            self.child.id(),
            self.out.join("\n"),
            self.err.join("\n")
        )
    }

    fn store(&mut self, (which, line): (Stream, String)) {
        match which {
            Stream::Out => self.out.push(line),
            Stream::Err => self.err.push(line),
        }
    }

    /// Takes whatever has been printed, without waiting.
    fn drain(&mut self) {
        while let Ok(item) = self.lines.try_recv() {
            self.store(item);
        }
    }

    /// Waits up to `timeout` for one more line; `false` when none came
    /// (timeout, or both pipes closed).
    async fn take(&mut self, timeout: Duration) -> bool {
        match tokio::time::timeout(timeout, self.lines.recv()).await {
            Ok(Some(item)) => {
                self.store(item);
                true
            }
            Ok(None) | Err(_) => false,
        }
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits for a line of `which` for which `accept` gives a value, among
    /// all lines printed since the start; panics with the transcript after
    /// `timeout` or when the program ends without printing it. `what`
    /// describes the line in that message.
    pub(crate) async fn wait_line<T>(
        &mut self,
        which: Stream,
        what: &str,
        timeout: Duration,
        mut accept: impl FnMut(&str) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        let mut checked = 0;
        loop {
            self.drain();
            let lines = if which == Stream::Out {
                &self.out
            } else {
                &self.err
            };
            for line in &lines[checked..] {
                if let Some(value) = accept(line) {
                    return value;
                }
            }
            checked = lines.len();
            let now = Instant::now();
            let exited = self.exited();
            if now >= deadline || (exited && !self.take(Duration::from_millis(300)).await) {
                panic!(
                    "{} did not print {what} on {which:?} within {timeout:?} (exited: {exited})\n{}",
                    self.label,
                    self.transcript()
                );
            }
            self.take((deadline - now).min(Duration::from_millis(100)))
                .await;
        }
    }

    /// Waits for a line of standard output that contains `needle`.
    pub(crate) async fn wait_for(&mut self, needle: &str) -> String {
        let what = format!("{needle:?}");
        self.wait_line(Stream::Out, &what, WAIT, |line| {
            line.contains(needle).then(|| line.to_owned())
        })
        .await
    }

    /// Waits for a line of standard error that contains `needle`.
    pub(crate) async fn wait_for_err(&mut self, needle: &str) -> String {
        let what = format!("{needle:?}");
        self.wait_line(Stream::Err, &what, WAIT, |line| {
            line.contains(needle).then(|| line.to_owned())
        })
        .await
    }

    /// Waits for a line `TAG {json}` of standard output whose JSON
    /// satisfies `accept`, and returns the JSON.
    pub(crate) async fn wait_tagged(
        &mut self,
        tag: &str,
        accept: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        self.wait_line(Stream::Out, tag, WAIT, |line| {
            tagged(line, tag).filter(|v| accept(v))
        })
        .await
    }

    /// The lines of standard output printed so far.
    pub(crate) fn stdout_lines(&mut self) -> &[String] {
        self.drain();
        &self.out
    }

    /// Waits for the program to exit by itself; kills it and panics after
    /// `timeout`.
    pub(crate) async fn finish(mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.drain();
                panic!(
                    "{} still running after {timeout:?}\n{}",
                    self.label,
                    self.transcript()
                );
            }
            self.take(Duration::from_millis(50)).await;
        };
        // The pipes close once the process is gone: drain them.
        while self.take(Duration::from_secs(2)).await {}
        Finished {
            status,
            out: self.out.join("\n"),
            err: self.err.join("\n"),
        }
    }

    /// Sends SIGTERM, as a supervisor would.
    pub(crate) fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// SIGTERM, then [`Proc::finish`].
    pub(crate) async fn stop(self) -> Finished {
        self.terminate();
        self.finish(WAIT).await
    }

    /// [`Proc::stop`], and panics unless the program exits with success:
    /// services must stop cleanly on SIGTERM.
    pub(crate) async fn stop_cleanly(self) -> Finished {
        let label = self.label.clone();
        let finished = self.stop().await;
        assert!(
            finished.status.success(),
            "{label} did not stop cleanly on SIGTERM\n{}",
            finished.transcript()
        );
        finished
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs a program to its end (at most [`WAIT`]).
pub(crate) async fn run(label: &str, cmd: Command) -> Finished {
    Proc::spawn(label, cmd).finish(WAIT).await
}

/// Runs a program and panics, with its transcript, unless it exits with `code`.
pub(crate) async fn run_expecting(label: &str, cmd: Command, code: i32) -> Finished {
    let finished = run(label, cmd).await;
    assert_eq!(
        finished.status.code(),
        Some(code),
        "{label} exited otherwise than with {code}\n{}",
        finished.transcript()
    );
    finished
}

/// The JSON of a line `TAG {json}` printed by a Python service of the suite.
pub(crate) fn tagged(line: &str, tag: &str) -> Option<serde_json::Value> {
    let rest = line.strip_prefix(tag)?.strip_prefix(' ')?;
    serde_json::from_str(rest).ok()
}

/// The records of NDJSON text (`bus --json`).
#[track_caller]
pub(crate) fn ndjson(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Writes a payload file `name` (whose extension tells its format) in `dir`.
pub(crate) fn payload_file(
    dir: &tempfile::TempDir,
    name: &str,
    json: &serde_json::Value,
) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, json.to_string()).expect("write a payload file");
    path.to_string_lossy().into_owned()
}
