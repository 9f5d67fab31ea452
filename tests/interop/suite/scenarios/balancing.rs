//! Scenario 5: mixed load balancing. A Python and a Rust instance of the
//! same logical service consume its one shared queue; every command is
//! answered exactly once, and both instances take part.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use bus_core::{Status, Value};
use bus_service::{Client, Context, HandlerResult, Message, Outcome, Service, ServiceBuilder};
use bus_test_support::{QueueCleanup, amqp_url, unique};
use serde_json::json;
use tokio::task::JoinSet;

use crate::broker::Amqp;
use crate::process::{WAIT, tagged};
use crate::services::{start, stop};
use crate::tools::python_service;

/// Commands sent: enough for both instances to get several at the
/// default prefetch (3 each), whatever the timing.
const COMMANDS: i64 = 40;

/// The Rust instance: `<name>.Work` `{"n": N}` → `{"n": N, "by": "rust"}`.
struct Worker {
    handled: Arc<Mutex<Vec<i64>>>,
}

impl Service for Worker {
    async fn handle_command(&self, ctx: Context, msg: Message) -> HandlerResult {
        let n = msg.value()?.get("n").and_then(Value::as_i64).unwrap_or(-1);
        self.handled.lock().expect("lock").push(n);
        ctx.reply_success(&json!({"n": n, "by": "rust"})).await?;
        Ok(Outcome::Done)
    }
}

pub(crate) async fn python_and_rust_share_a_queue() {
    let name = unique("mixed");
    let queue = bus_core::commands_queue(&name);
    let _cleanup = QueueCleanup::new(&amqp_url(), [queue.clone()]);
    let mut python = python_service("worker.py", &[&name]).await;
    let handled = Arc::new(Mutex::new(Vec::new()));
    let builder = ServiceBuilder::new(&name)
        .url(&amqp_url())
        .command_keys([format!("{name}.Work")]);
    let rust = start(
        builder,
        Worker {
            handled: Arc::clone(&handled),
        },
    )
    .await;
    let mut amqp = Amqp::open().await;
    amqp.wait_consumers(&queue, 2).await;
    amqp.close().await;

    let client = Client::connect(
        ServiceBuilder::new(&unique("rs-client")).url(&amqp_url()),
        WAIT,
    )
    .await
    .expect("connect the client");
    let mut calls = JoinSet::new();
    for n in 0..COMMANDS {
        let (client, command) = (client.clone(), format!("{name}.Work"));
        calls.spawn(async move { (n, client.call(&command, &json!({"n": n}), WAIT).await) });
    }
    let mut answered_by = Vec::new();
    while let Some(joined) = calls.join_next().await {
        let (n, reply) = joined.expect("join");
        let reply = reply.unwrap_or_else(|e| panic!("command {n}: {e}"));
        assert_eq!(reply.status, Status::Success, "command {n}");
        let value = reply.value().expect("decode");
        assert_eq!(value.get("n").and_then(Value::as_i64), Some(n), "{value}");
        answered_by.push((
            n,
            value.get("by").and_then(Value::as_str).map(str::to_owned),
        ));
    }
    client.close().await.expect("close the client");

    let by_python = answered_by
        .iter()
        .filter(|(_, by)| by.as_deref() == Some("python"))
        .count();
    let by_rust = answered_by
        .iter()
        .filter(|(_, by)| by.as_deref() == Some("rust"))
        .count();
    assert_eq!(by_python + by_rust, answered_by.len(), "{answered_by:?}");
    assert!(
        by_python > 0 && by_rust > 0,
        "one instance did all: {answered_by:?}"
    );

    // Each instance's own account: every command handled exactly once.
    // Python prints before it answers, but its output may lag behind.
    for (n, by) in &answered_by {
        if by.as_deref() == Some("python") {
            python.wait_tagged("HANDLED", |h| h["n"] == *n).await;
        }
    }
    let rust_handled = handled.lock().expect("lock").clone();
    let python_handled: Vec<i64> = python
        .stdout_lines()
        .iter()
        .filter_map(|l| tagged(l, "HANDLED")?["n"].as_i64())
        .collect();
    let mut all: Vec<i64> = rust_handled
        .iter()
        .chain(&python_handled)
        .copied()
        .collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..COMMANDS).collect::<Vec<_>>(),
        "Rust handled {rust_handled:?}, Python handled {python_handled:?}"
    );
    assert_eq!(python_handled.len(), by_python);
    assert_eq!(
        rust_handled.iter().collect::<BTreeSet<_>>().len(),
        by_rust,
        "{rust_handled:?}"
    );

    stop(rust).await;
    python.stop_cleanly().await;
}
