//! Driving the test broker from the side, as an operator would.
//!
//! Each function runs `rabbitmqctl` and waits for it. It returns what the
//! command printed, or an error naming the command and carrying its stderr.
//! Set `$RABBITMQCTL` to run another command line instead, such as
//! `docker exec bus-rabbitmq rabbitmqctl` for a broker in a container
//! (`cargo xtask test` sets it when it started the broker that way), and
//! `$RABBITMQCTL_NODE` to drive another node than the default one (it is
//! passed as `-n NODE`), such as a private node started for experiments
//! that stop the broker.
//!
//! Commands on queues and policies apply to the virtual host of
//! [`crate::amqp_url`].
//!
//! Each call boots an Erlang VM and takes most of a second: prefer AMQP for
//! what a client can do itself, and keep these for what only an operator
//! can (policies, forced closes, stopping the broker).

use std::process::Command;
use std::time::{Duration, Instant};

use bus_core::BrokerUrl;

use crate::broker::configured_url;

/// How long [`start_app`] waits for AMQP connections to be accepted again.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `rabbitmqctl` (or `$RABBITMQCTL`) with `args` and returns its stdout.
pub fn run(args: &[&str]) -> Result<String, String> {
    let command_line = std::env::var("RABBITMQCTL").unwrap_or_else(|_| "rabbitmqctl".into());
    let mut words = command_line.split_whitespace();
    let program = words.next().unwrap_or("rabbitmqctl");
    let node: Vec<String> = match std::env::var("RABBITMQCTL_NODE") {
        Ok(node) if !node.is_empty() => vec!["-n".into(), node],
        _ => Vec::new(),
    };
    let shown = format!("{command_line} {} {}", node.join(" "), args.join(" "));
    let output = Command::new(program)
        .args(words)
        .args(&node)
        .args(args)
        .output()
        .map_err(|e| format!("{shown}: cannot run {program}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let detail = if stderr.trim().is_empty() {
            stdout
        } else {
            stderr
        };
        Err(format!("{shown}: {} ({})", detail.trim(), output.status))
    }
}

/// Runs a command scoped to the virtual host of the test broker URL.
fn run_in_vhost(args: &[&str]) -> Result<String, String> {
    let vhost = vhost();
    let mut all = vec!["-p", vhost.as_str()];
    all.extend_from_slice(args);
    run(&all)
}

fn vhost() -> String {
    configured_url()
        .parse::<BrokerUrl>()
        .map(|url| url.vhost)
        .unwrap_or_else(|_| "/".into())
}

/// Runs a listing command with `--formatter json` and parses the rows.
fn list(args: &[&str]) -> Result<Vec<serde_json::Value>, String> {
    let mut all = vec!["-q"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--formatter", "json"]);
    let out = run(&all)?;
    serde_json::from_str(&out).map_err(|e| {
        format!(
            "rabbitmqctl {}: unexpected output ({e}): {out}",
            args.join(" ")
        )
    })
}

/// Sets policy `name` on the entities matching the regular expression
/// `pattern`; `apply_to` is `queues`, `exchanges` or `all`.
///
/// Prefer the [`crate::Policy`] guard, which clears the policy when dropped.
pub fn set_policy(
    name: &str,
    pattern: &str,
    definition_json: &str,
    apply_to: &str,
) -> Result<String, String> {
    run_in_vhost(&[
        "set_policy",
        "--apply-to",
        apply_to,
        name,
        pattern,
        definition_json,
    ])
}

/// Clears policy `name`.
pub fn clear_policy(name: &str) -> Result<String, String> {
    run_in_vhost(&["clear_policy", name])
}

/// The open AMQP connections, as `(pid, name)`: the Erlang process id that
/// [`close_connection`] takes, and the name the client gave in its
/// `connection_name` client property (empty when it gave none).
pub fn list_connections_with_names() -> Result<Vec<(String, String)>, String> {
    // Not `--formatter json`: RabbitMQ 3.10 prints pids there as
    // `#PID<0.1.0>`, which close_connection refuses. The table form prints
    // `<rabbit@host.1.2.0>` and the properties as an Erlang-like term.
    let out = run(&[
        "-q",
        "list_connections",
        "--no-table-headers",
        "pid",
        "client_properties",
    ])?;
    Ok(out
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(pid, props)| (pid.to_owned(), connection_name(props)))
        .collect())
}

/// Finds `{"connection_name","NAME"}` in the printed client properties.
/// Names with quotes would be printed escaped; test names never have any.
fn connection_name(props: &str) -> String {
    const KEY: &str = "{\"connection_name\",\"";
    props
        .split_once(KEY)
        .and_then(|(_, rest)| rest.split_once("\"}"))
        .map(|(name, _)| name.to_owned())
        .unwrap_or_default()
}

/// Closes a connection, as a broker operator would; the client receives
/// `CONNECTION_FORCED` with `reason`.
pub fn close_connection(pid: &str, reason: &str) -> Result<String, String> {
    run(&["close_connection", pid, reason])
}

/// Stops the RabbitMQ application (the Erlang node keeps running): every
/// client loses its connection and new ones are refused.
pub fn stop_app() -> Result<String, String> {
    run(&["stop_app"])
}

/// Starts the RabbitMQ application again and waits until AMQP connections
/// are accepted, so the next test finds a working broker.
pub fn start_app() -> Result<String, String> {
    let out = run(&["start_app"])?;
    wait_for_amqp(START_TIMEOUT)?;
    Ok(out)
}

/// Runs on a thread of its own, so that it can be called from inside a
/// Tokio runtime too (a test's async body, a guard dropped there).
fn wait_for_amqp(timeout: Duration) -> Result<(), String> {
    std::thread::spawn(move || wait_for_amqp_here(timeout))
        .join()
        .map_err(|_| "waiting for the broker panicked".to_owned())?
}

fn wait_for_amqp_here(timeout: Duration) -> Result<(), String> {
    let url = configured_url();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        let attempt = runtime.block_on(async {
            let connection = crate::connect(&url, "bus-test-support start_app").await?;
            let _ = connection.close().await;
            Ok::<(), crate::BrokerError>(())
        });
        match attempt {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!(
                    "broker did not accept AMQP within {timeout:?}: {e}"
                ));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// Sets the memory high watermark as a fraction of the machine's memory.
/// A tiny value such as `0.000001` makes the broker block publishers;
/// RabbitMQ's default is `0.4`.
pub fn set_vm_memory_high_watermark(fraction: f64) -> Result<String, String> {
    run(&["set_vm_memory_high_watermark", &fraction.to_string()])
}

/// Removes every ready message from a queue.
pub fn purge_queue(name: &str) -> Result<String, String> {
    run_in_vhost(&["purge_queue", name])
}

/// Deletes a queue.
pub fn delete_queue(name: &str) -> Result<String, String> {
    run_in_vhost(&["delete_queue", name])
}

/// The queues of the virtual host, as `(name, messages)`.
pub fn list_queues() -> Result<Vec<(String, u64)>, String> {
    let vhost = vhost();
    let rows = list(&["list_queues", "-p", &vhost, "name", "messages"])?;
    Ok(rows
        .iter()
        .map(|row| {
            let name = row["name"].as_str().unwrap_or_default().to_owned();
            (name, row["messages"].as_u64().unwrap_or(0))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_name_is_read_from_the_printed_client_properties() {
        let props = r#"[{"version","0.1"},{"product","AMQPRS"},{"connection_name","conn-abc"},{"capabilities",[{"consumer_cancel_notify",true}]}]"#;
        assert_eq!(connection_name(props), "conn-abc");
        assert_eq!(connection_name(r#"[{"product","AMQPRS"}]"#), "");
        assert_eq!(connection_name(""), "");
    }
}
