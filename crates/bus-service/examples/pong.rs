//! `pong`: a drop-in replacement for eventail's `examples/pong-pika.py`.
//!
//! It answers the command `pong.EchoMessage` carrying `{"message": TEXT}`
//! with a success result `{"echo": TEXT in upper case}`, and logs INFO
//! "Echoing" on the bus for each. This example teaches the typed `Router`.
//!
//! ```text
//! cargo run -p bus-service --example pong -- [AMQP_URL...]
//! ```
//!
//! Broker URLs are positional (default `amqp://localhost`); several are
//! tried in turn. SIGINT or SIGTERM stops it gracefully.
//!
//! Its handler is unit-tested with the test kit, at the end of this file:
//! `cargo test -p bus-service --features testing --example pong`.

use bus_service::bus_core::LogLevel;
use bus_service::{Context, HandlerError, Router, ServiceBuilder};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct EchoMessage {
    message: String,
}

#[derive(Serialize)]
struct Echo {
    echo: String,
}

async fn echo(ctx: Context, command: EchoMessage) -> Result<(), HandlerError> {
    ctx.log(
        LogLevel::Info,
        "Echoing",
        &format!("Sending back {}", command.message),
        ctx.conversation_id(),
        [] as [(&str, serde_json::Value); 0],
    )?;
    ctx.reply_success(&Echo {
        echo: command.message.to_uppercase(),
    })
    .await?;
    Ok(())
}

/// The service: one command.
fn router() -> Router {
    Router::new().command("EchoMessage", echo)
}

// One thread is plenty for a service that mostly waits on the network, and
// it spares the cross-thread wake-ups (futex calls) a multi-threaded
// runtime pays at every hand-over between the runtime's tasks: about a
// fifth less CPU per message here (see docs/performance.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let mut urls: Vec<String> = std::env::args().skip(1).collect();
    if urls.is_empty() {
        urls.push("amqp://localhost".into());
    }
    println!("To exit press CTRL+C");
    let result = ServiceBuilder::new("pong")
        .urls(&urls)
        .prefetch(10)
        .run(router())
        .await;
    match result {
        Ok(()) => {
            println!("Bye!");
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("pong: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use std::time::Duration;

    use bus_service::bus_core::{Exchange, Status};
    use bus_service::testing::MemoryBus;
    use serde_json::{Value, json};

    const WAIT: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn testkit_pong_echoes_in_upper_case_and_logs_it() {
        let bus = MemoryBus::start().await.expect("in-memory bus");
        let pong = bus
            .start_service(bus.service("pong").prefetch(10), super::router())
            .await
            .expect("pong starts");

        let reply = bus
            .send_command("pong.EchoMessage", &json!({"message": "hello"}), WAIT)
            .await
            .expect("a result");
        assert_eq!(reply.status, Status::Success);
        assert_eq!(reply.payload::<Value>().unwrap(), json!({"echo": "HELLO"}));

        // One INFO log per command, in the same conversation.
        let logs = bus
            .wait_for(1, WAIT, |p| {
                p.is_on(Exchange::Logs) && p.routing_key.starts_with("pong.")
            })
            .await
            .expect("pong's log");
        let record: Value = serde_json::from_slice(&logs[0].body).unwrap();
        assert_eq!(record["short_message"], "Echoing");
        assert_eq!(record["full_message"], "Sending back hello");
        assert_eq!(record["_conversation_id"], json!(reply.conversation_id));
        assert_eq!(logs[0].routing_key, "pong.INFO");
        pong.stop().await.expect("pong stops");
    }

    #[tokio::test]
    async fn testkit_pong_rejects_a_malformed_command_to_the_dead_letters() {
        let bus = MemoryBus::start().await.expect("in-memory bus");
        bus.dead_letter("pong.commands", "dead-letters");
        let pong = bus
            .start_service(bus.service("pong"), super::router())
            .await
            .expect("pong starts");
        // No `message` field: the typed handler cannot decode it.
        let sent = bus
            .send_command(
                "pong.EchoMessage",
                &json!({"text": "hi"}),
                Duration::from_secs(2),
            )
            .await;
        assert!(
            sent.is_err(),
            "no result for a command pong cannot read: {sent:?}"
        );
        let dead = bus.dead_letters();
        assert_eq!(dead.len(), 1, "dead letters: {dead:?}");
        assert_eq!(dead[0].queue, "pong.commands");
        assert_eq!(dead[0].message.routing_key, "pong.EchoMessage");
        pong.stop().await.expect("pong stops");
    }
}
