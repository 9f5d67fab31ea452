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
    let router = Router::new().command("EchoMessage", echo);
    println!("To exit press CTRL+C");
    let result = ServiceBuilder::new("pong")
        .urls(&urls)
        .prefetch(10)
        .run(router)
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
