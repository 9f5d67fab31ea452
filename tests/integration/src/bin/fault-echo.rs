//! The echo service as a process of its own, for the tests that kill it
//! or send it signals.
//!
//! ```text
//! AMQP_URL=... fault-echo SERVICE [DELAY_MS [PREFETCH [STOP_TIMEOUT_MS]]]
//! ```
//!
//! It prints `READY` once it consumes, `START <id>` when a handler starts,
//! and `STOPPED` after a graceful stop; it exits with 0 after a graceful
//! stop, 1 on a second signal, 2 on an error.

use std::process::ExitCode;
use std::time::Duration;

use bus_integration_tests::echo::{Echo, work_key};
use bus_service::ServiceBuilder;

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let Some(name) = std::env::args().nth(1) else {
        eprintln!("usage: fault-echo SERVICE [DELAY_MS [PREFETCH [STOP_TIMEOUT_MS]]]");
        return ExitCode::from(2);
    };
    let url =
        std::env::var("AMQP_URL").unwrap_or_else(|_| bus_test_support::DEFAULT_AMQP_URL.into());
    let echo = Echo {
        delay: Duration::from_millis(arg(2, 0)),
        announce: true,
        ..Echo::default()
    };
    let prefetch = u16::try_from(arg(3, 3)).unwrap_or(3);
    let result = ServiceBuilder::new(&name)
        .url(&url)
        .command_keys([work_key(&name)])
        .prefetch(prefetch)
        .stop_timeout(Duration::from_millis(arg(4, 30_000)))
        .run(echo)
        .await;
    match result {
        Ok(()) => {
            println!("STOPPED");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("fault-echo: {error}");
            ExitCode::from(2)
        }
    }
}
