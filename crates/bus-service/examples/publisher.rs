//! `publisher`: a plain tokio program, not a service, that publishes
//! events, as eventail's `sync_publisher` is used from scripts and web
//! handlers. It publishes COUNT `demo.NumberPublished` events and exits.
//! This example teaches the `Publisher` handle: each publish returns once
//! the broker has confirmed the event, and `close` waits for the rest.
//!
//! ```text
//! cargo run -p bus-service --example publisher -- [COUNT] [AMQP_URL...]
//! ```
//!
//! COUNT defaults to 3. Watch the events with `bus monitor --events 'demo.#'`.

use bus_service::ServiceBuilder;
use bus_service::bus_core::new_conversation_id;
use serde::Serialize;

#[derive(Serialize)]
struct NumberPublished {
    number: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).peekable();
    let count: u64 = match args.next_if(|a| !a.contains("://")) {
        Some(count) => count
            .parse()
            .map_err(|_| format!("invalid COUNT {count:?}"))?,
        None => 3,
    };
    let mut urls: Vec<String> = args.collect();
    if urls.is_empty() {
        urls.push("amqp://localhost".into());
    }
    // The name is the `logical_service` of the publisher's logs, and its
    // connection's name; a publisher has no queues.
    let publisher = ServiceBuilder::new("publisher")
        .urls(&urls)
        .start_publisher()?;
    // One conversation for the whole run: these events belong together.
    let conversation = new_conversation_id();
    for number in 1..=count {
        publisher
            .publish_event(
                "demo.NumberPublished",
                &NumberPublished { number },
                &conversation,
            )
            .await?;
        println!("demo.NumberPublished {number} confirmed [{conversation}]");
    }
    publisher.close().await?;
    Ok(())
}
