//! Starting and stopping a broker on this machine.

use std::process::{Command, Stdio};

use bus_core::BrokerUrl;

use crate::paths;
use crate::state::Launcher;

/// Picks how to start a broker: Docker if an engine runs, else a local
/// `rabbitmq-server`.
pub(crate) fn choose() -> Result<Launcher, String> {
    if docker_engine_runs() {
        Ok(Launcher::Docker)
    } else if paths::on_path("rabbitmq-server") {
        Ok(Launcher::LocalServer)
    } else {
        Err(
            "no broker, no Docker engine and no rabbitmq-server on PATH: \
             install RabbitMQ (Debian/Ubuntu: apt-get install rabbitmq-server) \
             or start Docker, then run `cargo xtask broker up`"
                .into(),
        )
    }
}

/// `docker info` fails when only the client is installed.
fn docker_engine_runs() -> bool {
    paths::on_path("docker") && succeeds(quiet_command("docker", &["info"]))
}

/// Starts a broker for `url`. Returns the launcher when xtask now owns a
/// broker that `down` should stop, or `None` when it only restarted the
/// application of a node that was already running.
pub(crate) fn start(launcher: Launcher, url: &BrokerUrl) -> Result<Option<Launcher>, String> {
    match launcher {
        Launcher::Docker => {
            let compose = paths::compose_file();
            let mut cmd = Command::new("docker");
            cmd.arg("compose")
                .arg("-f")
                .arg(&compose)
                .args(["up", "--detach"])
                .env("BUS_AMQP_PORT", url.port.to_string());
            run_visible(cmd, "docker compose up --detach")?;
            Ok(Some(launcher))
        }
        Launcher::LocalServer => match local_node() {
            LocalNode::AppStopped => {
                let mut cmd = Command::new("rabbitmqctl");
                cmd.arg("start_app");
                run_visible(cmd, "rabbitmqctl start_app")?;
                eprintln!(
                    "broker: the local RabbitMQ node was up with its app stopped; started the app"
                );
                Ok(None)
            }
            LocalNode::Running => Err(format!(
                "a local RabbitMQ node is running but does not answer at {}: \
                 point AMQP_URL at its port",
                url.address()
            )),
            LocalNode::Down => {
                let mut cmd = Command::new("rabbitmq-server");
                cmd.arg("-detached");
                if url.port != 5672 {
                    cmd.env("RABBITMQ_NODE_PORT", url.port.to_string());
                }
                run_visible(cmd, "rabbitmq-server -detached")?;
                Ok(Some(launcher))
            }
        },
    }
}

/// The state of this machine's default RabbitMQ node.
enum LocalNode {
    /// No node runs: start one.
    Down,
    /// The Erlang node runs without the RabbitMQ app, as a test that called
    /// `rabbitmqctl stop_app` and died leaves it: a second node could not
    /// start, but `start_app` brings this one back.
    AppStopped,
    /// The node and its app run, so it listens elsewhere than the URL says.
    Running,
}

fn local_node() -> LocalNode {
    if !paths::on_path("rabbitmqctl") || !succeeds(quiet_command("rabbitmqctl", &["-q", "ping"])) {
        return LocalNode::Down;
    }
    if succeeds(quiet_command(
        "rabbitmq-diagnostics",
        &["-q", "check_running"],
    )) {
        LocalNode::Running
    } else {
        LocalNode::AppStopped
    }
}

fn quiet_command(program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args).stdout(Stdio::null()).stderr(Stdio::null());
    cmd
}

fn succeeds(mut cmd: Command) -> bool {
    cmd.status().is_ok_and(|s| s.success())
}

/// Stops a broker xtask started.
pub(crate) fn stop(launcher: Launcher) -> Result<(), String> {
    match launcher {
        Launcher::Docker => {
            let mut cmd = Command::new("docker");
            cmd.arg("compose")
                .arg("-f")
                .arg(paths::compose_file())
                .arg("down");
            run_visible(cmd, "docker compose down")
        }
        Launcher::LocalServer => {
            let mut cmd = Command::new("rabbitmqctl");
            cmd.arg("stop");
            run_visible(cmd, "rabbitmqctl stop")
        }
    }
}

/// Runs a command with its output shown, as `shown` in messages.
fn run_visible(mut cmd: Command, shown: &str) -> Result<(), String> {
    eprintln!("$ {shown}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({status})"))
    }
}
