//! `ping`: the counterpart of `pong`. Every second it sends
//! `pong.EchoMessage` with `reply_to` `<name>.EchoReturn`, and acknowledges
//! the results in batches with the `Batch` helper. This example teaches
//! timers, deferred acks and batches.
//!
//! ```text
//! cargo run -p bus-service --example ping -- [NAME] [AMQP_URL...]
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bus_service::bus_core::new_conversation_id;
use bus_service::{Batch, Context, HandlerError, Router, ServiceBuilder};
use serde::{Deserialize, Serialize};

const MESSAGES: [&str; 4] = [
    "hello",
    "proof of concept",
    "how are you?",
    "ça cause français?",
];

#[derive(Serialize)]
struct EchoMessage<'a> {
    message: &'a str,
}

#[derive(Deserialize, Debug)]
struct Echo {
    echo: String,
}

fn ping(ctx: Context, count: usize) {
    ctx.call_later(Duration::from_secs(1), move |ctx| async move {
        let message = EchoMessage {
            message: MESSAGES[count % MESSAGES.len()],
        };
        let reply_to = format!("{}.EchoReturn", ctx.service_name());
        let sent = ctx
            .send_command(
                "pong.EchoMessage",
                &message,
                &new_conversation_id(),
                &reply_to,
                &count.to_string(),
            )
            .await;
        if let Err(error) = sent {
            eprintln!("ping: cannot send: {error}");
        }
        ping(ctx, count + 1);
    });
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "ping".into());
    let mut urls: Vec<String> = args.collect();
    if urls.is_empty() {
        urls.push("amqp://localhost".into());
    }
    let batch = Batch::new(
        5,
        Duration::from_secs(3),
        |_ctx: Context, echoes: Vec<Echo>| async move {
            for echo in &echoes {
                println!("got echo: {}", echo.echo);
            }
            Ok::<(), HandlerError>(())
        },
    );
    let started = AtomicBool::new(false);
    let router = Router::new()
        .result("EchoReturn", move |ctx: Context, echo: Echo| {
            let batch = batch.clone();
            async move { batch.push(&ctx, echo).await }
        })
        .on_ready(move |ctx| {
            // on_ready runs again after every reconnection, but timers
            // outlive connections: the loop started the first time goes on.
            let first = !started.swap(true, Ordering::SeqCst);
            async move {
                if first {
                    ping(ctx, 0);
                }
            }
        });
    println!("To exit press CTRL+C");
    match ServiceBuilder::new(&name)
        .urls(&urls)
        .prefetch(10)
        .run(router)
        .await
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ping: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
