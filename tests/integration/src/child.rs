//! The echo service as a child process (the `fault-echo` binary), to kill
//! it or send it signals. The child is killed when the handle drops, so a
//! failing test leaves no process behind.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// A running `fault-echo`.
#[derive(Debug)]
pub struct EchoProcess {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    pid: u32,
}

/// How a `fault-echo` is started.
#[derive(Debug, Clone)]
pub struct EchoOptions {
    /// Time each command takes.
    pub delay: Duration,
    /// Prefetch.
    pub prefetch: u16,
    /// Stop timeout.
    pub stop_timeout: Duration,
}

impl EchoProcess {
    /// Starts `exe` (the test's `env!("CARGO_BIN_EXE_fault-echo")`) as
    /// the echo service `service` on `url`.
    pub fn spawn(exe: &str, url: &str, service: &str, options: &EchoOptions) -> EchoProcess {
        let mut child = Command::new(exe)
            .arg(service)
            .arg(options.delay.as_millis().to_string())
            .arg(options.prefetch.to_string())
            .arg(options.stop_timeout.as_millis().to_string())
            .env("AMQP_URL", url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start fault-echo");
        let pid = child.id().expect("child pid");
        let stdout = BufReader::new(child.stdout.take().expect("child stdout")).lines();
        EchoProcess { child, stdout, pid }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for a line of output starting with `prefix`; panics after
    /// `timeout` or if the output ends first.
    pub async fn wait_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let wait = async {
            while let Some(line) = self.stdout.next_line().await.expect("read child output") {
                if line.starts_with(prefix) {
                    return line;
                }
            }
            panic!("fault-echo {} ended before printing {prefix:?}", self.pid);
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or_else(|_| panic!("fault-echo {} did not print {prefix:?} in time", self.pid))
    }

    /// Sends `signal` (`TERM`, `INT`, `HUP`, `KILL`) with `kill(1)`.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid);
    }

    /// Waits for the process to exit; panics after `timeout`. The rest of
    /// its output is read meanwhile, so it never blocks on a full pipe.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let wait = async {
            let drain = async { while let Ok(Some(_)) = self.stdout.next_line().await {} };
            let (status, ()) = tokio::join!(self.child.wait(), drain);
            status.expect("wait for fault-echo")
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or_else(|_| panic!("fault-echo {} did not exit within {timeout:?}", self.pid))
    }
}
