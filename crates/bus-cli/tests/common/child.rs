//! A long-running process (`bus logger`, `bus monitor`)
//! watched line by line, with deadlines, and killed if the test ends first.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Out,
    Err,
}

/// A running process and everything it printed so far.
pub(crate) struct Watched {
    child: Child,
    lines: Receiver<(Stream, String)>,
    pub(crate) out: Vec<String>,
    pub(crate) err: Vec<String>,
}

fn pump(
    stream: impl Read + Send + 'static,
    which: Stream,
    tx: std::sync::mpsc::Sender<(Stream, String)>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send((which, line)).is_err() {
                break;
            }
        }
    });
}

impl Watched {
    /// Starts `cmd` with piped output.
    pub(crate) fn spawn(mut cmd: Command) -> Watched {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().expect("spawn");
        let (tx, lines) = channel();
        pump(
            child.stdout.take().expect("stdout"),
            Stream::Out,
            tx.clone(),
        );
        pump(child.stderr.take().expect("stderr"), Stream::Err, tx);
        Watched {
            child,
            lines,
            out: Vec::new(),
            err: Vec::new(),
        }
    }

    /// Starts the built `bus` with `args`, pointed at the test broker.
    pub(crate) fn bus(args: &[&str]) -> Watched {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bus"));
        cmd.args(args)
            .env("AMQP_URL", bus_test_support::amqp_url())
            .env("RUST_BACKTRACE", "1")
            .env_remove("RUST_LOG");
        Watched::spawn(cmd)
    }

    /// The process id.
    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    fn take(&mut self, timeout: Duration) -> Option<(Stream, String)> {
        match self.lines.recv_timeout(timeout) {
            Ok((which, line)) => {
                match which {
                    Stream::Out => self.out.push(line.clone()),
                    Stream::Err => self.err.push(line.clone()),
                }
                Some((which, line))
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Waits for a line of `which` that contains `needle`; panics with
    /// everything printed so far after `timeout`.
    #[track_caller]
    pub(crate) fn wait_for(&mut self, which: Stream, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let seen = |w: &Watched| {
            let lines = if which == Stream::Out { &w.out } else { &w.err };
            lines.iter().find(|l| l.contains(needle)).cloned()
        };
        loop {
            if let Some(line) = seen(self) {
                return line;
            }
            let now = Instant::now();
            let exited = matches!(self.child.try_wait(), Ok(Some(_)));
            if now >= deadline || (exited && self.take(Duration::from_millis(200)).is_none()) {
                panic!(
                    "{needle:?} not seen on {which:?} within {timeout:?} (exited: {exited})\n--- stdout\n{}\n--- stderr\n{}",
                    self.out.join("\n"),
                    self.err.join("\n")
                );
            }
            self.take((deadline - now).min(Duration::from_millis(100)));
        }
    }

    /// Waits for the process to exit by itself, collecting its output;
    /// kills it and panics after `timeout`.
    #[track_caller]
    pub(crate) fn finish(mut self, timeout: Duration) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "still running after {timeout:?}\n--- stdout\n{}\n--- stderr\n{}",
                    self.out.join("\n"),
                    self.err.join("\n")
                );
            }
            self.take(Duration::from_millis(20));
        };
        // The pipes close once the process is gone: drain them.
        while self.take(Duration::from_secs(2)).is_some() {}
        (status, self.out.join("\n"), self.err.join("\n"))
    }

    /// Sends SIGTERM, as `kill` would.
    pub(crate) fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
