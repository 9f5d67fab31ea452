//! `configured`: a service that waits for its configuration before it
//! serves. It subscribes to the configuration `configured.Settings`; until
//! one arrives it consumes only its configuration queue (its commands wait
//! in `configured.commands`), and once configured it answers
//! `configured.Greet` `{"name": NAME}` with `{"greeting": "<greeting>, NAME"}`.
//! A later configuration changes the greeting on the fly. This example
//! teaches the configuration phase: `.configuration`, `.on_unconfigured`
//! and `.on_ready`.
//!
//! ```text
//! cargo run -p bus-service --example configured -- [AMQP_URL...]
//! bus config configured.Settings --data '{"greeting": "Hello"}'
//! bus send configured.Greet --data '{"name": "Ada"}'
//! ```
//!
//! Every instance has a configuration queue of its own, which exists only
//! while the instance runs: a configuration published before it started
//! is not seen. On each connection (the first and after a reconnection) it
//! waits for one again, and asks for it with the event
//! `configured.ConfigurationRequested`, which a configuration service
//! would answer.

use std::sync::{Arc, RwLock};

use bus_service::{Context, HandlerError, Router, ServiceBuilder};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Settings {
    greeting: String,
}

#[derive(Deserialize)]
struct Greet {
    name: String,
}

#[derive(Serialize)]
struct Greeting {
    greeting: String,
}

#[derive(Serialize)]
struct ConfigurationRequested<'a> {
    service: &'a str,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut urls: Vec<String> = std::env::args().skip(1).collect();
    if urls.is_empty() {
        urls.push("amqp://localhost".into());
    }
    let greeting: Arc<RwLock<Option<String>>> = Arc::default();
    let (set, get) = (Arc::clone(&greeting), greeting);
    let router = Router::new()
        .configuration("configured.Settings", move |_ctx: Context, s: Settings| {
            println!("configured: greeting {:?}", s.greeting);
            if let Ok(mut greeting) = set.write() {
                *greeting = Some(s.greeting);
            }
            // `true`: configured, start consuming events and commands.
            async { Ok::<bool, HandlerError>(true) }
        })
        .command("Greet", move |ctx: Context, cmd: Greet| {
            // Commands reach a handler only once configured, so a greeting
            // is always set here.
            let greeting = get.read().ok().and_then(|g| g.clone()).unwrap_or_default();
            async move {
                let reply = Greeting {
                    greeting: format!("{greeting}, {}", cmd.name),
                };
                ctx.reply_success(&reply).await?;
                Ok::<(), HandlerError>(())
            }
        })
        .on_unconfigured(|ctx: Context| async move {
            println!("waiting for the configuration configured.Settings");
            let request = ConfigurationRequested {
                service: ctx.service_name(),
            };
            if let Err(error) = ctx
                .publish_event("configured.ConfigurationRequested", &request, "")
                .await
            {
                eprintln!("configured: cannot ask for a configuration: {error}");
            }
        })
        .on_ready(|_ctx| async { println!("ready: serving configured.Greet") });
    match ServiceBuilder::new("configured")
        .urls(&urls)
        .run(router)
        .await
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("configured: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
