//! The services under test: how to start one, know it is consuming, and
//! stop it.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::rabbit::Rabbit;

/// The queue every candidate consumes: they all are the logical service `pong`.
pub(crate) const QUEUE: &str = "pong.commands";

const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// One implementation of the pong service.
pub(crate) struct Candidate {
    /// Short name, for logs and file names.
    pub(crate) key: &'static str,
    /// What the report calls it.
    pub(crate) label: &'static str,
    program: PathBuf,
    args: Vec<OsString>,
}

impl Candidate {
    /// `program args... URL`.
    pub(crate) fn new(
        key: &'static str,
        label: &'static str,
        program: PathBuf,
        args: Vec<OsString>,
    ) -> Candidate {
        Candidate {
            key,
            label,
            program,
            args,
        }
    }

    /// Starts it against the broker at `url`, its output going to `log`,
    /// and waits until it consumes the queue.
    pub(crate) fn start(&self, url: &str, rabbit: &Rabbit, log: &Path) -> Result<Running, String> {
        if rabbit.consumers(QUEUE)?.unwrap_or(0) > 0 {
            return Err(format!(
                "something already consumes {QUEUE}: stop every other pong service first"
            ));
        }
        let out = File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("cannot share {}: {e}", log.display()))?;
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .arg(url)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.program.display()))?;
        let pid = child.id();
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "{} exited at startup ({status}); see {}",
                    self.label,
                    log.display()
                ));
            }
            if rabbit.consumers(QUEUE)?.unwrap_or(0) > 0 {
                return Ok(Running { child, pid });
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} did not consume {QUEUE} within {START_TIMEOUT:?}; see {}",
                    self.label,
                    log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A started service.
pub(crate) struct Running {
    child: Child,
    /// Its process id, for `/proc`.
    pub(crate) pid: u32,
}

impl Running {
    /// SIGTERM, as an operator would; SIGKILL if it lingers.
    pub(crate) fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let asked = Instant::now();
        while asked.elapsed() < STOP_TIMEOUT {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
