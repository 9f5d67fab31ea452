//! `clock`: publishes the event `clock.MinuteTicked` every minute, like
//! eventail's `examples/minute-clock-pika.py`, and logs NOTICE "I'm fine!"
//! on the bus with each tick. It consumes nothing. This example teaches
//! timers (`call_later`) and publishing events from them.
//!
//! ```text
//! cargo run -p bus-service --example clock -- [--period SECS] [AMQP_URL...]
//! ```
//!
//! `--period` (or `$CLOCK_PERIOD`) changes the period, in seconds (default
//! 60). Watch it with `bus monitor --events 'clock.#'`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bus_service::bus_core::{LogLevel, new_conversation_id};
use bus_service::{Context, Router, ServiceBuilder};
use serde::Serialize;

#[derive(Serialize)]
struct MinuteTicked {
    /// Seconds since the Unix epoch.
    unix_time: u64,
    /// How many ticks this clock published before this one.
    tick: u64,
}

fn tick(ctx: Context, period: Duration, count: u64) {
    ctx.call_later(period, move |ctx| async move {
        let unix_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let event = MinuteTicked {
            unix_time,
            tick: count,
        };
        // Each tick starts a conversation of its own.
        let conversation = new_conversation_id();
        match ctx
            .publish_event("clock.MinuteTicked", &event, &conversation)
            .await
        {
            Ok(()) => println!("tick {count} at {unix_time}"),
            Err(error) => eprintln!("clock: cannot publish: {error}"),
        }
        let _ = ctx.log(
            LogLevel::Notice,
            "I'm fine!",
            "",
            &conversation,
            [] as [(&str, serde_json::Value); 0],
        );
        // The next tick is scheduled from here: a slow publish delays it.
        tick(ctx, period, count + 1);
    });
}

/// `--period SECS` from the arguments (removed from them), else
/// `$CLOCK_PERIOD`, else a minute.
fn period(args: &mut Vec<String>) -> Result<Duration, String> {
    let given = match args.iter().position(|a| a == "--period") {
        Some(at) if at + 1 < args.len() => Some(args.drain(at..at + 2).nth(1).unwrap_or_default()),
        Some(_) => return Err("--period needs a number of seconds".into()),
        None => std::env::var("CLOCK_PERIOD").ok(),
    };
    match given {
        None => Ok(Duration::from_secs(60)),
        Some(secs) => secs
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("invalid period {secs:?}: expected seconds, above 0")),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let period = match period(&mut args) {
        Ok(period) => period,
        Err(error) => {
            eprintln!("clock: {error}");
            return std::process::ExitCode::from(64);
        }
    };
    if args.is_empty() {
        args.push("amqp://localhost".into());
    }
    let started = AtomicBool::new(false);
    let router = Router::new().on_ready(move |ctx| {
        // on_ready runs again after a reconnection; timers outlive
        // connections, so the clock started the first time keeps ticking.
        let first = !started.swap(true, Ordering::SeqCst);
        async move {
            if first {
                tick(ctx, period, 0);
            }
        }
    });
    println!("Ticking every {period:?}. To exit press CTRL+C");
    match ServiceBuilder::new("clock").urls(&args).run(router).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("clock: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
