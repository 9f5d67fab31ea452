//! The test kit's own tests: the in-memory bus and its harness, with no
//! broker. Every test name contains `testkit`.
#![cfg(feature = "testing")]

use std::time::Duration;

use bus_service::bus_core::Exchange;
use bus_service::testing::MemoryBus;
use bus_service::{Context, HandlerError, Router};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn testkit_command_round_trip() {
    let bus = MemoryBus::start().await.unwrap();
    let router = Router::new().command("Double", |ctx: Context, n: i64| async move {
        ctx.reply_success(&(n * 2)).await?;
        Ok::<(), HandlerError>(())
    });
    let service = bus
        .start_service(bus.service("calc"), router)
        .await
        .unwrap();
    let reply = bus.send_command("calc.Double", &21, WAIT).await.unwrap();
    assert_eq!(reply.payload::<i64>().unwrap(), 42);
    bus.wait_idle(WAIT).await.unwrap();
    let commands = bus.commands();
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0].routing_key, "calc.Double");
    assert_eq!(bus.results().len(), 1);
    service.stop().await.unwrap();
}
