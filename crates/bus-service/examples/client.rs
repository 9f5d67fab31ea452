//! `client`: calls the command `pong.EchoMessage` and waits for its result,
//! with a timeout: a request/reply call from any tokio program, as `bus
//! send` makes. This example teaches `Client` and the ways a call ends.
//!
//! ```text
//! cargo run -p bus-service --example pong &
//! cargo run -p bus-service --example client -- [MESSAGE] [AMQP_URL...]
//! ```
//!
//! Exit codes: 0 on a success result, 1 on an error result or a failure,
//! 2 when no result came within five seconds, 3 when no queue is bound for
//! the command (pong never ran on this broker). A command sent while pong
//! is stopped waits in `pong.commands` for the next pong: the call times
//! out.

use std::process::ExitCode;
use std::time::Duration;

use bus_service::bus_core::Status;
use bus_service::{CallError, Client, ServiceBuilder};
use serde::{Deserialize, Serialize};

const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Serialize)]
struct EchoMessage {
    message: String,
}

#[derive(Deserialize)]
struct Echo {
    echo: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    let message = args
        .next_if(|a| !a.contains("://"))
        .unwrap_or_else(|| "hello".into());
    let mut urls: Vec<String> = args.collect();
    if urls.is_empty() {
        urls.push("amqp://localhost".into());
    }
    // The client's results come back on its own exclusive queue, bound to
    // `client.reply-<random>`.
    let client = match Client::connect(ServiceBuilder::new("client").urls(&urls), TIMEOUT).await {
        Ok(client) => client,
        Err(error) => {
            eprintln!("client: {error}");
            return ExitCode::FAILURE;
        }
    };
    let call = client
        .call("pong.EchoMessage", &EchoMessage { message }, TIMEOUT)
        .await;
    let code = match call {
        Ok(reply) if reply.status == Status::Success => match reply.payload::<Echo>() {
            Ok(echo) => {
                println!("pong answered: {}", echo.echo);
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("client: unexpected result: {error}");
                ExitCode::FAILURE
            }
        },
        Ok(reply) => {
            eprintln!("client: pong answered with an error: {:?}", reply.value());
            ExitCode::FAILURE
        }
        Err(CallError::TimedOut { .. }) => {
            eprintln!("client: no answer within {TIMEOUT:?}");
            ExitCode::from(2)
        }
        Err(CallError::Unroutable { .. }) => {
            eprintln!("client: nobody listens to pong.EchoMessage: is pong running?");
            ExitCode::from(3)
        }
        Err(error) => {
            eprintln!("client: {error}");
            ExitCode::FAILURE
        }
    };
    if let Err(error) = client.close().await {
        eprintln!("client: {error}");
    }
    code
}
