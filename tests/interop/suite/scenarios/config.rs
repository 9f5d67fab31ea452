//! Scenario 4: the configuration phase. eventail's
//! `publish_configuration.py` brings a waiting Rust service to ready, and
//! `bus config` a waiting Python service. Before that, neither consumes its
//! commands queue; after, both answer a command.

use bus_core::Value;
use bus_service::{
    Context, HandlerError, HandlerResult, Message, Outcome, Service, ServiceBuilder, ServiceState,
};
use bus_test_support::{QueueCleanup, amqp_url, unique};
use serde_json::json;
use tokio::sync::mpsc;

use crate::broker::Amqp;
use crate::process::{Proc, WAIT, ndjson, payload_file, run_expecting};
use crate::services::stop;
use crate::tools::{bus, eventail, suite_python};

/// Hands each configuration to the scenario and counts itself configured;
/// answers `<name>.Echo` once configured.
struct Configured {
    tx: mpsc::UnboundedSender<(String, Result<Value, String>)>,
}

impl Service for Configured {
    async fn handle_config(&self, _ctx: Context, msg: Message) -> Result<bool, HandlerError> {
        let value = msg.value().map_err(|e| e.to_string());
        let _ = self.tx.send((msg.routing_key().to_owned(), value));
        Ok(true)
    }

    async fn handle_command(&self, ctx: Context, msg: Message) -> HandlerResult {
        ctx.reply_success(&Value::map([("echo", msg.value()?)]))
            .await?;
        Ok(Outcome::Done)
    }
}

/// What `<service>.Echo` `[1]` answers, sent with `bus send`: proof that
/// the service consumes its commands.
async fn echo_payload(service: &str) -> serde_json::Value {
    let echo = format!("{service}.Echo");
    let sent = run_expecting(
        "bus send",
        bus(&["--json", "send", &echo, "--data", "[1]"]),
        0,
    )
    .await;
    ndjson(&sent.out)[0]["payload"].clone()
}

pub(crate) async fn publish_configuration_py_to_rust() {
    let name = unique("rs-config");
    let commands = bus_core::commands_queue(&name);
    let _cleanup = QueueCleanup::new(&amqp_url(), [commands.clone()]);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let settings_key = format!("{name}.Settings");
    let handle = ServiceBuilder::new(&name)
        .url(&amqp_url())
        .config_keys([settings_key.clone()])
        .command_keys([format!("{name}.Echo")])
        .start(Configured { tx })
        .expect("start the service");
    let health = handle.health();
    assert!(
        health.wait_for(ServiceState::Configuring, WAIT).await,
        "not waiting for its configuration (state {})",
        health.state()
    );
    let mut amqp = Amqp::open().await;
    amqp.wait_consumers(&commands, 0).await;
    assert_eq!(health.state(), ServiceState::Configuring);

    let settings = json!({"timeout": 30, "name": "é", "nested": {"list": [1, 2.5, null]}});
    let dir = tempfile::tempdir().expect("tempdir");
    let file = payload_file(&dir, "settings.json", &settings);
    run_expecting(
        "publish_configuration.py",
        eventail(
            "publish_configuration.py",
            &amqp_url(),
            &[&settings_key, &file],
        ),
        0,
    )
    .await;

    let (key, value) = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a configuration within the wait")
        .expect("the service is running");
    assert_eq!(key, settings_key);
    assert_eq!(value, Ok(Value::from_json(settings)));
    assert!(
        health.wait_for(ServiceState::Ready, WAIT).await,
        "not ready after its configuration (state {})",
        health.state()
    );
    amqp.wait_consumers(&commands, 1).await;
    amqp.close().await;
    assert_eq!(echo_payload(&name).await, json!({"echo": [1]}));
    stop(handle).await;
}

pub(crate) async fn bus_config_to_python() {
    let name = unique("py-config");
    let commands = bus_core::commands_queue(&name);
    let _cleanup = QueueCleanup::new(&amqp_url(), [commands.clone()]);
    let mut service = Proc::spawn(
        "config_service.py",
        suite_python("config_service.py", &amqp_url(), &[&name]),
    );
    service.wait_for("UNCONFIGURED").await;
    let mut amqp = Amqp::open().await;
    amqp.wait_consumers(&commands, 0).await;
    assert!(
        !service.stdout_lines().iter().any(|l| l == "READY"),
        "ready before its configuration\n{}",
        service.transcript()
    );

    let settings = json!({"timeout": 30, "name": "é"});
    let settings_key = format!("{name}.Settings");
    run_expecting(
        "bus config",
        bus(&["config", &settings_key, "--data", &settings.to_string()]),
        0,
    )
    .await;
    let config = service.wait_tagged("CONFIG", |_| true).await;
    assert_eq!(config, json!({"key": settings_key, "payload": settings}));
    service.wait_for("READY").await;
    amqp.wait_consumers(&commands, 1).await;
    amqp.close().await;

    assert_eq!(
        echo_payload(&name).await,
        json!({"echo": [1], "settings": settings})
    );
    service.stop_cleanly().await;
}
